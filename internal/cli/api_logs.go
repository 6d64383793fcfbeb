package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

// LogsOptions are the flags of `ferry logs`.
type LogsOptions struct {
	// Tail prints only the last Tail lines; negative prints them all.
	Tail int
	// Follow streams the log while the step runs and returns when the
	// step has ended.
	Follow bool
	// Terminal says that Stdout is a terminal: unless Raw is set, each
	// line then goes through TerminalSafe, since a step's output may hold
	// escape sequences that act on the terminal.
	Terminal bool
	// Raw prints the log's bytes as they are, also on a terminal.
	Raw bool
}

// Logs runs `ferry logs`: it prints a step's log. The pipeline and the
// step are each given by number (as `ferry build info` shows them) or by
// name. With Follow it prints lines as they come and returns once the
// step has ended, whatever its status; a step that did not succeed is
// noted on Stderr.
func (a *API) Logs(ctx context.Context, slug string, number int64, pipeline, step string, o LogsOptions) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	pn, sn, err := a.resolveStep(ctx, slug, number, pipeline, step)
	if err != nil {
		return err
	}
	safe := o.Terminal && !o.Raw
	if !o.Follow {
		rc, err := a.Client.Log(ctx, slug, number, pn, sn, o.Tail)
		if err != nil {
			return fmt.Errorf("getting the log of build %d of %s, step %d.%d: %w", number, slug, pn, sn, err)
		}
		defer rc.Close()
		if safe {
			err = copyTerminalSafe(a.Stdout, rc)
		} else {
			_, err = io.Copy(a.Stdout, rc)
		}
		if err != nil {
			return fmt.Errorf("reading the log of build %d of %s, step %d.%d: %w", number, slug, pn, sn, err)
		}
		return nil
	}
	out := newBufferedOutput(a.Stdout)
	defer out.Close()
	var print func(apiclient.LogLine) error
	var tail *tailBuffer
	if o.Tail >= 0 {
		tail = newTailBuffer(out, o.Tail)
		defer tail.stop()
		print = tail.add
	} else {
		print = func(l apiclient.LogLine) error {
			out.mu.Lock()
			_, _ = out.w.WriteString(l.Text)
			err := out.w.WriteByte('\n')
			out.mu.Unlock()
			return err
		}
	}
	if safe {
		raw := print
		print = func(l apiclient.LogLine) error {
			l.Text = TerminalSafe(l.Text)
			return raw(l)
		}
	}
	end, err := a.Client.FollowLog(ctx, slug, number, pn, sn, 0, print)
	if tail != nil {
		tail.release()
	}
	if err != nil {
		return fmt.Errorf("following the log of build %d of %s, step %d.%d: %w", number, slug, pn, sn, err)
	}
	if end.Status != apiclient.StatusSuccess {
		out.Flush()
		fmt.Fprintf(a.Stderr, "ferry: step %d.%d ended: %s (exit code %d)\n", pn, sn, end.Status, end.ExitCode)
	}
	return nil
}

// resolveStep turns a pipeline and a step, each a number or a name, into
// numbers. Names are looked up in the build.
func (a *API) resolveStep(ctx context.Context, slug string, number int64, pipeline, step string) (int64, int64, error) {
	pn, perr := strconv.ParseInt(pipeline, 10, 64)
	sn, serr := strconv.ParseInt(step, 10, 64)
	if perr == nil && serr == nil {
		if pn <= 0 || sn <= 0 {
			return 0, 0, usagef("pipeline %d and step %d must be positive numbers", pn, sn)
		}
		return pn, sn, nil
	}
	b, err := a.Client.Build(ctx, slug, number)
	if err != nil {
		return 0, 0, fmt.Errorf("getting build %d of %s: %w", number, slug, err)
	}
	var p *apiclient.Pipeline
	for _, c := range b.Pipelines {
		if (perr == nil && c.Number == pn) || (perr != nil && c.Name == pipeline) {
			p = c
			break
		}
	}
	if p == nil {
		return 0, 0, fmt.Errorf("build %d of %s has no pipeline %q", number, slug, pipeline)
	}
	for _, s := range p.Steps {
		if (serr == nil && s.Number == sn) || (serr != nil && s.Name == step) {
			return p.Number, s.Number, nil
		}
	}
	return 0, 0, fmt.Errorf("pipeline %q of build %d of %s has no step %q", p.Name, number, slug, step)
}

// How `logs --follow --tail N` tells the backlog from live lines: the
// server sends what is logged already in one burst, so the backlog ends
// when the stream pauses for tailQuiet, or after tailMaxWait at the
// latest.
const (
	tailQuiet   = 200 * time.Millisecond
	tailMaxWait = 2 * time.Second
)

// tailBuffer keeps the last n lines of a followed log's backlog and
// prints them once the backlog has arrived; later lines pass straight
// through. Its methods are safe for concurrent use.
type tailBuffer struct {
	mu        sync.Mutex
	out       *bufferedOutput
	n         int
	ring      []string
	buffering bool
	quiet     *time.Timer
	max       *time.Timer
}

func newTailBuffer(out *bufferedOutput, n int) *tailBuffer {
	t := &tailBuffer{out: out, n: n, buffering: true}
	t.quiet = time.AfterFunc(tailQuiet, t.release)
	t.max = time.AfterFunc(tailMaxWait, t.release)
	return t
}

// add takes one line.
func (t *tailBuffer) add(l apiclient.LogLine) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buffering {
		if t.n > 0 {
			if len(t.ring) == t.n {
				t.ring = t.ring[1:]
			}
			t.ring = append(t.ring, l.Text)
		}
		t.quiet.Reset(tailQuiet)
		return nil
	}
	return t.write(l.Text)
}

// release prints the kept lines and ends buffering.
func (t *tailBuffer) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.buffering {
		return
	}
	t.buffering = false
	for _, s := range t.ring {
		_ = t.write(s)
	}
	t.ring = nil
}

func (t *tailBuffer) write(s string) error {
	t.out.mu.Lock()
	defer t.out.mu.Unlock()
	_, _ = t.out.w.WriteString(s)
	return t.out.w.WriteByte('\n')
}

// stop stops the timers.
func (t *tailBuffer) stop() {
	t.quiet.Stop()
	t.max.Stop()
}
