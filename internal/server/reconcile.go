package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// attemptShift spaces the log sequence numbers of a job's attempts: lines
// of attempt a are stored from (a-1)<<attemptShift on. The store drops
// lines numbered below what it has, so a re-queued job's second attempt,
// which numbers its lines from 0 again, needs room above the first's.
const attemptShift = 40

// seqOffset is the first stored sequence number of attempt a (1-based).
func seqOffset(attempt int) int64 {
	if attempt < 1 {
		attempt = 1
	}
	return int64(attempt-1) << attemptShift
}

// reconcile brings a build's pipelines, steps and status in line with its
// jobs, which are the source of truth, and moves the build along: it
// unblocks or skips pipelines whose dependencies have finished, applies an
// approval decision, and finishes the build when every pipeline has. It is
// idempotent and level-triggered: every event (a job leased, completed,
// expired, cancelled; an approval) calls it, the maintenance loop calls it
// for builds that look unfinished, and calling it again changes nothing.
// Several servers may reconcile one build at once; the build's version
// check makes one of them retry.
func (s *Server) reconcile(ctx context.Context, buildID int64) error {
	for attempt := 0; ; attempt++ {
		err := s.reconcileOnce(ctx, buildID)
		if !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			if err != nil {
				return fmt.Errorf("reconciling build %d: %w", buildID, err)
			}
			return nil
		}
	}
}

// detachedTimeout bounds the recording of an agent's change (a lease, a
// completion) that outlives the agent's request.
const detachedTimeout = 30 * time.Second

func (s *Server) reconcileOnce(ctx context.Context, buildID int64) error {
	b, err := s.store.Builds.Get(ctx, buildID)
	if err != nil {
		return err
	}
	pls, err := s.store.Pipelines.List(ctx, buildID)
	if err != nil {
		return err
	}
	jobs, err := s.store.Jobs.List(ctx, store.JobFilter{BuildID: buildID})
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
	changed := false // a pipeline reached a final state

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
				if _, err := s.store.Jobs.Cancel(ctx, j.ID); err != nil {
					return err
				}
			}
			continue
		}
		done, err := s.mirrorJob(ctx, p, j, now)
		if err != nil {
			return err
		}
		changed = changed || done
	}

	// 2. Apply the approval decision, and move the dependency graph on.
	woke := false
	switch b.Approval {
	case store.ApprovalDeclined:
		for _, p := range pls {
			if p.Status.Done() {
				continue
			}
			if err := s.finishPipeline(ctx, p, store.StatusDeclined, "declined by "+firstOf(b.ApprovedBy, "a user"), now); err != nil {
				return err
			}
			changed = true
			if j := jobOf[p.ID]; j != nil && !j.Status.Done() {
				if _, err := s.store.Jobs.Cancel(ctx, j.ID); err != nil {
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
				pay, err := decodePayload(j)
				if err != nil {
					return err
				}
				progress = true
				if (failed && pay.OnFailure) || (!failed && pay.OnSuccess) {
					if _, err := s.store.Jobs.Unblock(ctx, j.ID); err != nil {
						return err
					}
					j.Status, p.Status = store.StatusPending, store.StatusPending
					if err := s.store.Pipelines.Update(ctx, p); err != nil {
						return err
					}
					woke = true
					continue
				}
				// Finish the pipeline before taking its job out of the
				// queue, so that a crash in between leaves a state that
				// the first branch of step 1 completes.
				if err := s.finishPipeline(ctx, p, store.StatusSkipped, "", now); err != nil {
					return err
				}
				changed = true
				if _, err := s.store.Jobs.Cancel(ctx, j.ID); err != nil {
					return err
				}
				j.Status = store.StatusKilled
			}
		}
	}
	if woke {
		s.jobsEnqueued()
	}

	// 3. The build's status follows from its pipelines.
	status, errText := buildStatus(b, pls)
	if status == b.Status && !changed {
		return nil
	}
	wasDone := b.Status.Done()
	if status != b.Status {
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
		if err := s.store.Builds.Update(ctx, b); err != nil {
			return err
		}
		if status.Done() && !wasDone {
			s.metrics.buildFinished(b)
			s.log.Info("build finished", "build_id", b.ID, "number", b.Number, "status", b.Status)
			s.buildFinished(ctx, b)
		}
	}
	if s.notifier != nil {
		if repo, err := s.store.Repos.Get(ctx, b.RepoID); err == nil {
			s.notify(repo, b)
		}
	}
	return nil
}

// failedStatus reports whether a finished pipeline counts as failed for
// its dependents, as runtime.Status.Failed does.
func failedStatus(st store.Status) bool {
	return st == store.StatusFailure || st == store.StatusError || st == store.StatusKilled
}

// mirrorJob updates pipeline p from its job j and reports whether p has
// just finished.
func (s *Server) mirrorJob(ctx context.Context, p *store.Pipeline, j *store.Job, now time.Time) (bool, error) {
	switch j.Status {
	case store.StatusBlocked:
		return false, nil
	case store.StatusPending:
		switch p.Status {
		case store.StatusRunning:
			// The lease expired and the job was re-queued: the next
			// attempt starts over.
			if err := s.resetSteps(ctx, p, j.Attempts+1); err != nil {
				return false, err
			}
			p.Status, p.Started, p.Agent = store.StatusPending, time.Time{}, ""
		case store.StatusBlocked:
			p.Status = store.StatusPending
		default:
			return false, nil
		}
		return false, s.store.Pipelines.Update(ctx, p)
	case store.StatusRunning:
		if p.Status == store.StatusRunning && p.Started.Equal(j.Started) {
			return false, nil
		}
		if p.Status == store.StatusRunning {
			// Leased again after a lost agent, before this server saw the
			// job re-queued.
			if err := s.resetSteps(ctx, p, j.Attempts); err != nil {
				return false, err
			}
		}
		p.Status, p.Started, p.Finished = store.StatusRunning, j.Started, time.Time{}
		p.Agent = s.agents.name(ctx, s.store.Agents, j.LeaseOwner)
		return false, s.store.Pipelines.Update(ctx, p)
	}
	// A final job status.
	if p.Started.IsZero() {
		p.Started = j.Started
	}
	if p.Agent == "" && j.LeaseOwner != 0 {
		p.Agent = s.agents.name(ctx, s.store.Agents, j.LeaseOwner)
	}
	finished := j.Finished
	if finished.IsZero() {
		finished = now
	}
	if err := s.finishPipeline(ctx, p, j.Status, j.Error, finished); err != nil {
		return false, err
	}
	// Counted by the one reconcile that finished the pipeline.
	s.metrics.jobFinished(j.Status)
	return true, nil
}

// finishPipeline gives p a final status and ends its unfinished steps: a
// running step ends as killed (when the pipeline was) or error, a pending
// one as skipped (or declined). When another reconcile finished p first
// it changes nothing and returns an error matching store.ErrConflict, so
// that reconcile starts over from what is stored.
func (s *Server) finishPipeline(ctx context.Context, p *store.Pipeline, status store.Status, errText string, at time.Time) error {
	p.Status, p.Error, p.Finished = status, errText, at
	won, err := s.store.Pipelines.Finish(ctx, p)
	if err != nil {
		return err
	}
	if !won {
		return fmt.Errorf("pipeline %d was finished meanwhile: %w", p.ID, store.ErrConflict)
	}
	for _, st := range p.Steps {
		if st.Status.Done() {
			continue
		}
		switch {
		case st.Status == store.StatusRunning && status == store.StatusKilled:
			st.Status = store.StatusKilled
		case st.Status == store.StatusRunning:
			st.Status = store.StatusError
			st.Error = firstOf(errText, store.UnreportedStepError)
		case status == store.StatusDeclined:
			st.Status = store.StatusDeclined
		default:
			st.Status = store.StatusSkipped
		}
		st.Finished = at
		if err := s.store.Steps.Update(ctx, st); err != nil {
			return err
		}
		s.logs.notify(st.ID)
	}
	return nil
}

// resetSteps returns p's steps to pending for a new attempt of its job, and
// marks the start of that attempt in the logs that have lines.
func (s *Server) resetSteps(ctx context.Context, p *store.Pipeline, attempt int) error {
	for _, st := range p.Steps {
		info, err := s.store.Logs.Info(ctx, st.ID)
		if err != nil {
			return err
		}
		if mark := seqOffset(attempt) - 1; info.LastSeq >= 0 && info.LastSeq < mark {
			line := store.LogLine{Seq: mark, Time: time.Now(),
				Text: fmt.Sprintf("ferry: the agent running this job was lost; attempt %d starts over", attempt)}
			if err := s.store.Logs.Append(ctx, st.ID, line); err != nil {
				return err
			}
			s.logs.notify(st.ID)
		}
		if st.Status == store.StatusPending {
			continue
		}
		st.Status, st.ExitCode, st.Error, st.Started, st.Finished = store.StatusPending, 0, "", time.Time{}, time.Time{}
		if err := s.store.Steps.Update(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// buildStatus derives a build's status from its pipelines, with the error
// text of a build in error.
func buildStatus(b *store.Build, pls []*store.Pipeline) (store.Status, string) {
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
