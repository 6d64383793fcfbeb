package store

import "slices"

// Status is the state of a build, pipeline, step or job.
type Status string

// The statuses. Builds, pipelines and steps use all of them; jobs use
// blocked, pending, running and the four terminal ones (success, failure,
// error, killed).
const (
	// StatusBlocked waits for an approval or for another pipeline.
	StatusBlocked Status = "blocked"
	// StatusPending waits to be picked up.
	StatusPending Status = "pending"
	// StatusRunning is being executed.
	StatusRunning Status = "running"
	// StatusSuccess finished and passed.
	StatusSuccess Status = "success"
	// StatusFailure finished and failed (a non-zero exit code).
	StatusFailure Status = "failure"
	// StatusError could not run to completion for a reason other than the
	// code under test: bad configuration, a lost agent, a timeout.
	StatusError Status = "error"
	// StatusKilled was cancelled.
	StatusKilled Status = "killed"
	// StatusSkipped was not run because of a condition.
	StatusSkipped Status = "skipped"
	// StatusDeclined was not run because its approval was declined.
	StatusDeclined Status = "declined"
)

// FinalStatuses are the terminal statuses: a build, pipeline, step or job
// in one of them never changes again. The drivers' SQL uses this list.
var FinalStatuses = []Status{StatusSuccess, StatusFailure, StatusError, StatusKilled, StatusSkipped, StatusDeclined}

// Done reports whether s is a terminal status.
func (s Status) Done() bool {
	return slices.Contains(FinalStatuses, s)
}
