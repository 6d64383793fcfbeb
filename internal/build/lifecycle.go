// Package build is the life of a build: creating it with its pipelines and
// jobs, approving or declining it, restarting and cancelling it, recording
// what agents report (a lease, a step, a completion), and reconciling a
// build with its jobs. The rules live here, as plain code over the store's
// interfaces; the store only makes conditional writes, and internal/server
// only speaks HTTP and wires things together.
//
// Every change of a build, a pipeline or a step passes through one
// function, Lifecycle.transition, which publishes the events that describe
// it on a Bus. Metrics, commit statuses and the log line subscribe to it,
// as later deployments, notifications and live views will; on PostgreSQL
// the events are relayed to the other servers (RunRelay).
package build

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// Options wire a Lifecycle to the server around it. Every field but Store
// is optional.
type Options struct {
	// Store holds builds, pipelines, steps, jobs and logs.
	Store *store.Store
	// Origin names this server in the events it publishes; empty means a
	// random name.
	Origin string
	// Logger receives the build log lines; nil discards them.
	Logger *slog.Logger
	// AgentName returns the name of the agent with the given ID, or "".
	AgentName func(ctx context.Context, id int64) string
	// JobsReady is called when jobs became pending, to wake the agents
	// waiting for work.
	JobsReady func()
	// LogAppended is called when a line was added to a step's log.
	LogAppended func(stepID int64)
}

// Lifecycle changes builds. Its methods are safe for concurrent use, also
// by several servers sharing one database: every change is a conditional
// write, and of several servers making one change exactly one succeeds and
// publishes it.
type Lifecycle struct {
	st     *store.Store
	bus    *Bus
	log    *slog.Logger
	agent  func(ctx context.Context, id int64) string
	ready  func()
	logged func(stepID int64)
}

// New returns a Lifecycle over o.Store.
func New(o Options) *Lifecycle {
	l := &Lifecycle{st: o.Store, log: o.Logger, agent: o.AgentName, ready: o.JobsReady, logged: o.LogAppended}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.agent == nil {
		l.agent = func(context.Context, int64) string { return "" }
	}
	if l.ready == nil {
		l.ready = func() {}
	}
	if l.logged == nil {
		l.logged = func(int64) {}
	}
	origin := o.Origin
	if origin == "" {
		origin = randomOrigin()
	}
	l.bus = NewBus(origin)
	return l
}

// Events returns the bus on which the Lifecycle publishes its events.
func (l *Lifecycle) Events() *Bus { return l.bus }

// transition is the one function through which every change of a build, a
// pipeline or a step passes. write makes the change with conditional
// store writes and returns the events that describe what it changed:
// none when another writer made the change first. transition publishes
// them, in order, once the write succeeded.
func (l *Lifecycle) transition(ctx context.Context, write func(context.Context) ([]Event, error)) error {
	evs, err := write(ctx)
	for _, ev := range evs {
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		l.bus.publish(ev)
	}
	return err
}

// buildEvent describes b as an event of kind k.
func buildEvent(k Kind, b *store.Build) Event {
	at := b.Updated
	switch {
	case k == BuildCreated:
		at = b.Created
	case k == BuildStarted && !b.Started.IsZero():
		at = b.Started
	case k == BuildFinished && !b.Finished.IsZero():
		at = b.Finished
	}
	return Event{Kind: k, RepoID: b.RepoID, BuildID: b.ID, Number: b.Number, Status: b.Status, Error: b.Error,
		Time: at, Created: b.Created}
}

// pipelineEvent describes p, of build b, as an event of kind k.
func pipelineEvent(k Kind, b *store.Build, p *store.Pipeline) Event {
	at := time.Time{}
	switch k {
	case PipelineStarted:
		at = p.Started
	case PipelineFinished:
		at = p.Finished
	}
	return Event{Kind: k, RepoID: b.RepoID, BuildID: p.BuildID, PipelineID: p.ID, Pipeline: p.Name,
		Status: p.Status, Error: p.Error, Time: at}
}

// stepEvent describes step st of pipeline p as an event of kind k.
func stepEvent(k Kind, repoID int64, p *store.Pipeline, st *store.Step) Event {
	at := st.Started
	if k == StepFinished {
		at = st.Finished
	}
	return Event{Kind: k, RepoID: repoID, BuildID: st.BuildID, PipelineID: st.PipelineID, Pipeline: p.Name,
		StepID: st.ID, Step: st.Name, Status: st.Status, Error: st.Error, Time: at}
}

// Create stores build b with its pipelines, their steps and jobs in one
// transaction (see store.BuildStore.Create) and publishes BuildCreated, and
// BuildFinished when b is already final (a pipeline file that does not
// parse).
func (l *Lifecycle) Create(ctx context.Context, b *store.Build, pls []*store.Pipeline) error {
	err := l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		if err := l.st.Builds.Create(ctx, b, pls); err != nil {
			return nil, err
		}
		evs := []Event{buildEvent(BuildCreated, b)}
		if b.Status.Done() {
			evs = append(evs, buildEvent(BuildFinished, b))
		}
		return evs, nil
	})
	if err != nil {
		return err
	}
	for _, p := range pls {
		if p.Job != nil && p.Job.Status == store.StatusPending {
			l.ready()
			break
		}
	}
	return nil
}

// Decide records an approval decision on a build waiting for one and
// moves the build on: approved, its pipelines run; declined, they end as
// declined. It returns the build after the decision, or ErrNotWaiting.
func (l *Lifecycle) Decide(ctx context.Context, buildID int64, decision store.Approval, by string) (*store.Build, error) {
	for attempt := 0; ; attempt++ {
		b, err := l.st.Builds.Get(ctx, buildID)
		if err != nil {
			return nil, err
		}
		if b.Approval != store.ApprovalPending {
			return nil, &NotWaitingError{Number: b.Number}
		}
		b.Approval, b.ApprovedBy = decision, by
		// The decision's effects (pipelines queued or declined, the
		// build's new status) are published by the reconcile below.
		err = l.transition(ctx, func(ctx context.Context) ([]Event, error) {
			return nil, l.st.Builds.Update(ctx, b)
		})
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := l.Reconcile(ctx, b.ID); err != nil {
			return nil, err
		}
		return l.st.Builds.Get(ctx, b.ID)
	}
}

// NotWaitingError is Decide's answer about a build that waits for no
// approval.
type NotWaitingError struct{ Number int64 }

func (e *NotWaitingError) Error() string {
	return fmt.Sprintf("build %d is not waiting for approval", e.Number)
}

// Cancel cancels every unfinished job of a build: blocked and pending
// jobs end as killed at once, running ones are told to stop through
// their lease. Then it reconciles the build.
func (l *Lifecycle) Cancel(ctx context.Context, buildID int64) error {
	jobs, err := l.st.Jobs.List(ctx, store.JobFilter{BuildID: buildID})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Status.Done() {
			continue
		}
		if _, err := l.st.Jobs.Cancel(ctx, j.ID); err != nil {
			return err
		}
	}
	return l.Reconcile(ctx, buildID)
}

// Restart creates a new build of old, a build of repo, with old's trigger
// and config, triggered by by. With failedOnly, only the pipelines that
// did not succeed run again; the others are copied with their steps'
// statuses and logs. old must be finished; a build with no pipelines is
// ErrNothingToRestart. When repo is not trusted (any more), the jobs to
// run again are checked as a new build's are, and a job that needs trust
// makes the new build one in error that names the problems.
func (l *Lifecycle) Restart(ctx context.Context, repo *store.Repo, old *store.Build, failedOnly bool, by string) (*store.Build, error) {
	pls, err := l.st.Pipelines.List(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	jobs, err := l.st.Jobs.List(ctx, store.JobFilter{BuildID: old.ID})
	if err != nil {
		return nil, err
	}
	if len(pls) == 0 {
		return nil, ErrNothingToRestart
	}
	jobOf := map[int64]*store.Job{}
	for _, j := range jobs {
		jobOf[j.PipelineID] = j
	}
	b := &store.Build{
		RepoID: old.RepoID, Parent: old.Number, Event: old.Event, Ref: old.Ref, Branch: old.Branch,
		SourceBranch: old.SourceBranch, Commit: old.Commit, Before: old.Before, Message: old.Message,
		Author: old.Author, AuthorEmail: old.AuthorEmail, Sender: by, PullRequest: old.PullRequest, Fork: old.Fork,
		Cron: old.Cron, Params: old.Params, Status: store.StatusPending, Warnings: old.Warnings,
	}
	if old.Approval != store.ApprovalNone {
		// Restarting takes the write role, which may approve.
		b.Approval, b.ApprovedBy = store.ApprovalApproved, by
	}
	rerun := map[string]bool{}
	for _, p := range pls {
		rerun[p.Name] = !failedOnly || p.Status != store.StatusSuccess
	}
	var out []*store.Pipeline
	copied := map[*store.Pipeline]*store.Pipeline{} // new pipeline → old
	for _, p := range pls {
		np := &store.Pipeline{Name: p.Name, DependsOn: p.DependsOn}
		j := jobOf[p.ID]
		if !rerun[p.Name] || j == nil {
			// Copied as it ended.
			np.Status, np.Started, np.Finished = store.StatusSuccess, p.Started, p.Finished
			if j == nil && p.Status != store.StatusSuccess {
				np.Status = p.Status
			}
			for _, st := range p.Steps {
				np.Steps = append(np.Steps, &store.Step{Name: st.Name, Status: st.Status, ExitCode: st.ExitCode,
					Error: st.Error, Started: st.Started, Finished: st.Finished})
			}
			copied[np] = p
			out = append(out, np)
			continue
		}
		status := store.StatusPending
		for _, d := range p.DependsOn {
			if rerun[d] {
				status = store.StatusBlocked
			}
		}
		np.Status = status
		np.Job = &store.Job{RepoID: old.RepoID, Status: status, Labels: j.Labels, Payload: j.Payload}
		for _, st := range p.Steps {
			np.Steps = append(np.Steps, &store.Step{Name: st.Name, Status: store.StatusPending})
		}
		out = append(out, np)
	}
	if !repo.Trusted {
		// Trust may have been revoked since old ran (docs/security.md).
		var problems []string
		for _, np := range out {
			if np.Job != nil {
				problems = append(problems, TrustProblems(np.Job.Payload)...)
			}
		}
		if len(problems) > 0 {
			now := time.Now()
			b.Status, b.Error, b.Started, b.Finished = store.StatusError, strings.Join(problems, "\n"), now, now
			if err := l.Create(ctx, b, nil); err != nil {
				return nil, fmt.Errorf("restarting build %d: %w", old.Number, err)
			}
			return b, nil
		}
	}
	if err := l.Create(ctx, b, out); err != nil {
		return nil, fmt.Errorf("restarting build %d: %w", old.Number, err)
	}
	for np, p := range copied {
		for i, st := range np.Steps {
			if err := l.st.Logs.Copy(ctx, p.Steps[i].ID, st.ID); err != nil {
				// The build stands; only a log of the copy is missing.
				l.log.Warn("copying a log to the restarted build", "build", b.Number, "pipeline", p.Name, "step", st.Name, "err", err)
			}
		}
	}
	if err := l.Reconcile(ctx, b.ID); err != nil {
		return nil, err
	}
	return l.st.Builds.Get(ctx, b.ID)
}

// ErrNothingToRestart is Restart's answer about a build without
// pipelines: its pipeline file did not parse.
var ErrNothingToRestart = errors.New("the build has no pipelines to restart")

// RecordLease records that the leased job j, of the pipeline named
// pipeline, runs. b is the job's build as read when the job was handed
// out. In the usual case, the job's pipeline
// is pending, and one store call marks it running (and the build, when it
// is still pending), which is what a reconcile would do. Otherwise (the
// job was leased again after a lost agent, or its pipeline was decided
// meanwhile) a full reconcile sorts it out.
func (l *Lifecycle) RecordLease(ctx context.Context, j *store.Job, b *store.Build, pipeline string) error {
	agent := l.agent(ctx, j.LeaseOwner)
	started := false
	err := l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		var buildStarted bool
		var err error
		started, buildStarted, err = l.st.Pipelines.Start(ctx, j.PipelineID, agent, j.Started)
		if err != nil || !started {
			return nil, err
		}
		p := &store.Pipeline{ID: j.PipelineID, BuildID: j.BuildID, Name: pipeline, Status: store.StatusRunning,
			Agent: agent, Started: j.Started}
		var evs []Event
		if buildStarted {
			nb := *b
			nb.Status, nb.Version = store.StatusRunning, b.Version+1
			if nb.Started.IsZero() {
				nb.Started = j.Started
			}
			evs = append(evs, buildEvent(BuildStarted, &nb))
		}
		return append(evs, pipelineEvent(PipelineStarted, b, p)), nil
	})
	if err != nil {
		return err
	}
	if !started {
		return l.Reconcile(ctx, j.BuildID)
	}
	return nil
}

// StepReport is what an agent reports about a step.
type StepReport struct {
	// ID is the step's ID, Name its name and Pipeline its pipeline's
	// name.
	ID       int64
	Name     string
	Pipeline string
	Status   store.Status
	ExitCode int
	Error    string
	Started  time.Time
	Finished time.Time
}

// RecordStep records a step report of the leased job j. A report about a
// finished step, or that a running step runs, changes nothing: a step
// never moves back.
func (l *Lifecycle) RecordStep(ctx context.Context, j *store.Job, r *StepReport) error {
	now := time.Now()
	st := &store.Step{ID: r.ID, PipelineID: j.PipelineID, BuildID: j.BuildID, Name: r.Name, Status: r.Status,
		ExitCode: r.ExitCode, Error: r.Error, Started: r.Started}
	if st.Started.IsZero() && r.Status != store.StatusSkipped {
		st.Started = now
	}
	if r.Status.Done() {
		st.Finished = r.Finished
		if st.Finished.IsZero() {
			st.Finished = now
		}
	}
	return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		wrote, err := l.st.Steps.Advance(ctx, st)
		if err != nil || !wrote {
			return nil, err
		}
		k := StepStarted
		if st.Status.Done() {
			k = StepFinished
		}
		return []Event{stepEvent(k, j.RepoID, &store.Pipeline{Name: r.Pipeline}, st)}, nil
	})
}

// RecordCompletion records that job j completed. In the usual case, the
// job's pipeline is the last unfinished one of its build, and nothing
// waits for it: one store call then finishes the pipeline and its steps,
// and one more the build, as a reconcile would. Otherwise (dependents to
// unblock or skip, other pipelines still running, an approval, a build
// decided meanwhile) a full reconcile sorts it out.
func (l *Lifecycle) RecordCompletion(ctx context.Context, j *store.Job) error {
	agent := l.agent(ctx, j.LeaseOwner)
	var c *store.Completion
	err := l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		var err error
		if c, err = l.st.Pipelines.Complete(ctx, j.ID, agent); err != nil || c == nil {
			return nil, err
		}
		evs := make([]Event, 0, len(c.Steps)+1)
		for _, st := range c.Steps {
			evs = append(evs, stepEvent(StepFinished, c.Build.RepoID, c.Pipeline, st))
		}
		return append(evs, pipelineEvent(PipelineFinished, c.Build, c.Pipeline)), nil
	})
	if err != nil {
		return err
	}
	if c == nil {
		return l.Reconcile(ctx, j.BuildID)
	}
	b := c.Build
	prev := b.Status
	now := time.Now()
	b.Status, b.Error = Status(b, c.Pipelines)
	if b.Started.IsZero() {
		b.Started = now
	}
	if b.Finished.IsZero() {
		b.Finished = now
	}
	err = l.updateBuild(ctx, b, prev)
	if errors.Is(err, store.ErrConflict) {
		return l.Reconcile(ctx, j.BuildID)
	}
	return err
}

// updateBuild writes b's new status, which was prev, with a version check
// (store.ErrConflict when another writer was first), and publishes what
// changed.
func (l *Lifecycle) updateBuild(ctx context.Context, b *store.Build, prev store.Status) error {
	return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		if err := l.st.Builds.Update(ctx, b); err != nil {
			return nil, err
		}
		switch {
		case b.Status.Done():
			return []Event{buildEvent(BuildFinished, b)}, nil
		case b.Status == prev:
			return nil, nil
		case b.Status == store.StatusRunning:
			return []Event{buildEvent(BuildStarted, b)}, nil
		}
		return []Event{buildEvent(BuildWaiting, b)}, nil
	})
}

// FailPipeline ends pipeline id, whose job ended without an agent (it
// waited too long for one), with status error and reason, unless it is
// finished already.
func (l *Lifecycle) FailPipeline(ctx context.Context, id int64, reason string, at time.Time) error {
	p, err := l.st.Pipelines.Get(ctx, id)
	if err != nil {
		return err
	}
	if p.Status.Done() {
		return nil
	}
	b, err := l.st.Builds.Get(ctx, p.BuildID)
	if err != nil {
		return err
	}
	err = l.finishPipeline(ctx, b, p, store.StatusError, reason, at)
	if errors.Is(err, store.ErrConflict) {
		return nil // finished meanwhile
	}
	return err
}

// randomOrigin names a server that was given no name.
func randomOrigin() string { return rand.Text()[:12] }
