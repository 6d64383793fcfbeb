package store

import (
	"context"
	"iter"
	"time"
)

// LogLine is one line of a step's output.
type LogLine struct {
	// Seq numbers the step's lines from 0. The writer assigns it, so that a
	// batch sent again after a lost acknowledgement is stored only once.
	Seq int64
	// Time is when the line was written.
	Time time.Time
	// Text is the line without its trailing newline.
	Text string
}

// LogInfo summarises a step's stored log.
type LogInfo struct {
	// Lines and Bytes count the stored lines and their text.
	Lines int64
	Bytes int64
	// LastSeq is the highest stored sequence number, or -1 when the log is
	// empty.
	LastSeq int64
}

// LogStore persists step logs as append-only chunks of bounded size (at
// most about 64 KiB each, or one line when a single line is larger), so a
// log of any size can be written and read without holding it in memory.
//
// A step's log has one writer (the agent running it, through the server).
// Appends for the same step are serialised by the store.
type LogStore interface {
	// Append stores lines at the end of the step's log. Lines whose Seq is
	// not above the highest Seq already stored are duplicates of an earlier
	// batch and are ignored, so re-sending a batch is harmless. Writers must
	// therefore send lines in increasing Seq order; gaps are allowed.
	Append(ctx context.Context, stepID int64, lines ...LogLine) error
	// Lines returns the step's lines with Seq >= from, in order. It reads
	// the log a page of chunks at a time and holds no database connection
	// between pages, so it may be consumed slowly (e.g. to a network
	// client). An error ends the sequence.
	Lines(ctx context.Context, stepID, from int64) iter.Seq2[LogLine, error]
	// Tail returns about the last n lines of the step's log (exactly n
	// when the sequence numbers have no gaps), as Lines does.
	Tail(ctx context.Context, stepID int64, n int64) iter.Seq2[LogLine, error]
	// Info returns the size of the step's log.
	Info(ctx context.Context, stepID int64) (LogInfo, error)
	// Copy copies the log of step from to step to, whose log must be
	// empty, inside the database (a restarted build's copied pipelines
	// keep their logs this way). A step with no log copies nothing.
	Copy(ctx context.Context, from, to int64) error
}
