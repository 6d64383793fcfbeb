package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Target is one configured endpoint: its Config and the Notifier built
// from it. It is immutable and safe to share.
type Target struct {
	cfg Config
	n   Notifier
	// untrusted targets reach public addresses only (guard.go).
	untrusted bool
	// failed, when set, is told about each delivery that failed for good.
	failed func(ev *Event, err error)
}

// NewTarget validates cfg and builds its Notifier: an endpoint of the
// server's administrator (--notify), which may reach any address.
func NewTarget(cfg Config) (*Target, error) {
	n, err := cfg.build()
	if err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, n: n}, nil
}

// NewUntrustedTarget is NewTarget for an endpoint a repository chose (a
// deploy spec's notify: list): its deliveries may reach public addresses
// only, unless the Dispatcher's Options.AllowNets allow the network (see
// BlockedAddressError). failed, when not nil, is called from the
// dispatcher's worker with each delivery that failed for good (refused
// address, 4xx answer, attempts exhausted); it must return quickly.
func NewUntrustedTarget(cfg Config, failed func(ev *Event, err error)) (*Target, error) {
	t, err := NewTarget(cfg)
	if err != nil {
		return nil, err
	}
	t.untrusted, t.failed = true, failed
	return t, nil
}

// NewTargets builds one Target per Config; an error names the entry, e.g.
// "notify[1].url: …".
func NewTargets(cfgs []Config) ([]*Target, error) {
	out := make([]*Target, 0, len(cfgs))
	for i, c := range cfgs {
		t, err := NewTarget(c)
		if err != nil {
			return nil, fmt.Errorf("notify[%d].%w", i, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Config returns the target's configuration.
func (t *Target) Config() Config { return t.cfg }

// Wants reports whether the target's filter (Config.On) lets ev through.
func (t *Target) Wants(ev *Event) bool { return Filter(t.cfg.On, ev) }

// String describes the target for logs, its URL's password hidden.
func (t *Target) String() string { return t.cfg.String() }

// Options tune a Dispatcher. The zero value is usable: every field has a
// default.
type Options struct {
	// QueueSize bounds the deliveries waiting to be sent, retries
	// included (default 256). When it is full, the oldest waiting delivery
	// is dropped to make room.
	QueueSize int
	// MaxAttempts is how many times a delivery is tried before it fails
	// (default 5).
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled before each next
	// one up to MaxBackoff (defaults 1s and 1m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Logger receives one line per failed or dropped delivery (nil
	// discards).
	Logger *slog.Logger
	// Metrics counts outcomes (nil counts nothing).
	Metrics Metrics
	// AllowNets are the networks that untrusted targets (a repository's
	// endpoints, NewUntrustedTarget) may reach although they are not
	// public: loopback, private, link-local…; none by default.
	AllowNets []netip.Prefix
}

// The defaults of Options.
const (
	DefaultQueueSize   = 256
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
)

// Dispatcher sends events to targets from one background worker, so that
// the caller never waits for an endpoint. Create it with NewDispatcher,
// call Send from any goroutine, and Close it once at the end.
//
// Each event becomes one delivery per target that wants it. The worker
// sends deliveries in the order they were queued, each attempt bounded by
// its target's timeout. A delivery that fails with a network error, a
// timeout, a 5xx, 408 or 429 answer is retried after a backoff; until it
// succeeds or fails for good, the later deliveries to the same target wait
// behind it, while the worker goes on with the other targets' — so each
// target receives its events in order. A 4xx answer, or MaxAttempts
// failures, fail a delivery for good and log why.
//
// The queue is bounded (Options.QueueSize). When it is full, Send drops
// the OLDEST waiting delivery to make room, logs it with the running count
// of drops, and counts it (OutcomeDropped): the newest event tells the
// current state (a deployment's end matters more than its start), and a
// full queue means an endpoint has been failing for a while anyway.
type Dispatcher struct {
	targets []*Target
	opts    Options
	log     *slog.Logger
	// guarded sends the deliveries of untrusted targets.
	guarded *http.Client

	mu      sync.Mutex
	queue   []*delivery // ready, oldest first
	retries []*delivery // waiting for their due time
	closed  bool
	dropped int64

	wake chan struct{} // cap 1: the worker has something to look at
	done chan struct{} // closed when the worker returned
	// abortCtx ends attempts in flight when Close's deadline passes.
	abortCtx context.Context
	abort    context.CancelFunc
}

// delivery is one event for one target.
type delivery struct {
	ev      *Event
	t       *Target
	id      string // X-Ferry-Delivery, the same on every attempt
	attempt int    // attempts made
	due     time.Time
}

// NewDispatcher starts a dispatcher whose Send delivers every event to
// the targets that want it (plus the targets given to Send). targets may
// be empty.
func NewDispatcher(targets []*Target, opts Options) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		targets: targets, opts: opts, log: log, guarded: guardedClient(opts.AllowNets),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	d.abortCtx, d.abort = context.WithCancel(context.Background())
	go d.run()
	return d
}

// Targets returns the dispatcher's own targets.
func (d *Dispatcher) Targets() []*Target { return d.targets }

// Send queues ev for the dispatcher's targets and the extra ones that want
// it, and returns at once: it never blocks on an endpoint or a full queue.
// A zero ev.Time is set to now. Send after Close drops the event (and
// logs it). ev must not be modified after Send.
func (d *Dispatcher) Send(ev Event, extra ...*Target) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e := &ev
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ts := range [][]*Target{d.targets, extra} {
		for _, t := range ts {
			if !t.Wants(e) {
				continue
			}
			dl := &delivery{ev: e, t: t, id: newDeliveryID()}
			if d.closed {
				d.dropLocked(dl, "the dispatcher is closed")
				continue
			}
			if len(d.queue)+len(d.retries) >= d.opts.QueueSize {
				if len(d.queue) > 0 {
					d.dropLocked(d.queue[0], "the queue is full")
					d.queue[0] = nil
					d.queue = d.queue[1:]
				} else {
					d.dropLocked(d.retries[0], "the queue is full")
					d.retries = d.retries[1:]
				}
			}
			d.queue = append(d.queue, dl)
		}
	}
	d.signal()
}

// dropLocked counts and logs a dropped delivery; d.mu is held.
func (d *Dispatcher) dropLocked(dl *delivery, why string) {
	d.dropped++
	d.opts.Metrics.Count(dl.t.cfg.Type, OutcomeDropped)
	d.log.Warn("notification dropped: "+why, "target", dl.t.String(), "event", dl.ev.Name(),
		"subject", dl.ev.Subject(), "dropped_total", d.dropped)
}

// Dropped returns how many deliveries were dropped so far.
func (d *Dispatcher) Dropped() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close stops accepting events and waits until every queued delivery has
// been sent or has failed, retries included, or until ctx ends. Then it
// cancels the attempt in flight, drops what is left (counted and logged)
// and returns an error saying how many were not sent. Close may be called
// once; Send may still be called after it (and drops).
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.signal()
	select {
	case <-d.done:
		d.abort()
		return nil
	case <-ctx.Done():
	}
	d.abort()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	left := append(d.queue, d.retries...)
	d.queue, d.retries = nil, nil
	for _, dl := range left {
		d.dropLocked(dl, "shutting down")
	}
	if len(left) > 0 {
		return fmt.Errorf("closing the notification dispatcher: %d notifications not sent: %w", len(left), context.Cause(ctx))
	}
	return nil
}

// run is the worker.
func (d *Dispatcher) run() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		dl, wait, finished := d.next(time.Now())
		if finished {
			return
		}
		if dl == nil {
			timer.Reset(wait)
			select {
			case <-d.wake:
			case <-timer.C:
			case <-d.abortCtx.Done():
				return
			}
			continue
		}
		d.attempt(dl)
		if d.abortCtx.Err() != nil {
			return
		}
	}
}

// next takes the next delivery to send: a retry that is due, else the
// oldest queued one whose target has no retry pending. With none, it
// returns how long to wait for the next retry, and whether the worker is
// finished (closed and nothing left).
func (d *Dispatcher) next(now time.Time) (dl *delivery, wait time.Duration, finished bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wait = time.Hour
	var retrying map[*Target]bool
	for i, r := range d.retries {
		if !r.due.After(now) {
			d.retries = append(d.retries[:i], d.retries[i+1:]...)
			return r, 0, false
		}
		wait = min(wait, r.due.Sub(now))
		if retrying == nil {
			retrying = map[*Target]bool{}
		}
		retrying[r.t] = true
	}
	for i, q := range d.queue {
		if !retrying[q.t] {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			return q, 0, false
		}
	}
	return nil, wait, d.closed && len(d.queue) == 0 && len(d.retries) == 0
}

// attempt makes one attempt of dl and records its outcome.
func (d *Dispatcher) attempt(dl *delivery) {
	dl.attempt++
	actx := withDelivery(d.abortCtx, dl.id)
	if dl.t.untrusted {
		actx = withClient(actx, d.guarded)
	}
	ctx, cancel := context.WithTimeout(actx, dl.t.cfg.timeout())
	err := dl.t.n.Notify(ctx, dl.ev)
	if err != nil && ctx.Err() != nil && d.abortCtx.Err() == nil {
		err = fmt.Errorf("no answer within %s: %w", dl.t.cfg.timeout(), err)
	}
	cancel()
	typ := dl.t.cfg.Type
	switch {
	case err == nil:
		d.opts.Metrics.Count(typ, OutcomeSent)
		return
	case d.abortCtx.Err() != nil:
		// Close's deadline passed: Close drops what is left.
		d.mu.Lock()
		d.queue = append([]*delivery{dl}, d.queue...)
		d.mu.Unlock()
		return
	case IsPermanent(err) || dl.attempt >= d.opts.MaxAttempts:
		d.opts.Metrics.Count(typ, OutcomeFailed)
		d.log.Warn("notification failed", "target", dl.t.String(), "event", dl.ev.Name(),
			"subject", dl.ev.Subject(), "attempts", dl.attempt, "err", err)
		if dl.t.failed != nil {
			dl.t.failed(dl.ev, err)
		}
		return
	}
	d.opts.Metrics.Count(typ, OutcomeRetried)
	backoff := d.opts.Backoff << (dl.attempt - 1)
	if backoff <= 0 || backoff > d.opts.MaxBackoff {
		backoff = d.opts.MaxBackoff
	}
	dl.due = time.Now().Add(backoff)
	d.log.Debug("notification will be retried", "target", dl.t.String(), "event", dl.ev.Name(),
		"attempt", dl.attempt, "in", backoff, "err", err)
	d.mu.Lock()
	d.retries = append(d.retries, dl)
	d.mu.Unlock()
}
