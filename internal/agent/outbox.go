package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/runtime"
)

// Limits of the outbox.
const (
	// flushInterval is how long a log line may wait in a batch before the
	// batch is queued for sending. Half a second, so that a line reaches
	// the server within a second even when the request takes a while.
	flushInterval = 500 * time.Millisecond
	// maxBatchLines and maxBatchBytes close a batch early.
	maxBatchLines = 1000
	maxBatchBytes = 256 << 10
	// maxOutboxBytes bounds the log data a job holds in memory while the
	// server does not acknowledge it. Beyond it, the step writing output
	// blocks (its process stalls on a full pipe) until the server catches
	// up: output is slowed down rather than dropped or buffered without
	// limit.
	maxOutboxBytes = 32 << 20
	// lineOverhead is the accounted cost of one line besides its bytes.
	lineOverhead = 16
	// requestTimeout bounds one call to the server.
	requestTimeout = 30 * time.Second
	// maxRetryDelay caps the backoff between two attempts to deliver.
	maxRetryDelay = 5 * time.Second
	// reportLinger is how long a queued report waits for more to join it
	// in one request, unless the job has finished (then everything goes at
	// once). A short job's step updates, its log lines and its completion
	// then make one request instead of four; a step's "running" state
	// reaches the server this much later.
	reportLinger = 30 * time.Millisecond
)

// errRejected marks a report that the server refused for good (a 4xx
// other than 401, 403 and 409): re-sending it cannot succeed.
var errRejected = errors.New("report rejected by the server")

type entryKind int

const (
	kindStep entryKind = iota
	kindLogs
	kindComplete
	// kindReport carries several queued entries in one request.
	kindReport
)

// entry is one queued report. Entries are immutable once queued.
type entry struct {
	kind     entryKind
	step     rpc.StepUpdate
	logs     rpc.LogBatch
	complete rpc.CompleteRequest
	report   rpc.Report
	// queued is when the entry was queued.
	queued time.Time
	// size is the accounted memory of a log entry.
	size int
	// opened is when an open log batch got its first line.
	opened time.Time
}

// outbox holds the reports of one job, in the order they were made, until
// the server acknowledges them. One goroutine (run) sends them one at a
// time, re-sending each until it is acknowledged: nothing the server has
// acknowledged is lost by the agent, and nothing it has not is dropped,
// unless the job itself is given up (lease lost, token refused, hard
// shutdown). The Complete report is queued last and so is sent only after
// everything before it was acknowledged.
//
// Log lines collect in one open batch per step, which is queued when it
// is flushInterval old, full, or the step finishes. The methods other than
// run are safe for concurrent use; StepLog may block (see maxOutboxBytes).
type outbox struct {
	client *rpc.Client
	jobID  int64
	token  string
	log    *slog.Logger
	// flushEvery, maxBytes and linger are flushInterval,
	// maxOutboxBytes and reportLinger, except in tests.
	flushEvery time.Duration
	maxBytes   int
	linger     time.Duration

	wake chan struct{}

	mu    sync.Mutex
	space *sync.Cond // broadcast when bytes shrink or blocking ends
	queue []*entry
	open  map[string]*entry
	seq   map[string]int64
	bytes int
	// closed is set once Complete is queued; later reports are ignored.
	closed bool
	// stopped is set when the sender has ended; reports are dropped.
	stopped bool
	// unbounded is set when the run is ending: writers never block then,
	// since a blocked writer would keep a killed step from ending.
	unbounded bool
	failing   bool
	// blocked counts the writers waiting for space.
	blocked int
}

func newOutbox(client *rpc.Client, job *rpc.Job, log *slog.Logger) *outbox {
	o := &outbox{
		client:     client,
		jobID:      job.ID,
		token:      job.LeaseToken,
		log:        log,
		flushEvery: flushInterval,
		maxBytes:   maxOutboxBytes,
		linger:     reportLinger,
		wake:       make(chan struct{}, 1),
		open:       map[string]*entry{},
		seq:        map[string]int64{},
	}
	o.space = sync.NewCond(&o.mu)
	return o
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// step queues a step update. A final update first queues the step's open
// log batch, so that the server has every line before it learns the step
// ended.
func (o *outbox) step(u rpc.StepUpdate) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.stopped {
		return
	}
	if e := o.open[u.Step]; e != nil {
		o.enqueueOpen(e)
	}
	u.LeaseToken = o.token
	o.queue = append(o.queue, &entry{kind: kindStep, step: u, queued: time.Now()})
	o.signal()
}

// line adds one log line of step. It blocks while the outbox holds more
// than maxBytes, unless unblock was called or the sender ended.
func (o *outbox) line(step string, line []byte) {
	size := len(line) + lineOverhead
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.bytes >= o.maxBytes && !o.stopped && !o.unbounded && !o.closed {
		o.blocked++
		o.space.Wait()
		o.blocked--
	}
	if o.closed || o.stopped {
		return
	}
	e := o.open[step]
	if e != nil && (len(e.logs.Lines) >= maxBatchLines || e.size+size > maxBatchBytes) {
		o.enqueueOpen(e)
		e = nil
	}
	if e == nil {
		e = &entry{kind: kindLogs, opened: time.Now()}
		e.logs = rpc.LogBatch{LeaseToken: o.token, Step: step, Seq: o.seq[step]}
		o.open[step] = e
		// The sender may be idle without a flush timer: let it set one.
		o.signal()
	}
	e.logs.Lines = append(e.logs.Lines, string(line))
	e.size += size
	o.seq[step]++
	o.bytes += size
	if len(e.logs.Lines) >= maxBatchLines {
		o.enqueueOpen(e)
	}
}

// enqueueOpen moves an open batch to the queue. o.mu must be held.
func (o *outbox) enqueueOpen(e *entry) {
	delete(o.open, e.logs.Step)
	e.queued = time.Now()
	o.queue = append(o.queue, e)
	o.signal()
}

// finish queues the Complete report after every open batch; later reports
// are ignored.
func (o *outbox) finish(status, errText string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.stopped {
		return
	}
	for _, e := range o.open {
		o.enqueueOpen(e)
	}
	o.queue = append(o.queue, &entry{kind: kindComplete, queued: time.Now(),
		complete: rpc.CompleteRequest{LeaseToken: o.token, Status: status, Error: errText}})
	o.closed = true
	o.space.Broadcast()
	o.signal()
}

// unblock lets writers add lines beyond maxBytes from now on.
func (o *outbox) unblock() {
	o.mu.Lock()
	o.unbounded = true
	o.space.Broadcast()
	o.mu.Unlock()
}

// stop drops everything and releases blocked writers.
func (o *outbox) stop() {
	o.mu.Lock()
	o.stopped = true
	o.queue, o.open, o.bytes = nil, nil, 0
	o.space.Broadcast()
	o.mu.Unlock()
}

// next flushes the open batches that are due and returns the report to
// send next and how many queued entries it covers. A single queued entry
// goes to its own endpoint; several are sent as one rpc.Report, in order,
// with consecutive log batches of one step merged (after an outage the
// queue holds many small ones). Until the job has finished, the first
// queued entry waits up to o.linger for others to join it. With nothing
// to send, it returns how long to wait before asking again (the oldest
// open batch's due time or the end of the linger), or 0 if nothing is
// due.
func (o *outbox) next() (req *entry, n int, wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	for _, e := range o.open {
		if now.Sub(e.opened) >= o.flushEvery {
			o.enqueueOpen(e)
		}
	}
	lingering := false
	if len(o.queue) > 0 && !o.closed {
		if d := o.linger - now.Sub(o.queue[0].queued); d > 0 {
			lingering, wait = true, d
		}
	}
	if len(o.queue) == 0 || lingering {
		for _, e := range o.open {
			d := o.flushEvery - now.Sub(e.opened)
			if wait == 0 || d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		return nil, 0, wait
	}
	if len(o.queue) == 1 {
		return o.queue[0], 1, 0
	}
	rep := &entry{kind: kindReport, report: rpc.Report{LeaseToken: o.token}}
	var last *rpc.LogBatch // the report's last item, when it is a log batch
	for _, e := range o.queue {
		if n > 0 && rep.size+e.size > maxBatchBytes {
			break
		}
		n++
		rep.size += e.size
		switch e.kind {
		case kindStep:
			u := e.step
			rep.report.Items = append(rep.report.Items, rpc.ReportItem{Step: &u})
			last = nil
		case kindLogs:
			if last != nil && last.Step == e.logs.Step && last.Seq+int64(len(last.Lines)) == e.logs.Seq {
				last.Lines = append(last.Lines, e.logs.Lines...)
				continue
			}
			b := e.logs
			b.Lines = append([]string(nil), e.logs.Lines...)
			rep.report.Items = append(rep.report.Items, rpc.ReportItem{Logs: &b})
			last = &b
		case kindComplete:
			c := e.complete
			rep.report.Complete = &c
		}
	}
	return rep, n, 0
}

// ack removes the first n queued entries.
func (o *outbox) ack(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return
	}
	for _, e := range o.queue[:n] {
		o.bytes -= e.size
	}
	clear(o.queue[:n])
	o.queue = o.queue[n:]
	o.space.Broadcast()
}

// run sends the queued reports in order until the Complete report is
// acknowledged (nil), ctx ends (its error), or the server says the lease
// is gone or the token is refused (rpc.ErrLeaseLost, rpc.ErrUnauthorized).
// Network errors and 5xx answers are retried with backoff. When run
// returns, the outbox is stopped.
func (o *outbox) run(ctx context.Context) error {
	defer o.stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		e, n, wait := o.next()
		if e == nil {
			var due <-chan time.Time
			if wait > 0 {
				timer.Reset(wait)
				due = timer.C
			}
			select {
			case <-o.wake:
			case <-due:
			case <-ctx.Done():
				return ctx.Err()
			}
			timer.Stop()
			continue
		}
		err := o.deliver(ctx, e)
		switch {
		case errors.Is(err, errRejected):
			o.log.Error("the server rejected a report; dropping it", "err", err)
		case err != nil:
			return err
		}
		o.ack(n)
		if e.completes() {
			return nil
		}
	}
}

// deliver sends one report until the server acknowledges it.
func (o *outbox) deliver(ctx context.Context, e *entry) error {
	bo := backoff{min: 100 * time.Millisecond, max: maxRetryDelay}
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		var err error
		switch e.kind {
		case kindStep:
			err = o.client.UpdateStep(rctx, o.jobID, &e.step)
		case kindLogs:
			err = o.client.AppendLogs(rctx, o.jobID, &e.logs)
		case kindComplete:
			err = o.client.Complete(rctx, o.jobID, &e.complete)
		case kindReport:
			err = o.client.Report(rctx, o.jobID, &e.report)
		}
		cancel()
		if err == nil {
			if o.failing {
				o.failing = false
				o.log.Info("reports reach the server again")
			}
			return nil
		}
		if errors.Is(err, rpc.ErrLeaseLost) && e.completes() && attempt > 1 {
			// An earlier attempt may have completed the job and lost
			// only its answer: the lease then ended with it.
			o.log.Info("the lease ended while completing the job; an earlier attempt most likely completed it", "err", err)
			return nil
		}
		if errors.Is(err, rpc.ErrLeaseLost) || errors.Is(err, rpc.ErrUnauthorized) {
			return err
		}
		if se := (*rpc.StatusError)(nil); errors.As(err, &se) && !se.Temporary() {
			return fmt.Errorf("%w: %w", errRejected, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !o.failing {
			o.failing = true
			o.log.Warn("reporting to the server failed; keeping reports and retrying", "err", err)
		}
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

// completes reports whether e ends the job.
func (e *entry) completes() bool {
	return e.kind == kindComplete || (e.kind == kindReport && e.report.Complete != nil)
}

// reporter turns the runtime's events into outbox reports.
type reporter struct{ o *outbox }

var _ runtime.Reporter = reporter{}

// PipelineStarted implements runtime.Reporter.
func (reporter) PipelineStarted(*backend.Spec) {}

// StepStarted implements runtime.Reporter.
func (r reporter) StepStarted(_ *backend.Spec, step *backend.Step) {
	r.o.step(rpc.StepUpdate{Step: step.Name, Status: string(runtime.StatusRunning), Started: time.Now()})
}

// StepLog implements runtime.Reporter.
func (r reporter) StepLog(_ *backend.Spec, step *backend.Step, line []byte) {
	r.o.line(step.Name, line)
}

// StepFinished implements runtime.Reporter.
func (r reporter) StepFinished(_ *backend.Spec, step *backend.Step, res *runtime.StepResult) {
	r.o.step(rpc.StepUpdate{
		Step:     step.Name,
		Status:   string(res.Status),
		ExitCode: res.ExitCode,
		Error:    res.Error,
		Started:  res.Started,
		Finished: res.Finished,
	})
}

// PipelineFinished implements runtime.Reporter.
func (reporter) PipelineFinished(*backend.Spec, *runtime.Result) {}
