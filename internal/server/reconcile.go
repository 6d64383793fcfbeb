package server

import (
	"context"
	"time"
)

// reconcile brings a build in line with its jobs and moves it along; see
// build.Lifecycle.Reconcile.
func (s *Server) reconcile(ctx context.Context, buildID int64) error {
	return s.builds.Reconcile(ctx, buildID)
}

// detachedTimeout bounds the recording of an agent's change (a lease, a
// completion) that outlives the agent's request.
const detachedTimeout = 30 * time.Second
