package storetest

import (
	"fmt"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// newStep creates a repo, a build and one step, and returns the step's ID.
func newStep(t testing.TB, s *store.Store, slug string) int64 {
	t.Helper()
	r := newRepo(t, s, slug)
	_, ps := newBuild(t, s, r, false, map[string][]string{"p": {"step"}})
	return ps[0].Steps[0].ID
}

// collect reads the whole sequence.
func collect(t testing.TB, seq func(yield func(store.LogLine, error) bool)) []store.LogLine {
	t.Helper()
	var out []store.LogLine
	for l, err := range seq {
		must(t, err)
		out = append(out, l)
	}
	return out
}

func texts(ls []store.LogLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%d:%s|", l.Seq, l.Text)
	}
	return b.String()
}

func lines(from, to int64, format string) []store.LogLine {
	var ls []store.LogLine
	for i := from; i <= to; i++ {
		ls = append(ls, store.LogLine{Seq: i, Text: fmt.Sprintf(format, i)})
	}
	return ls
}

func testLogs(t *testing.T, s *store.Store) {
	c := ctx(t)
	step := newStep(t, s, "logs/repo")
	info, err := s.Logs.Info(c, step)
	must(t, err)
	eq(t, "last seq of an empty log", info.LastSeq, -1)
	eq(t, "lines of an empty log", len(collect(t, s.Logs.Lines(c, step, 0))), 0)

	at := time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.UTC)
	odd := []store.LogLine{
		{Seq: 0, Time: at, Text: "plain"},
		{Seq: 1, Time: at, Text: ""},
		{Seq: 2, Text: "multi\nline\r\nwith\x00nul"},
		{Seq: 3, Time: at.Add(time.Second), Text: "ünïcödé ✓ 日本"},
		{Seq: 4, Text: strings.Repeat("x", 200<<10)}, // larger than a chunk
		{Seq: 5, Text: "after the big one"},
	}
	must(t, s.Logs.Append(c, step, odd...))
	got := collect(t, s.Logs.Lines(c, step, 0))
	if len(got) != len(odd) {
		t.Fatalf("read %d lines, want %d", len(got), len(odd))
	}
	for i := range odd {
		if got[i].Seq != odd[i].Seq || got[i].Text != odd[i].Text || !got[i].Time.Equal(odd[i].Time) {
			t.Fatalf("line %d = %+.60v, want %+.60v", i, got[i], odd[i])
		}
	}

	// Reading from an offset, and the tail.
	got = collect(t, s.Logs.Lines(c, step, 3))
	eq(t, "first line from offset 3", got[0].Seq, 3)
	eq(t, "lines from offset 3", len(got), 3)
	got = collect(t, s.Logs.Tail(c, step, 2))
	eq(t, "tail", texts(got), "4:"+strings.Repeat("x", 200<<10)+"|5:after the big one|")
	eq(t, "lines past the end", len(collect(t, s.Logs.Lines(c, step, 6))), 0)

	info, err = s.Logs.Info(c, step)
	must(t, err)
	eq(t, "last seq", info.LastSeq, 5)
	eq(t, "lines", info.Lines, 6)
	var bytes int64
	for _, l := range odd {
		bytes += int64(len(l.Text))
	}
	eq(t, "bytes", info.Bytes, bytes)

	// Stopping early ends the sequence without error.
	n := 0
	for _, err := range s.Logs.Lines(c, step, 0) {
		must(t, err)
		n++
		if n == 2 {
			break
		}
	}
	eq(t, "lines read before break", n, 2)

	// The log of a missing step cannot be appended to.
	wantErr(t, s.Logs.Append(c, step+1000, store.LogLine{Seq: 0, Text: "x"}), store.ErrNotFound)
	must(t, s.Logs.Append(c, step)) // nothing to append

	// A copy has the same lines and size, and is a log of its own.
	copied := newStep(t, s, "logs/copy")
	must(t, s.Logs.Copy(c, step, copied))
	eq(t, "copied log", texts(collect(t, s.Logs.Lines(c, copied, 0))), texts(collect(t, s.Logs.Lines(c, step, 0))))
	cinfo, err := s.Logs.Info(c, copied)
	must(t, err)
	eq(t, "copied log info", cinfo, info)
	must(t, s.Logs.Append(c, copied, store.LogLine{Seq: 6, Text: "only in the copy"}))
	eq(t, "lines of the original after appending to the copy", len(collect(t, s.Logs.Lines(c, step, 0))), len(odd))
	// Copying an empty log copies nothing; a missing step is not found.
	empty := newStep(t, s, "logs/empty")
	must(t, s.Logs.Copy(c, empty, newStep(t, s, "logs/empty-copy")))
	wantErr(t, s.Logs.Copy(c, step, copied+1000), store.ErrNotFound)
}

func testLogAppendIdempotent(t *testing.T, s *store.Store) {
	c := ctx(t)
	step := newStep(t, s, "logs/repo")
	must(t, s.Logs.Append(c, step, lines(0, 9, "line %d")...))
	// The same batch again: the acknowledgement was lost and the agent
	// re-sends it.
	must(t, s.Logs.Append(c, step, lines(0, 9, "line %d")...))
	// An overlapping batch: 5..14, of which 10..14 are new.
	must(t, s.Logs.Append(c, step, lines(5, 14, "line %d")...))
	// A batch out of order within itself.
	batch := lines(15, 19, "line %d")
	batch[0], batch[4] = batch[4], batch[0]
	must(t, s.Logs.Append(c, step, batch...))
	// A gap is allowed; re-sending the lines before it is then a no-op.
	must(t, s.Logs.Append(c, step, lines(25, 26, "line %d")...))
	must(t, s.Logs.Append(c, step, lines(20, 24, "lost %d")...))

	got := collect(t, s.Logs.Lines(c, step, 0))
	want := append(lines(0, 19, "line %d"), lines(25, 26, "line %d")...)
	eq(t, "log after re-sent batches", texts(got), texts(want))
	info, err := s.Logs.Info(c, step)
	must(t, err)
	eq(t, "lines", info.Lines, int64(len(want)))

	// Re-sent batches from concurrent retries are stored once.
	step2 := newStep(t, s, "logs/other")
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- s.Logs.Append(c, step2, lines(0, 99, "dup %d")...) }()
	}
	for range 8 {
		must(t, <-errs)
	}
	got = collect(t, s.Logs.Lines(c, step2, 0))
	eq(t, "log after concurrent re-sends", texts(got), texts(lines(0, 99, "dup %d")))
}

// testLogLargeStreamed writes a 20 MB log and reads it back, asserting
// that reading does not hold the log in memory: the live heap grows by far
// less than the log's size.
func testLogLargeStreamed(t *testing.T, s *store.Store) {
	c := ctx(t)
	step := newStep(t, s, "logs/repo")
	const (
		lineLen   = 100
		total     = 20 << 20
		nLines    = total / lineLen
		batchSize = 2000
	)
	line := func(i int64) string {
		return fmt.Sprintf("%08d %s", i, strings.Repeat("abcdefghij", (lineLen-9)/10+1))[:lineLen]
	}
	sum := crc32.NewIEEE()
	batch := make([]store.LogLine, 0, batchSize)
	for i := int64(0); i < nLines; i++ {
		l := store.LogLine{Seq: i, Text: line(i)}
		sum.Write([]byte(l.Text))
		batch = append(batch, l)
		if len(batch) == batchSize || i == nLines-1 {
			must(t, s.Logs.Append(c, step, batch...))
			batch = batch[:0]
		}
	}
	info, err := s.Logs.Info(c, step)
	must(t, err)
	eq(t, "stored bytes", info.Bytes, int64(nLines*lineLen))

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	var peak uint64
	readSum := crc32.NewIEEE()
	var n, bytesRead int64
	for l, err := range s.Logs.Lines(c, step, 0) {
		must(t, err)
		if l.Seq != n {
			t.Fatalf("line %d has seq %d", n, l.Seq)
		}
		readSum.Write([]byte(l.Text))
		n++
		bytesRead += int64(len(l.Text))
		if n%(nLines/16) == 0 {
			if h := heap(); h > base && h-base > peak {
				peak = h - base
			}
		}
	}
	eq(t, "lines read", n, int64(nLines))
	eq(t, "checksum of the log read back", readSum.Sum32(), sum.Sum32())
	const limit = 6 << 20
	t.Logf("streamed %.1f MiB; live heap grew by at most %.1f MiB", float64(bytesRead)/(1<<20), float64(peak)/(1<<20))
	if peak > limit {
		t.Fatalf("reading a %d MB log grew the live heap by %d bytes, more than %d: the log is not streamed", total>>20, peak, limit)
	}

	tail := collect(t, s.Logs.Tail(c, step, 3))
	eq(t, "tail", texts(tail), texts([]store.LogLine{
		{Seq: nLines - 3, Text: line(nLines - 3)}, {Seq: nLines - 2, Text: line(nLines - 2)}, {Seq: nLines - 1, Text: line(nLines - 1)},
	}))
}
