package logs

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// DefaultMaxLine is the longest line, in bytes of output, that a LineWriter
// emits whole; longer lines are emitted in pieces of this size.
const DefaultMaxLine = 1 << 20

// writeBlock is the most output that a LineWriter takes in at once: a
// larger Write is processed in blocks, so that memory stays bounded by
// maxLine plus this, whatever the size of the chunks written.
const writeBlock = 64 << 10

// ErrClosed is returned by Write on a LineWriter that was closed.
var ErrClosed = errors.New("logs: write to closed line writer")

// NewLineWriter returns a writer that splits the output written to it into
// lines, masks them with m (which may be nil) and calls emit once for every
// line, in order.
//
// The slice passed to emit holds the masked line including its trailing
// line break, so the emitted lines concatenated are exactly the masked
// output. It is only valid during the call; emit must copy what it keeps.
// A line longer than maxLine bytes, not counting its line break
// (DefaultMaxLine when maxLine <= 0), is emitted in pieces that each hold
// at most maxLine bytes of the output (masking may lengthen a piece, as
// Redacted may be longer than what it replaces); only the last piece ends
// with the line break. A piece ends inside a UTF-8 sequence only when no
// sequence boundary lies near the cut. Close emits the last line even if it
// has no line break.
//
// A complete line is emitted by the Write that completes it, with one
// exception: a line that ends with the start of a multi-line secret is
// held until the following output shows whether the secret continues, or
// until Close. Secrets are masked wherever the chunk boundaries fall.
//
// Memory stays bounded by about maxLine plus 64 KiB plus the length of
// the longest secret, whatever is written. The writer is not safe for
// concurrent use; Write never fails before Close.
func NewLineWriter(m *Masker, maxLine int, emit func(line []byte)) io.WriteCloser {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if m.empty() {
		m = nil
	}
	return &lineWriter{m: m, maxLine: maxLine, emit: emit}
}

// TruncatedMarker ends a line that a truncating LineWriter cut short.
const TruncatedMarker = " … [ferry: line truncated, it is longer than the limit of a log line]"

// NewTruncatingLineWriter is NewLineWriter for a bounded log: a line
// longer than maxLine bytes is not emitted in pieces but once, cut to its
// first maxLine-len(TruncatedMarker) bytes followed by TruncatedMarker and
// a line break; the rest of the line is discarded as it is written. maxLine
// must be larger than twice the marker (DefaultMaxLine when it is not
// positive).
func NewTruncatingLineWriter(m *Masker, maxLine int, emit func(line []byte)) io.WriteCloser {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if m.empty() {
		m = nil
	}
	return &lineWriter{m: m, maxLine: max(maxLine-len(TruncatedMarker), len(TruncatedMarker)), emit: emit, truncate: true}
}

// lineWriter is the io.WriteCloser returned by NewLineWriter.
type lineWriter struct {
	m       *Masker
	maxLine int
	emit    func(line []byte)

	// buf holds the output not emitted yet; buf[0] is at stream offset
	// base.
	buf  []byte
	base int64
	// scanFrom is the index in buf from which occurrences of secrets may
	// start that have not been searched for yet.
	scanFrom int
	// spans are the covered byte ranges, by stream offset, sorted and
	// merged, that end after base.
	spans []span
	// cursor is the index in spans of the first span that may still
	// overlap what is emitted next, during one call of process.
	cursor int
	// clean is an index in buf before which buf holds no line break, so
	// that a long line written in small chunks is searched only once.
	clean int
	// found is scratch space for the search.
	found []span
	// line is scratch space for masked lines.
	line []byte
	// runOpen is set when the last emitted chunk was a piece of a line
	// longer than maxLine that ended in a masked run, so that the run is
	// not announced twice when it continues into the next piece.
	runOpen bool
	closed  bool
	// truncate cuts long lines instead of splitting them; skipping is set
	// while the rest of a cut line is being discarded.
	truncate, skipping bool
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), writeBlock)
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		w.process(false)
	}
	return n, nil
}

// Close emits the last, unterminated line, if any. Writes after Close fail;
// Close itself may be called more than once.
func (w *lineWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.process(true)
	w.buf, w.spans, w.found, w.line = nil, nil, nil, nil
	return nil
}

// process searches the new output for secrets and emits everything that
// can be emitted. At the end of the output (final), it emits everything.
func (w *lineWriter) process(final bool) {
	limit := len(w.buf)
	overlap := 0
	if w.m != nil {
		overlap = w.m.maxLen - 1
		found := w.m.find(w.buf[w.scanFrom:], w.base+int64(w.scanFrom), w.found[:0])
		if len(found) > 0 {
			w.spans = mergeSpans(append(w.spans, found...))
		}
		w.found = found[:0]
		w.scanFrom = max(w.scanFrom, len(w.buf)-overlap)
		if !final && len(w.m.multi) > 0 {
			if s := w.m.pendingMulti(w.buf); s >= 0 {
				limit = s
			}
		}
	}
	w.cursor = 0

	// Bytes before len(buf)-overlap cannot be part of an occurrence that
	// is not complete in buf, so their masking is final; so is that of
	// every byte before a line break that is not held.
	pos := 0
	clean := w.clean // buf[:clean] holds no line break
	for pos < limit {
		if w.skipping {
			// The rest of a truncated line: discarded up to its break.
			i := bytes.IndexByte(w.buf[pos:limit], '\n')
			if i < 0 {
				pos = limit
				break
			}
			pos += i + 1
			w.skipping = false
			continue
		}
		end := min(limit, pos+w.maxLine+1)
		if from := max(pos, clean); from < end {
			if i := bytes.IndexByte(w.buf[from:end], '\n'); i >= 0 {
				w.emitRange(pos, from+i+1, true)
				pos = from + i + 1
				continue
			}
			clean = end
		}
		if end-pos <= w.maxLine {
			// The line ends after limit, or is not complete yet.
			break
		}
		// A line longer than maxLine. Its first maxLine bytes may go out
		// if the line is complete, or if they are final anyway.
		complete := false
		if clean < limit {
			if i := bytes.IndexByte(w.buf[clean:limit], '\n'); i >= 0 {
				clean += i
				complete = true
			} else {
				clean = limit
			}
		}
		if !complete && !final && (limit < len(w.buf) || pos+w.maxLine > len(w.buf)-overlap) {
			break
		}
		cut := runeCut(w.buf, pos, pos+w.maxLine)
		if w.truncate {
			w.emitTruncated(pos, cut)
			w.skipping = true
		} else {
			w.emitRange(pos, cut, false)
		}
		pos = cut
	}
	if final && w.skipping {
		pos = len(w.buf)
	}
	if final && pos < len(w.buf) {
		w.emitRange(pos, len(w.buf), false)
		pos = len(w.buf)
	}

	if pos > 0 {
		n := copy(w.buf, w.buf[pos:])
		w.buf = w.buf[:n]
		w.base += int64(pos)
		w.scanFrom = max(w.scanFrom-pos, 0)
		clean = max(clean-pos, 0)
		k := 0
		for k < len(w.spans) && w.spans[k].end <= w.base {
			k++
		}
		if k > 0 {
			w.spans = append(w.spans[:0], w.spans[k:]...)
		}
	}
	w.clean = clean
}

// emitRange masks and emits buf[a:b]; nl says whether it ends with a line
// break.
func (w *lineWriter) emitRange(a, b int, nl bool) {
	start, end := w.base+int64(a), w.base+int64(b)
	if nl {
		end-- // the line break is never masked
	}
	for w.cursor < len(w.spans) && w.spans[w.cursor].end <= start {
		w.cursor++
	}
	if start == end || w.cursor == len(w.spans) || w.spans[w.cursor].start >= end {
		w.emit(w.buf[a:b])
		w.runOpen = false
		return
	}
	line := w.line[:0]
	p := start
	for j := w.cursor; j < len(w.spans) && w.spans[j].start < end; j++ {
		sp := w.spans[j]
		s, e := max(sp.start, start), min(sp.end, end)
		line = append(line, w.buf[p-w.base:s-w.base]...)
		if !(w.runOpen && s == start) {
			line = append(line, Redacted...)
		}
		p = e
	}
	w.runOpen = !nl && p == end
	line = append(line, w.buf[p-w.base:b]...)
	w.line = line
	if len(line) > 0 {
		// A piece that continues a masked run may have nothing to show.
		w.emit(line)
	}
}

// emitTruncated emits buf[a:b], masked, followed by TruncatedMarker and a
// line break.
func (w *lineWriter) emitTruncated(a, b int) {
	emit := w.emit
	defer func() { w.emit = emit }()
	var line []byte
	w.emit = func(p []byte) { line = append(line, p...) }
	w.emitRange(a, b, false)
	w.runOpen = false
	line = append(line, TruncatedMarker...)
	emit(append(line, '\n'))
}

// runeCut moves cut back by up to three bytes so that buf[pos:cut] does not
// end inside a UTF-8 sequence. It returns cut unchanged when no sequence
// starts in reach without making the piece empty.
func runeCut(buf []byte, pos, cut int) int {
	if cut >= len(buf) {
		return cut
	}
	for c := cut; c > pos && c > cut-utf8.UTFMax; c-- {
		if utf8.RuneStart(buf[c]) {
			return c
		}
	}
	return cut
}
