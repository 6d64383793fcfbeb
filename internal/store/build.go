package store

import (
	"context"
	"time"
)

// Approval is the approval state of a build.
type Approval string

// The approval states.
const (
	// ApprovalNone: the build needed no approval.
	ApprovalNone Approval = ""
	// ApprovalPending: the build waits for a user to approve or decline
	// it, for example a pull request from a fork.
	ApprovalPending Approval = "pending"
	// ApprovalApproved: a user approved the build.
	ApprovalApproved Approval = "approved"
	// ApprovalDeclined: a user declined the build; it does not run.
	ApprovalDeclined Approval = "declined"
)

// The build events, as in Drone.
const (
	EventPush        = "push"
	EventPullRequest = "pull_request"
	EventTag         = "tag"
	EventCron        = "cron"
	EventCustom      = "custom"
	EventPromote     = "promote"
	EventRollback    = "rollback"
)

// Build is one trigger of one commit of a repo.
type Build struct {
	ID     int64
	RepoID int64
	// Number counts the repo's builds from 1; the store assigns it.
	Number int64
	// Parent is the number of the build this one restarts, or 0.
	Parent int64
	// Event is one of the Event constants.
	Event string
	// Ref is the git ref, e.g. "refs/heads/main" or "refs/pull/7/head".
	Ref string
	// Branch is the branch pushed to, or a pull request's target branch.
	Branch string
	// SourceBranch is a pull request's source branch.
	SourceBranch string
	Commit       string
	// Before is the commit the ref pointed to before a push.
	Before      string
	Message     string
	Author      string
	AuthorEmail string
	// Sender is who triggered the build: the forge user or the ferry user.
	Sender string
	// PullRequest is the pull request number, or 0.
	PullRequest int64
	// Fork is set for a pull request whose source repository is a fork.
	Fork bool
	// Cron names the cron job that triggered the build.
	Cron string
	// Params are the parameters of a manual build.
	Params map[string]string
	Status Status
	// Error explains an error status.
	Error string
	// Warnings are the problems found in the pipeline file that Drone
	// tolerates (unknown keys, legacy forms), one "FILE:LINE:COL: warning:
	// message" line each. The build runs regardless.
	Warnings   []string
	Approval   Approval
	ApprovedBy string
	Created    time.Time
	Started    time.Time
	Finished   time.Time
	Updated    time.Time
	// Version is incremented by every Update. Update fails with ErrConflict
	// when the stored version differs from this one, so that concurrent
	// writers (several servers) never overwrite each other blindly.
	Version int64
}

// BuildFilter selects builds for BuildStore.List. Zero fields do not
// filter.
type BuildFilter struct {
	Branch string
	// Commit selects the builds of one commit SHA.
	Commit      string
	PullRequest int64
	Event       string
	Status      Status
	// Before returns only builds numbered lower, for paging.
	Before int64
	// Limit caps the result; zero means 50.
	Limit int
}

// BuildStore persists builds.
type BuildStore interface {
	// Create inserts b with the next build number of its repo, together
	// with its pipelines and their steps, in one transaction. For each
	// pipeline whose Job field is set, the job is enqueued in the same
	// transaction. Create sets the IDs, numbers, Created and Version of
	// everything it inserts. Numbers are unique per repo even when many
	// builds are created at once.
	Create(ctx context.Context, b *Build, pipelines []*Pipeline) error
	// Get returns the build with the given ID, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Build, error)
	// GetWithRepo returns the build with the given ID and its repo, read
	// together, or ErrNotFound.
	GetWithRepo(ctx context.Context, id int64) (*Build, *Repo, error)
	// GetNumber returns the repo's build with the given number, or
	// ErrNotFound.
	GetNumber(ctx context.Context, repoID, number int64) (*Build, error)
	// List returns a repo's builds, newest first.
	List(ctx context.Context, repoID int64, f BuildFilter) ([]*Build, error)
	// Update writes b's mutable fields (status, error, approval, times) if
	// b.Version is still current, and increments b.Version; otherwise it
	// returns ErrConflict and changes nothing.
	Update(ctx context.Context, b *Build) error
	// Delete removes the build with its pipelines, steps, logs and jobs.
	Delete(ctx context.Context, id int64) error
}

// Pipeline is one pipeline (a YAML document; Drone calls it a stage) of a
// build.
type Pipeline struct {
	ID      int64
	BuildID int64
	// Number counts the build's pipelines from 1.
	Number int64
	Name   string
	Status Status
	// Error explains an error status.
	Error    string
	ExitCode int
	// DependsOn names the pipelines that must finish first.
	DependsOn []string
	// Agent is the name of the agent that ran the pipeline.
	Agent    string
	Created  time.Time
	Started  time.Time
	Finished time.Time
	// Steps are the pipeline's steps, in order. BuildStore.Create inserts
	// them; PipelineStore.List and Get load them.
	Steps []*Step
	// Job, when set on BuildStore.Create, is enqueued for this pipeline in
	// the same transaction (its BuildID, PipelineID and RepoID are filled
	// in). It is not loaded by reads; use JobQueue.List.
	Job *Job
}

// PipelineStore reads and updates pipelines; BuildStore.Create inserts them.
type PipelineStore interface {
	// Get returns the pipeline with its steps, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Pipeline, error)
	// List returns a build's pipelines with their steps, ordered by number.
	List(ctx context.Context, buildID int64) ([]*Pipeline, error)
	// Update writes p's status, error, exit code, agent and times; it does
	// not touch p.Steps.
	Update(ctx context.Context, p *Pipeline) error
	// Finish writes what Update writes, but only while the stored
	// pipeline is not finished, and reports whether it wrote. Of several
	// callers racing to finish one pipeline, exactly one gets true. It
	// returns ErrNotFound when there is no such pipeline.
	Finish(ctx context.Context, p *Pipeline) (bool, error)
	// Rerun writes what Update writes, but only while the stored pipeline
	// is running since since (its job is run again: re-queued, or leased
	// again, after a lost agent), and reports whether it wrote, so that of
	// several callers making that change, exactly one gets true. It
	// returns ErrNotFound when there is no such pipeline.
	Rerun(ctx context.Context, p *Pipeline, since time.Time) (bool, error)
	// Start records that a job of pipeline id was leased: if the pipeline
	// is still pending, it becomes running, run by agent since at, and
	// then its build, if still pending and not waiting for approval,
	// becomes running too, started at at unless it has a start time (its
	// version is incremented). Both happen in one transaction. Start
	// reports whether it marked the pipeline and whether it marked the
	// build; it marks nothing when the pipeline is not pending, missing
	// included.
	Start(ctx context.Context, id int64, agent string, at time.Time) (pipeline, build bool, err error)
	// Complete records that job jobID ended, when that finishes the last
	// unfinished pipeline of its build: if the job is finished, its
	// pipeline is the build's last unfinished one, no other job of the
	// build is blocked, pending or running, and the build is neither
	// finished nor waiting for or declined by an approval, then, in one
	// transaction, the pipeline takes the job's status, error and finish
	// time (and its start time and agent, unless it has them), and its
	// unfinished steps end (a running one as killed when the job was, as
	// error otherwise, with the job's error or UnreportedStepError, a
	// pending one as skipped). Complete does not change the build: it
	// returns the build as it read it, with all its pipelines, for the
	// caller to derive the build's status and write it with
	// BuildStore.Update. It returns nil and changes nothing when any of
	// that does not hold.
	Complete(ctx context.Context, jobID int64, agent string) (*Completion, error)
}

// UnreportedStepError is the error of a step that was running when its
// pipeline finished without a job error to blame.
const UnreportedStepError = "the agent did not report the end of this step"

// Completion is what PipelineStore.Complete finished.
type Completion struct {
	// Pipeline is the finished pipeline, without its steps.
	Pipeline *Pipeline
	// Build is the pipeline's build, as Complete read it: not finished,
	// at the version to update.
	Build *Build
	// Pipelines are all of the build's pipelines, without their steps,
	// after Complete: every one of them is finished.
	Pipelines []*Pipeline
	// Steps are the steps that Complete ended.
	Steps []*Step
}

// Step is one step of a pipeline.
type Step struct {
	ID         int64
	PipelineID int64
	BuildID    int64
	// Number counts the pipeline's steps from 1.
	Number   int64
	Name     string
	Status   Status
	ExitCode int
	// Error explains an error status ("image not found", "oom killed").
	Error    string
	Started  time.Time
	Finished time.Time
}

// StepStore reads and updates steps; BuildStore.Create inserts them.
type StepStore interface {
	// Get returns the step with the given ID, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Step, error)
	// Update writes s's status, exit code, error and times.
	Update(ctx context.Context, s *Step) error
	// Advance writes what Update writes, but only when that moves the
	// step forward: to running only from pending, to a final status only
	// while the stored step is not finished (a finished step never moves
	// back). It reports whether it wrote, so that of several callers
	// making one move, exactly one gets true. It returns ErrNotFound when
	// there is no such step.
	Advance(ctx context.Context, s *Step) (bool, error)
}

// BuildEffectStore records the once-per-cluster side effects of finished
// builds (the final commit status, notifications, automatic deployments):
// one server claims a build's effects for a while, runs them, and marks
// them done. A claim that ran out without being marked done can be taken
// again, so a server that dies in between loses nothing; the effects are
// then run at least once.
type BuildEffectStore interface {
	// Claim claims the effects of finished build buildID for owner until
	// the given time. It returns false when they are done, or claimed by
	// a claim that has not run out at now.
	Claim(ctx context.Context, buildID int64, owner string, now, until time.Time) (bool, error)
	// Done marks the effects of build buildID done.
	Done(ctx context.Context, buildID int64) error
	// Pending returns, oldest first and at most limit, the builds that
	// finished at or after since and before before, whose effects are not
	// done and not claimed by a claim still running at now.
	Pending(ctx context.Context, since, before, now time.Time, limit int) ([]int64, error)
}
