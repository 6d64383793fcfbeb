package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// sweepEvery is how often the maintenance loop reconciles every unfinished
// build, to finish what a crashed server left half done.
const sweepEvery = 30 * time.Second

// maintainTick is how often the maintenance loop runs: every second, or
// three times per lease TTL when that is shorter, so that a lost agent's
// job reaches a definite state soon after its lease expires.
func (s *Server) maintainTick() time.Duration {
	return min(time.Second, s.cfg.LeaseTTL/3)
}

// expiryMargin is how long past its expiry a lease must be before the job
// is re-queued or failed: a third of the lease TTL, the longest interval
// between an agent's heartbeats. It absorbs a heartbeat that is late and
// clocks that differ a little between servers sharing a database.
func (s *Server) expiryMargin() time.Duration { return s.cfg.LeaseTTL / 3 }

// leaseGrace is how long after its own start, and after the store last
// failed, a server leaves expired leases alone: one lease TTL, at least
// three heartbeat intervals. After an outage of the server or its database
// longer than the TTL every lease looks expired, but the agents that hold
// them are alive and retry their heartbeats; the grace lets those get
// through (ExtendLease accepts an expired lease whose job was not
// re-queued yet) before any job is taken away from a live agent.
func (s *Server) leaseGrace() time.Duration { return s.cfg.LeaseTTL }

// leaseHold keeps the maintenance loop from expiring leases until a point
// in time, which start-up and every store failure push back. It is safe
// for concurrent use.
type leaseHold struct {
	mu    sync.Mutex
	until time.Time
}

// extend holds lease expiry until at least t.
func (h *leaseHold) extend(t time.Time) {
	h.mu.Lock()
	if t.After(h.until) {
		h.until = t
	}
	h.mu.Unlock()
}

// holds reports whether expiry is still held at now, and until when.
func (h *leaseHold) holds(now time.Time) (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.until), h.until
}

// storeFailed records that the store failed at now: leases are not
// expired until a grace period after it is back.
func (s *Server) storeFailed(now time.Time) {
	s.leaseHold.extend(now.Add(s.leaseGrace()))
}

// maintain runs the maintenance loop until ctx is done. Every server runs
// it; the store makes each expired lease and stale job be handled once.
func (s *Server) maintain(ctx context.Context) error {
	t := time.NewTicker(s.maintainTick())
	defer t.Stop()
	var lastSweep time.Time
	for {
		now := time.Now()
		sweep := now.Sub(lastSweep) >= sweepEvery
		if err := s.maintainOnce(ctx, now, sweep); err != nil && ctx.Err() == nil {
			s.log.Error("maintenance", "err", err)
		}
		if sweep {
			lastSweep = now
			s.agents.prune(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// maintainOnce expires leases, fails jobs that waited too long for an
// agent, and reconciles the builds they belong to; with sweep, it also
// reconciles every unfinished build, and takes up the side effects of
// finished builds that their server left (pendingEffects).
func (s *Server) maintainOnce(ctx context.Context, now time.Time, sweep bool) error {
	builds := map[int64]bool{}
	var errs []error
	defer func() {
		// A bug that fails every round must not hold expiry forever:
		// only a store that does not answer does.
		if len(errs) > 0 && ctx.Err() == nil && s.storeDown(ctx) {
			s.storeFailed(time.Now())
		}
	}()

	var expired []*store.Job
	if held, until := s.leaseHold.holds(now); held {
		s.log.Debug("not expiring leases yet: grace period after start-up or a store failure", "until", until)
	} else {
		var err error
		// Only leases expired by the margin: a job is never taken from
		// an agent whose heartbeat is merely late.
		expired, err = s.store.Jobs.ExpireLeases(ctx, now.Add(-s.expiryMargin()), s.cfg.MaxAttempts)
		if err != nil {
			errs = append(errs, err)
		}
	}
	requeued := false
	for _, j := range expired {
		s.agents.done(j.ID)
		s.leases.forget(j.ID)
		builds[j.BuildID] = true
		switch j.Status {
		case store.StatusPending:
			requeued = true
			s.log.Warn("lease expired: job re-queued", "job", j.ID, "build_id", j.BuildID, "attempts", j.Attempts)
		default:
			s.log.Warn("lease expired: job ended", "job", j.ID, "build_id", j.BuildID, "status", j.Status, "error", j.Error)
		}
	}
	if requeued {
		s.jobsEnqueued()
	}

	stale, err := s.failStale(ctx, now)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range stale {
		builds[id] = true
	}

	if sweep {
		if err := s.pendingEffects(ctx, now); err != nil {
			errs = append(errs, err)
		}
		ids, err := s.unfinishedBuilds(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for _, id := range ids {
			builds[id] = true
		}
	}
	for id := range builds {
		if err := s.reconcile(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// failStale fails the jobs pending for longer than the pending timeout,
// giving each pipeline the reason no agent took it, and returns the builds
// it touched.
func (s *Server) failStale(ctx context.Context, now time.Time) ([]int64, error) {
	timeout := s.cfg.PendingTimeout
	generic := fmt.Sprintf("no agent took the job within %s", timeout)
	jobs, err := s.store.Jobs.FailStalePending(ctx, now.Add(-timeout), generic)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	agents, err := s.store.Agents.List(ctx)
	if err != nil {
		return nil, err
	}
	running := map[int64]int{}
	rs, err := s.store.Jobs.List(ctx, store.JobFilter{Status: store.StatusRunning})
	if err != nil {
		return nil, err
	}
	for _, j := range rs {
		running[j.LeaseOwner]++
	}
	var builds []int64
	for _, j := range jobs {
		builds = append(builds, j.BuildID)
		reason := fmt.Sprintf("%s: %s", generic, waitingReason(j.Labels, agents, running, now))
		s.log.Warn("job timed out waiting for an agent", "job", j.ID, "build_id", j.BuildID, "reason", reason)
		err := s.builds.FailPipeline(ctx, j.PipelineID, reason, now)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return builds, err
		}
	}
	return builds, nil
}

// unfinishedBuilds returns the builds that are not finished yet, of every
// repo.
func (s *Server) unfinishedBuilds(ctx context.Context) ([]int64, error) {
	repos, err := s.store.Repos.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, r := range repos {
		for _, st := range []store.Status{store.StatusRunning, store.StatusPending, store.StatusBlocked} {
			bs, err := s.store.Builds.List(ctx, r.ID, store.BuildFilter{Status: st, Limit: 1000})
			if err != nil {
				return ids, err
			}
			for _, b := range bs {
				ids = append(ids, b.ID)
			}
		}
	}
	return ids, nil
}
