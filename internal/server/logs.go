package server

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// findStep resolves the {number}, {pipeline} and {step} path values of a
// log route, after checking the caller's read access to the repo.
func (s *Server) findStep(r *http.Request) (*store.Step, error) {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return nil, err
	}
	b, err := s.buildByNumber(r, repo)
	if err != nil {
		return nil, err
	}
	pn, err := pathInt(r, "pipeline")
	if err != nil {
		return nil, err
	}
	sn, err := pathInt(r, "step")
	if err != nil {
		return nil, err
	}
	pls, err := s.store.Pipelines.List(r.Context(), b.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range pls {
		if p.Number != pn {
			continue
		}
		for _, st := range p.Steps {
			if st.Number == sn {
				return st, nil
			}
		}
		return nil, notFound("pipeline %d of build %d has no step %d", pn, b.Number, sn)
	}
	return nil, notFound("build %d has no pipeline %d", b.Number, pn)
}

// logFlushSize is how much log text is buffered before it is written out.
const logFlushSize = 32 << 10

// stepLogs answers a step's whole log, or with ?tail=N its last N lines,
// as plain text, one line per line. The log is streamed from the store a
// page at a time, so the server's memory does not grow with its size.
func (s *Server) stepLogs(w http.ResponseWriter, r *http.Request) error {
	st, err := s.findStep(r)
	if err != nil {
		return err
	}
	tail, err := queryInt(r, "tail", -1)
	if err != nil {
		return err
	}
	from, err := queryInt(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", -1)
	if err != nil {
		return err
	}
	if from < 0 {
		return badRequest("from", "from must be a line's sequence number, 0 or more")
	}
	if tail >= 0 && (from > 0 || limit >= 0) {
		return badRequest("tail", "tail cannot be combined with from or limit")
	}
	ctx := r.Context()
	info, err := s.store.Logs.Info(ctx, st.ID)
	if err != nil {
		return err
	}
	var lines iter.Seq2[store.LogLine, error]
	if tail >= 0 {
		lines = s.store.Logs.Tail(ctx, st.ID, tail)
	} else {
		lines = s.store.Logs.Lines(ctx, st.ID, from)
	}
	if limit >= 0 {
		lines = firstN(lines, limit)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// The log's size, so that a viewer can page through it.
	h.Set("X-Log-Lines", strconv.FormatInt(info.Lines, 10))
	h.Set("X-Log-Last-Seq", strconv.FormatInt(info.LastSeq, 10))
	bw := bufio.NewWriterSize(w, logFlushSize)
	wrote := false
	for l, err := range lines {
		if err != nil {
			if !wrote {
				return err
			}
			// The answer has begun: cut the connection so that the
			// client sees an incomplete body rather than a short log.
			s.log.Error("streaming a log", "step", st.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		wrote = true
		// A bufio.Writer's error sticks: checking the last write of a
		// line checks them all.
		_, _ = bw.WriteString(l.Text)
		if err := bw.WriteByte('\n'); err != nil {
			return nil // the client went away
		}
	}
	_ = bw.Flush()
	return nil
}

// firstN yields the first n lines of seq.
func firstN(seq iter.Seq2[store.LogLine, error], n int64) iter.Seq2[store.LogLine, error] {
	return func(yield func(store.LogLine, error) bool) {
		if n <= 0 {
			return
		}
		i := int64(0)
		for l, err := range seq {
			if !yield(l, err) || err != nil {
				return
			}
			if i++; i >= n {
				return
			}
		}
	}
}

// sseKeepAlive is how often an idle log stream sends a comment, so that
// proxies keep the connection open.
const sseKeepAlive = 15 * time.Second

// ssePoll is how often a log stream looks for lines that reached the store
// through another server.
const ssePoll = time.Second

// stepLogStream streams a step's log as Server-Sent Events: one "data:"
// event per line whose id is the line's sequence number. It starts after
// the Last-Event-ID a reconnecting client sends (or at ?from=SEQ, or at
// the beginning), follows the log as lines arrive, and ends with an "end"
// event holding the step's status once the step has finished.
func (s *Server) stepLogStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.findStep(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	from := int64(0)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return badRequest("Last-Event-ID", "Last-Event-ID %q must be a line's sequence number", v)
		}
		from = n + 1
	} else if from, err = queryInt(r, "from", 0); err != nil {
		return err
	}
	release, err := s.acquireStream(w, r)
	if err != nil {
		return err
	}
	defer release()
	unsubscribe := s.logs.subscribe(st.ID)
	defer unsubscribe()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, logFlushSize)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := flush(); err != nil {
		return nil
	}
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	poll := time.NewTicker(cmp.Or(time.Duration(s.logPoll.Load()), ssePoll))
	defer poll.Stop()
	for {
		wake := s.logs.wait(st.ID)
		// Look at the step before reading its lines: an agent sends a
		// step's lines before its end, so every line of a finished step
		// is in the store by now.
		cur, err := s.store.Steps.Get(ctx, st.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("streaming a log", "step", st.ID, "err", err)
			return nil
		}
		next, err := writeEvents(ctx, bw, s.store.Logs.Lines(ctx, st.ID, from))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("streaming a log", "step", st.ID, "err", err)
			}
			return nil
		}
		if next >= 0 {
			from = next
		}
		if cur.Status.Done() {
			end, _ := json.Marshal(map[string]any{"status": cur.Status, "exit_code": cur.ExitCode})
			fmt.Fprintf(bw, "event: end\ndata: %s\n\n", end)
			_ = flush()
			return nil
		}
		if err := flush(); err != nil {
			return nil
		}
		select {
		case <-wake:
		case <-poll.C:
		case <-keepAlive.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		}
	}
}

// errClientGone ends a stream whose client stopped reading.
var errClientGone = errors.New("client gone")

// writeEvents writes lines as SSE events and returns the sequence number
// after the last one written, or -1 when there was none.
func writeEvents(ctx context.Context, bw *bufio.Writer, lines iter.Seq2[store.LogLine, error]) (int64, error) {
	next := int64(-1)
	var buf []byte
	for l, err := range lines {
		if err != nil {
			return next, err
		}
		buf = append(buf[:0], "id: "...)
		buf = strconv.AppendInt(buf, l.Seq, 10)
		buf = append(buf, '\n')
		// A line holding a carriage return would end the data field
		// early; send its parts as data lines, which the client joins
		// with "\n".
		for part := range strings.SplitSeq(l.Text, "\r") {
			buf = append(append(append(buf, "data: "...), part...), '\n')
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return next, errClientGone
		}
		next = l.Seq + 1
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
	}
	return next, nil
}
