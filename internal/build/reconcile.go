package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// AttemptShift spaces the log sequence numbers of a job's attempts: lines
// of attempt a are stored from (a-1)<<AttemptShift on. The store drops
// lines numbered below what it has, so a re-queued job's second attempt,
// which numbers its lines from 0 again, needs room above the first's.
const AttemptShift = 40

// SeqOffset is the first stored sequence number of attempt a (1-based).
func SeqOffset(attempt int) int64 {
	if attempt < 1 {
		attempt = 1
	}
	return int64(attempt-1) << AttemptShift
}

// Reconcile brings a build's pipelines, steps and status in line with its
// jobs, which are the source of truth, and moves the build along: it
// unblocks or skips pipelines whose dependencies have finished, applies an
// approval decision, and finishes the build when every pipeline has. It is
// idempotent and level-triggered: every event (a job leased, completed,
// expired, cancelled; an approval) calls it, the maintenance loop calls it
// for builds that look unfinished, and calling it again changes nothing.
// Several servers may reconcile one build at once; the conditional writes
// make one of them retry.
func (l *Lifecycle) Reconcile(ctx context.Context, buildID int64) error {
	for attempt := 0; ; attempt++ {
		err := l.reconcileOnce(ctx, buildID)
		if !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			if err != nil {
				return fmt.Errorf("reconciling build %d: %w", buildID, err)
			}
			return nil
		}
	}
}

func (l *Lifecycle) reconcileOnce(ctx context.Context, buildID int64) error {
	b, err := l.st.Builds.Get(ctx, buildID)
	if err != nil {
		return err
	}
	pls, err := l.st.Pipelines.List(ctx, buildID)
	if err != nil {
		return err
	}
	jobs, err := l.st.Jobs.List(ctx, store.JobFilter{BuildID: buildID})
	if err != nil {
		return err
	}
	jobOf := make(map[int64]*store.Job, len(jobs))
	for _, j := range jobs {
		jobOf[j.PipelineID] = j
	}
	byName := make(map[string]*store.Pipeline, len(pls))
	for _, p := range pls {
		byName[p.Name] = p
	}
	now := time.Now()

	// 1. Mirror the jobs into their pipelines.
	for _, p := range pls {
		j := jobOf[p.ID]
		if j == nil {
			continue // a pipeline copied by a restart; it has no job
		}
		if p.Status.Done() {
			// Decided here (skipped, declined): make sure the job is out
			// of the queue.
			if j.Status == store.StatusBlocked || j.Status == store.StatusPending {
				if _, err := l.st.Jobs.Cancel(ctx, j.ID); err != nil {
					return err
				}
			}
			continue
		}
		if err := l.mirrorJob(ctx, b, p, j, now); err != nil {
			return err
		}
	}

	// 2. Apply the approval decision, and move the dependency graph on.
	woke := false
	switch b.Approval {
	case store.ApprovalDeclined:
		for _, p := range pls {
			if p.Status.Done() {
				continue
			}
			if err := l.finishPipeline(ctx, b, p, store.StatusDeclined, "declined by "+cmp.Or(b.ApprovedBy, "a user"), now); err != nil {
				return err
			}
			if j := jobOf[p.ID]; j != nil && !j.Status.Done() {
				if _, err := l.st.Jobs.Cancel(ctx, j.ID); err != nil {
					return err
				}
			}
		}
	case store.ApprovalPending:
		// Nothing runs before a decision.
	default:
		for progress := true; progress; {
			progress = false
			for _, p := range pls {
				j := jobOf[p.ID]
				if j == nil || j.Status != store.StatusBlocked || p.Status.Done() {
					continue
				}
				ready, failed := true, false
				for _, d := range p.DependsOn {
					dep, ok := byName[d]
					if !ok {
						continue
					}
					if !dep.Status.Done() {
						ready = false
						break
					}
					if failedStatus(dep.Status) {
						failed = true
					}
				}
				if !ready {
					continue
				}
				pay, err := DecodePayload(j)
				if err != nil {
					return err
				}
				progress = true
				if (failed && pay.OnFailure) || (!failed && pay.OnSuccess) {
					if err := l.queuePipeline(ctx, b, p, j); err != nil {
						return err
					}
					woke = true
					continue
				}
				// Finish the pipeline before taking its job out of the
				// queue, so that a crash in between leaves a state that
				// the first branch of step 1 completes.
				if err := l.finishPipeline(ctx, b, p, store.StatusSkipped, "", now); err != nil {
					return err
				}
				if _, err := l.st.Jobs.Cancel(ctx, j.ID); err != nil {
					return err
				}
				j.Status = store.StatusKilled
			}
		}
	}
	if woke {
		l.ready()
	}

	// 3. The build's status follows from its pipelines.
	status, errText := Status(b, pls)
	if status == b.Status {
		return nil
	}
	prev := b.Status
	b.Status = status
	if errText != "" || status.Done() {
		b.Error = errText
	}
	if b.Started.IsZero() && status != store.StatusPending && status != store.StatusBlocked {
		b.Started = now
	}
	if status.Done() && b.Finished.IsZero() {
		b.Finished = now
	}
	return l.updateBuild(ctx, b, prev)
}

// queuePipeline makes the blocked job j of pipeline p pending: its
// dependencies finished.
func (l *Lifecycle) queuePipeline(ctx context.Context, b *store.Build, p *store.Pipeline, j *store.Job) error {
	return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		n, err := l.st.Jobs.Unblock(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		j.Status, p.Status = store.StatusPending, store.StatusPending
		if err := l.st.Pipelines.Update(ctx, p); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil // another server unblocked it
		}
		return []Event{pipelineEvent(PipelineQueued, b, p)}, nil
	})
}

// rerunLost is err, or, when Rerun did not write (another writer changed
// the pipeline first), an error matching store.ErrConflict, so that
// reconcile starts over from what is stored.
func rerunLost(p *store.Pipeline, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("pipeline %d changed meanwhile: %w", p.ID, store.ErrConflict)
}

// errBuildChanged is ErrConflict when changed: the build's version moved,
// and a reconcile must read it again.
func errBuildChanged(changed bool) error {
	if changed {
		return fmt.Errorf("the build started meanwhile: %w", store.ErrConflict)
	}
	return nil
}

// failedStatus reports whether a finished pipeline counts as failed for
// its dependents, as runtime.Status.Failed does.
func failedStatus(st store.Status) bool {
	return st == store.StatusFailure || st == store.StatusError || st == store.StatusKilled
}

// mirrorJob updates pipeline p of build b from its job j.
func (l *Lifecycle) mirrorJob(ctx context.Context, b *store.Build, p *store.Pipeline, j *store.Job, now time.Time) error {
	switch j.Status {
	case store.StatusBlocked:
		return nil
	case store.StatusPending:
		switch p.Status {
		case store.StatusRunning:
			// The lease expired and the job was re-queued: the next
			// attempt starts over.
			return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
				if err := l.resetSteps(ctx, p, j.Attempts+1); err != nil {
					return nil, err
				}
				since := p.Started
				p.Status, p.Started, p.Agent = store.StatusPending, time.Time{}, ""
				if won, err := l.st.Pipelines.Rerun(ctx, p, since); err != nil || !won {
					return nil, rerunLost(p, err) // another writer was first: read again
				}
				ev := pipelineEvent(PipelineQueued, b, p)
				ev.Error = "the agent running the job was lost"
				return []Event{ev}, nil
			})
		case store.StatusBlocked:
			// Catching up with queuePipeline, which published the change.
			return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
				p.Status = store.StatusPending
				return nil, l.st.Pipelines.Update(ctx, p)
			})
		}
		return nil
	case store.StatusRunning:
		if p.Status == store.StatusRunning && p.Started.Equal(j.Started) {
			return nil
		}
		if p.Status == store.StatusPending {
			// What RecordLease does, for a lease it has not recorded yet.
			return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
				agent := l.agent(ctx, j.LeaseOwner)
				started, buildStarted, err := l.st.Pipelines.Start(ctx, p.ID, agent, j.Started)
				if err != nil {
					return nil, err
				}
				if !started {
					return nil, fmt.Errorf("pipeline %d changed meanwhile: %w", p.ID, store.ErrConflict)
				}
				p.Status, p.Started, p.Agent = store.StatusRunning, j.Started, agent
				var evs []Event
				if buildStarted {
					nb := *b
					nb.Status = store.StatusRunning
					if nb.Started.IsZero() {
						nb.Started = j.Started
					}
					evs = append(evs, buildEvent(BuildStarted, &nb))
				}
				// The build changed: reconcile reads it again.
				return append(evs, pipelineEvent(PipelineStarted, b, p)), errBuildChanged(buildStarted)
			})
		}
		return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
			rerun := p.Status == store.StatusRunning
			if rerun {
				// Leased again after a lost agent, before this server saw
				// the job re-queued.
				if err := l.resetSteps(ctx, p, j.Attempts); err != nil {
					return nil, err
				}
			}
			since := p.Started
			p.Status, p.Started, p.Finished = store.StatusRunning, j.Started, time.Time{}
			p.Agent = l.agent(ctx, j.LeaseOwner)
			if !rerun {
				// The job was leased while its pipeline was still shown
				// blocked, so RecordLease could not start it.
				if err := l.st.Pipelines.Update(ctx, p); err != nil {
					return nil, err
				}
			} else if won, err := l.st.Pipelines.Rerun(ctx, p, since); err != nil || !won {
				return nil, rerunLost(p, err) // another writer was first: read again
			}
			return []Event{pipelineEvent(PipelineStarted, b, p)}, nil
		})
	}
	// A final job status.
	if p.Started.IsZero() {
		p.Started = j.Started
	}
	if p.Agent == "" && j.LeaseOwner != 0 {
		p.Agent = l.agent(ctx, j.LeaseOwner)
	}
	finished := j.Finished
	if finished.IsZero() {
		finished = now
	}
	return l.finishPipeline(ctx, b, p, j.Status, j.Error, finished)
}

// finishPipeline gives p a final status and ends its unfinished steps: a
// running step ends as killed (when the pipeline was) or error, a pending
// one as skipped (or declined). When another writer finished p first it
// changes nothing and returns an error matching store.ErrConflict, so
// that reconcile starts over from what is stored.
func (l *Lifecycle) finishPipeline(ctx context.Context, b *store.Build, p *store.Pipeline, status store.Status, errText string, at time.Time) error {
	return l.transition(ctx, func(ctx context.Context) ([]Event, error) {
		p.Status, p.Error, p.Finished = status, errText, at
		won, err := l.st.Pipelines.Finish(ctx, p)
		if err != nil {
			return nil, err
		}
		if !won {
			return nil, fmt.Errorf("pipeline %d was finished meanwhile: %w", p.ID, store.ErrConflict)
		}
		var evs []Event
		for _, st := range p.Steps {
			if st.Status.Done() {
				continue
			}
			switch {
			case st.Status == store.StatusRunning && status == store.StatusKilled:
				st.Status = store.StatusKilled
			case st.Status == store.StatusRunning:
				st.Status = store.StatusError
				st.Error = cmp.Or(errText, store.UnreportedStepError)
			case status == store.StatusDeclined:
				st.Status = store.StatusDeclined
			default:
				st.Status = store.StatusSkipped
			}
			st.Finished = at
			if err := l.st.Steps.Update(ctx, st); err != nil {
				return evs, err
			}
			evs = append(evs, stepEvent(StepFinished, b.RepoID, p, st))
		}
		return append(evs, pipelineEvent(PipelineFinished, b, p)), nil
	})
}

// resetSteps returns p's steps to pending for a new attempt of its job, and
// marks the start of that attempt in the logs that have lines.
func (l *Lifecycle) resetSteps(ctx context.Context, p *store.Pipeline, attempt int) error {
	for _, st := range p.Steps {
		info, err := l.st.Logs.Info(ctx, st.ID)
		if err != nil {
			return err
		}
		if mark := SeqOffset(attempt) - 1; info.LastSeq >= 0 && info.LastSeq < mark {
			line := store.LogLine{Seq: mark, Time: time.Now(),
				Text: fmt.Sprintf("ferry: the agent running this job was lost; attempt %d starts over", attempt)}
			if err := l.st.Logs.Append(ctx, st.ID, line); err != nil {
				return err
			}
			l.logged(st.ID)
		}
		if st.Status == store.StatusPending {
			continue
		}
		st.Status, st.ExitCode, st.Error, st.Started, st.Finished = store.StatusPending, 0, "", time.Time{}, time.Time{}
		if err := l.st.Steps.Update(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// Status derives a build's status from its pipelines, with the error text
// of a build in error.
func Status(b *store.Build, pls []*store.Pipeline) (store.Status, string) {
	if len(pls) == 0 {
		return b.Status, b.Error
	}
	allDone, anyStarted := true, false
	count := map[store.Status]int{}
	errText := ""
	for _, p := range pls {
		count[p.Status]++
		if !p.Status.Done() {
			allDone = false
		}
		if p.Status == store.StatusRunning || p.Status.Done() {
			anyStarted = true
		}
		if p.Status == store.StatusError && errText == "" && p.Error != "" {
			errText = "pipeline " + p.Name + ": " + p.Error
		}
	}
	switch {
	case allDone && b.Approval == store.ApprovalDeclined:
		return store.StatusDeclined, ""
	case allDone && count[store.StatusKilled] > 0:
		return store.StatusKilled, ""
	case allDone && count[store.StatusError] > 0:
		return store.StatusError, errText
	case allDone && count[store.StatusFailure] > 0:
		return store.StatusFailure, ""
	case allDone && count[store.StatusSuccess] > 0:
		return store.StatusSuccess, ""
	case allDone && count[store.StatusDeclined] > 0:
		return store.StatusDeclined, ""
	case allDone:
		return store.StatusSkipped, ""
	case b.Approval == store.ApprovalPending:
		return store.StatusBlocked, ""
	case anyStarted:
		return store.StatusRunning, ""
	}
	return store.StatusPending, ""
}
