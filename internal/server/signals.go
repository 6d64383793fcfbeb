package server

import (
	"context"
	"sync"
	"time"
)

// broadcast wakes every goroutine waiting on it. A waiter takes the
// channel from wait before it checks for work, and then blocks on the
// channel: a notify in between closes that channel, so no wake-up is lost.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

// wait returns a channel that is closed by the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// notify wakes every current waiter.
func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// stepSignals is a broadcast per step, for log streams: it wakes the
// streams of a step when lines arrive or the step ends. Only steps with a
// waiting stream hold an entry.
type stepSignals struct {
	mu      sync.Mutex
	waiters map[int64]*stepWaiters
}

type stepWaiters struct {
	ch    chan struct{}
	count int
}

func newStepSignals() *stepSignals { return &stepSignals{waiters: map[int64]*stepWaiters{}} }

// subscribe registers interest in a step; call the returned function when
// done. wait then returns the channel to block on.
func (s *stepSignals) subscribe(step int64) (unsubscribe func()) {
	s.mu.Lock()
	w := s.waiters[step]
	if w == nil {
		w = &stepWaiters{ch: make(chan struct{})}
		s.waiters[step] = w
	}
	w.count++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.count--; w.count == 0 {
			delete(s.waiters, step)
		}
	}
}

// wait returns a channel closed by the next notify of step; the caller
// must be subscribed.
func (s *stepSignals) wait(step int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiters[step]; w != nil {
		return w.ch
	}
	return nil
}

// notify wakes the streams of step.
func (s *stepSignals) notify(step int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiters[step]; w != nil {
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

// jobsEnqueued wakes the lease long-polls waiting on this server and, when
// other servers may share the database, theirs.
func (s *Server) jobsEnqueued() {
	s.jobsReady.notify()
	if s.store.Signals != nil {
		select {
		case s.jobSignal <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// sendJobSignals tells the other servers that jobs are ready, once for
// any number of jobsEnqueued calls made while it was busy, until ctx ends.
func (s *Server) sendJobSignals(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.jobSignal:
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.store.Signals.NotifyJobs(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			// The other servers' lease polls find the jobs anyway.
			s.log.Warn("telling other servers that jobs are ready", "err", err)
		}
	}
}
