package server

import (
	"context"
	"errors"
	"sync"

	"github.com/ferryci/ferry/internal/store"
)

// leaseCacheSize bounds the leases a leaseCache holds; when it is reached
// the cache starts over.
const leaseCacheSize = 4096

// leaseCache remembers the leases this server handed out: for a job and
// lease token, the job's pipeline, build and attempt. These never change
// for one lease token (a new lease gets a new token), so an agent's
// report needs only the cheap store check that the lease is still current
// (JobQueue.CheckLease), not a read of the whole job. It is safe for
// concurrent use.
type leaseCache struct {
	mu   sync.Mutex
	jobs map[int64]leaseInfo
}

// leaseInfo is what a leaseCache holds for one job.
type leaseInfo struct {
	token      string
	pipelineID int64
	buildID    int64
	repoID     int64
	attempts   int
}

func newLeaseCache() *leaseCache {
	return &leaseCache{jobs: map[int64]leaseInfo{}}
}

// put remembers the lease of j.
func (c *leaseCache) put(j *store.Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.jobs) >= leaseCacheSize {
		clear(c.jobs)
	}
	c.jobs[j.ID] = leaseInfo{token: j.LeaseToken, pipelineID: j.PipelineID, buildID: j.BuildID, repoID: j.RepoID,
		attempts: j.Attempts}
}

// get returns the remembered lease of job id if its token is token.
func (c *leaseCache) get(id int64, token string) (leaseInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.jobs[id]
	return l, ok && token != "" && l.token == token
}

// forget drops job id.
func (c *leaseCache) forget(id int64) {
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
}

// reportedJob checks that token is the current lease of job id and returns
// the job's identity (ID, PipelineID, BuildID, RepoID, Attempts, LeaseToken; not
// its payload or times). A lease this server remembers costs one small
// read; any other is read from the store and remembered.
func (s *Server) reportedJob(ctx context.Context, id int64, token string) (*store.Job, error) {
	l, ok := s.leases.get(id, token)
	if !ok {
		j, err := s.leasedJob(ctx, id, token)
		if err != nil {
			return nil, err
		}
		s.leases.put(j)
		return j, nil
	}
	err := s.store.Jobs.CheckLease(ctx, id, token)
	if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) {
		s.leases.forget(id)
		return nil, errLeaseLost(id)
	}
	if err != nil {
		return nil, err
	}
	return &store.Job{ID: id, PipelineID: l.pipelineID, BuildID: l.buildID, RepoID: l.repoID, Attempts: l.attempts,
		LeaseToken: token, Status: store.StatusRunning}, nil
}
