package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/store"
)

// maxLeaseWait caps how long a lease request is held open.
const maxLeaseWait = 60 * time.Second

// leasePoll returns how often a waiting lease request looks for jobs on
// its own. It is a safety net: jobs this server enqueues wake it at once,
// and so do jobs other servers on the same PostgreSQL enqueue (through
// LISTEN/NOTIFY), so idle agents cost the database next to nothing.
func (s *Server) leasePoll() time.Duration {
	return 2 * time.Second
}

// errLeaseLost answers a call about a lease the agent no longer holds.
func errLeaseLost(id int64) *apiError {
	return errorf(http.StatusConflict, "lease_token", "job %d: lease lost; stop the job", id)
}

func (s *Server) rpcLease(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req rpc.LeaseRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 200 {
		return badRequest("name", "name is required (at most 200 characters)")
	}
	if req.Labels == nil {
		req.Labels = map[string]string{}
	}
	req.Capacity = max(req.Capacity, 1)
	wait := min(max(req.Wait, 0), maxLeaseWait)
	agent := &store.Agent{Name: req.Name, Labels: req.Labels, Capacity: req.Capacity}
	id, err := s.agents.register(ctx, s.store.Agents, agent)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	poll := s.leasePoll()
	for {
		ready := s.jobsReady.wait()
		j, err := s.store.Jobs.Lease(ctx, id, req.Labels, req.Capacity, s.cfg.LeaseTTL)
		switch {
		case err == nil:
			job, b, _, err := s.prepareJob(ctx, j)
			if err != nil {
				s.failLeased(ctx, j, err)
				continue
			}
			s.agents.leased(j.ID, id)
			s.leases.put(j)
			s.metrics.queueWait.Observe(j.Started.Sub(j.Queued).Seconds())
			writeJSON(w, http.StatusOK, job)
			// Send the job before recording that it runs, and record it
			// even if the agent hangs up.
			_ = http.NewResponseController(w).Flush()
			if err := s.recordLease(ctx, j, b, job.Pipeline); err != nil {
				s.log.Warn("recording a leased job", "job", j.ID, "err", err)
			}
			return nil
		case errors.Is(err, store.ErrNotFound):
			// An administrator deleted the agent: register it again.
			s.agents.forget(req.Name)
			agent.ID = 0
			if id, err = s.agents.register(ctx, s.store.Agents, agent); err != nil {
				return err
			}
			continue
		case !errors.Is(err, store.ErrNoJob):
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		// A waiting agent is a connected one.
		if err := s.agents.alive(ctx, s.store.Agents, id); err != nil && ctx.Err() == nil {
			s.log.Warn("recording that an agent is alive", "agent", req.Name, "err", err)
		}
		t := time.NewTimer(min(poll, left))
		select {
		case <-ready:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.stopping:
			t.Stop()
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		t.Stop()
	}
}

// prepareJob turns a leased job into what the agent receives: the expanded
// config, the build context and the secrets the build may see. It returns
// the job's build and repo as it read them too.
func (s *Server) prepareJob(ctx context.Context, j *store.Job) (*rpc.Job, *store.Build, *store.Repo, error) {
	pay, err := decodePayload(j)
	if err != nil {
		return nil, nil, nil, err
	}
	b, repo, err := s.store.Builds.GetWithRepo(ctx, j.BuildID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading build: %w", err)
	}
	meta := pay.Metadata
	meta.Build.Number, meta.Build.Parent, meta.Build.Created = b.Number, b.Parent, b.Created
	meta.Build.Started = b.Started
	if meta.Build.Started.IsZero() {
		meta.Build.Started = j.Started
	}
	pay.Metadata = meta
	config, err := expandConfig(pay)
	if err != nil {
		return nil, nil, nil, err
	}
	secrets, err := s.buildSecrets(ctx, b)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading secrets: %w", err)
	}
	cred, err := s.repoCredential(ctx, repo)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading the repo's git credential: %w", err)
	}
	env := addCredential(secrets, pay.Params, pay.CloneURL, cred, b)
	var clone *gitauth.Credential
	if !cred.IsZero() {
		clone = &cred
	}
	return &rpc.Job{
		ID: j.ID, LeaseToken: j.LeaseToken, LeaseTTL: s.cfg.LeaseTTL, BuildID: b.ID,
		Pipeline: pay.Pipeline, Number: pay.Number, ConfigFile: pay.ConfigFile, Config: config,
		Metadata: meta, Secrets: secrets, Env: env, Trusted: repo.Trusted, Timeout: repo.Timeout,
		Clone: rpc.Clone{Disable: pay.CloneDisable, URL: pay.CloneURL, Ref: b.Ref, SHA: b.Commit, Depth: pay.CloneDepth,
			Credential: clone},
	}, b, repo, nil
}

// recordLease records that the leased job j runs, even when the agent's
// request is cancelled meanwhile. b is the job's build as prepareJob read
// it, and pipeline the name of the job's pipeline.
func (s *Server) recordLease(ctx context.Context, j *store.Job, b *store.Build, pipeline string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
	defer cancel()
	return s.builds.RecordLease(ctx, j, b, pipeline)
}

// failLeased ends a job that was leased but cannot be handed out (its
// build was deleted, a secret does not decrypt) with status error.
func (s *Server) failLeased(ctx context.Context, j *store.Job, cause error) {
	s.log.Error("cannot hand out a leased job; failing it", "job", j.ID, "err", cause)
	if err := s.store.Jobs.Complete(ctx, j.ID, j.LeaseToken, store.StatusError, "preparing the job: "+cause.Error()); err != nil {
		s.log.Error("failing a job", "job", j.ID, "err", err)
		return
	}
	if err := s.reconcile(ctx, j.BuildID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("recording a failed job", "job", j.ID, "err", err)
	}
}

// leasedJob loads job id and checks that token is its current lease.
func (s *Server) leasedJob(ctx context.Context, id int64, token string) (*store.Job, error) {
	j, err := s.store.Jobs.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errLeaseLost(id)
	}
	if err != nil {
		return nil, err
	}
	if j.Status != store.StatusRunning || token == "" || j.LeaseToken != token {
		return nil, errLeaseLost(id)
	}
	return j, nil
}

func (s *Server) rpcExtend(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req rpc.ExtendRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	expires, err := s.store.Jobs.ExtendLease(ctx, id, req.LeaseToken, s.cfg.LeaseTTL)
	cancel := errors.Is(err, store.ErrCanceled)
	switch {
	case cancel:
	case errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrNotFound):
		s.agents.done(id)
		s.leases.forget(id)
		return errLeaseLost(id)
	case err != nil:
		return err
	}
	if err := s.agents.seen(ctx, s.store, id); err != nil {
		s.log.Warn("recording that an agent is alive", "job", id, "err", err)
	}
	writeJSON(w, http.StatusOK, &rpc.ExtendResponse{Expires: expires, Cancel: cancel})
	return nil
}

// stepStatuses are the statuses an agent may report for a step.
var stepStatuses = map[string]store.Status{
	"running": store.StatusRunning, "success": store.StatusSuccess, "failure": store.StatusFailure,
	"error": store.StatusError, "killed": store.StatusKilled, "skipped": store.StatusSkipped,
}

// checkStep validates a step update.
func checkStep(req *rpc.StepUpdate) error {
	if _, ok := stepStatuses[req.Status]; !ok {
		return badRequest("status", "status %q is not one of running, success, failure, error, killed, skipped", req.Status)
	}
	return nil
}

// checkLogs validates a log batch.
func checkLogs(req *rpc.LogBatch) error {
	if req.Seq < 0 || req.Seq >= 1<<build.AttemptShift {
		return badRequest("seq", "seq %d is out of range", req.Seq)
	}
	return nil
}

func (s *Server) rpcStep(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req rpc.StepUpdate
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if err := checkStep(&req); err != nil {
		return err
	}
	j, err := s.reportedJob(ctx, id, req.LeaseToken)
	if err != nil {
		return err
	}
	if err := s.applyStep(ctx, j, &req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// applyStep records a checked step update of the leased job j. An update
// about a finished step is ignored: a finished step never moves back.
func (s *Server) applyStep(ctx context.Context, j *store.Job, req *rpc.StepUpdate) error {
	id, pipeline, err := s.steps.step(ctx, s.store.Pipelines, j.PipelineID, req.Step)
	if err != nil {
		return err
	}
	return s.builds.RecordStep(ctx, j, &build.StepReport{ID: id, Name: req.Step, Pipeline: pipeline,
		Status: stepStatuses[req.Status], ExitCode: req.ExitCode, Error: req.Error, Started: req.Started,
		Finished: req.Finished})
}

func (s *Server) rpcLogs(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req rpc.LogBatch
	if err := decodeBody(w, r, &req, maxAgentBodySize, false); err != nil {
		return err
	}
	if err := checkLogs(&req); err != nil {
		return err
	}
	j, err := s.reportedJob(ctx, id, req.LeaseToken)
	if err != nil {
		return err
	}
	if err := s.applyLogs(ctx, j, &req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// applyLogs stores a checked log batch of the leased job j. Lines the
// store has already are dropped.
func (s *Server) applyLogs(ctx context.Context, j *store.Job, req *rpc.LogBatch) error {
	id, err := s.steps.stepID(ctx, s.store.Pipelines, j.PipelineID, req.Step)
	if err != nil {
		return err
	}
	if len(req.Lines) == 0 {
		return nil
	}
	now := time.Now()
	base := build.SeqOffset(j.Attempts) + req.Seq
	lines := make([]store.LogLine, len(req.Lines))
	for i, text := range req.Lines {
		lines[i] = store.LogLine{Seq: base + int64(i), Time: now, Text: text}
	}
	if err := s.store.Logs.Append(ctx, id, lines...); err != nil {
		return err
	}
	s.logs.notify(id)
	return nil
}

// jobStatuses are the final statuses an agent may complete a job with.
var jobStatuses = map[string]store.Status{
	"success": store.StatusSuccess, "failure": store.StatusFailure,
	"error": store.StatusError, "killed": store.StatusKilled,
}

// checkComplete validates a Complete report and returns its status.
func checkComplete(req *rpc.CompleteRequest) (store.Status, error) {
	status, ok := jobStatuses[req.Status]
	if !ok {
		return "", badRequest("status", "status %q is not one of success, failure, error, killed", req.Status)
	}
	return status, nil
}

func (s *Server) rpcComplete(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req rpc.CompleteRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	status, err := checkComplete(&req)
	if err != nil {
		return err
	}
	if err := s.completeJob(ctx, id, nil, req.LeaseToken, status, req.Error); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// completeJob ends job id and reconciles its build. j is the job as read
// before, or nil: it is then read after.
func (s *Server) completeJob(ctx context.Context, id int64, j *store.Job, token string, status store.Status, errText string) error {
	err := s.store.Jobs.Complete(ctx, id, token, status, errText)
	if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) {
		// A Complete re-sent after its acknowledgement was lost also
		// lands here: the job is finished either way.
		s.agents.done(id)
		s.leases.forget(id)
		return errLeaseLost(id)
	}
	if err != nil {
		return err
	}
	s.agents.done(id)
	s.leases.forget(id)
	if j == nil {
		if j, err = s.store.Jobs.Get(ctx, id); err != nil {
			return err
		}
	}
	s.steps.forget(j.PipelineID)
	if err := s.recordCompletion(ctx, j); err != nil {
		// The job is complete; the maintenance loop finishes the rest.
		s.log.Error("recording a completed job", "job", id, "err", err)
	}
	return nil
}

// recordCompletion records that job j completed, even when the agent's
// request is cancelled meanwhile; see build.Lifecycle.RecordCompletion.
func (s *Server) recordCompletion(ctx context.Context, j *store.Job) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
	defer cancel()
	return s.builds.RecordCompletion(ctx, j)
}

func (s *Server) rpcReport(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	var req rpc.Report
	if err := decodeBody(w, r, &req, maxAgentBodySize, false); err != nil {
		return err
	}
	// Check everything before applying anything.
	for i, it := range req.Items {
		switch {
		case (it.Step == nil) == (it.Logs == nil):
			return badRequest("items", "item %d: exactly one of step and logs must be set", i)
		case it.Step != nil:
			if err := checkStep(it.Step); err != nil {
				return err
			}
		default:
			if err := checkLogs(it.Logs); err != nil {
				return err
			}
		}
		if tok := itemToken(it); tok != "" && tok != req.LeaseToken {
			return errLeaseLost(id)
		}
	}
	var status store.Status
	if req.Complete != nil {
		if status, err = checkComplete(req.Complete); err != nil {
			return err
		}
		if tok := req.Complete.LeaseToken; tok != "" && tok != req.LeaseToken {
			return errLeaseLost(id)
		}
	}
	j, err := s.reportedJob(ctx, id, req.LeaseToken)
	if err != nil {
		return err
	}
	final := finalStepUpdates(req.Items)
	for i, it := range req.Items {
		if it.Step != nil {
			if f := final[it.Step.Step]; f > i {
				// A later item of this report finishes the step: one
				// write records both.
				if u := req.Items[f].Step; u.Started.IsZero() {
					u.Started = it.Step.Started
				}
				continue
			}
			err = s.applyStep(ctx, j, it.Step)
		} else {
			err = s.applyLogs(ctx, j, it.Logs)
		}
		if ae := (*apiError)(nil); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			// A report about a step the pipeline does not have is
			// dropped, as its own request would be refused, without
			// refusing the reports around it, the Complete above all.
			s.log.Warn("dropping an agent report about an unknown step", "job", id, "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	if req.Complete != nil {
		if err := s.completeJob(ctx, id, j, req.LeaseToken, status, req.Complete.Error); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// finalStepUpdates returns, by step name, the index of the last item of
// items that reports the step finished.
func finalStepUpdates(items []rpc.ReportItem) map[string]int {
	var final map[string]int
	for i, it := range items {
		if it.Step != nil && stepStatuses[it.Step.Status].Done() {
			if final == nil {
				final = make(map[string]int)
			}
			final[it.Step.Step] = i
		}
	}
	return final
}

// itemToken returns the lease token a report item carries, if any.
func itemToken(it rpc.ReportItem) string {
	if it.Step != nil {
		return it.Step.LeaseToken
	}
	return it.Logs.LeaseToken
}
