package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

type buildJSON = api.Build

type pipelineJSON = api.Pipeline

type stepJSON = api.Step

type jobJSON = api.Job

func toBuildJSON(b *store.Build, slug string) *buildJSON {
	return &buildJSON{
		ID: b.ID, Repo: slug, Number: b.Number, Parent: b.Parent, Event: b.Event, Ref: b.Ref, Branch: b.Branch,
		SourceBranch: b.SourceBranch, Commit: b.Commit, Before: b.Before, Message: b.Message, Author: b.Author,
		AuthorEmail: b.AuthorEmail, Sender: b.Sender, PullRequest: b.PullRequest, Fork: b.Fork, Cron: b.Cron,
		Params: b.Params, Status: b.Status, Error: b.Error, Warnings: b.Warnings, Approval: string(b.Approval),
		ApprovedBy: b.ApprovedBy, Created: b.Created, Started: b.Started, Finished: b.Finished, Updated: b.Updated,
	}
}

// buildStatuses are the values of the status filter.
var buildStatuses = []store.Status{store.StatusBlocked, store.StatusPending, store.StatusRunning,
	store.StatusSuccess, store.StatusFailure, store.StatusError, store.StatusKilled, store.StatusSkipped,
	store.StatusDeclined}

// maxPageSize caps the limit of a build list.
const maxPageSize = 100

func (s *Server) listBuilds(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.BuildFilter{Branch: q.Get("branch"), Event: q.Get("event"), Status: store.Status(q.Get("status"))}
	if f.Event != "" && !slices.Contains(buildEvents, f.Event) {
		return badRequest("event", "event %q is not one of %v", f.Event, buildEvents)
	}
	if f.Status != "" && !slices.Contains(buildStatuses, f.Status) {
		return badRequest("status", "status %q is not one of %v", f.Status, buildStatuses)
	}
	if f.PullRequest, err = queryInt(r, "pr", 0); err != nil {
		return err
	}
	if f.Before, err = queryInt(r, "before", 0); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 25)
	if err != nil {
		return err
	}
	if limit < 1 || limit > maxPageSize {
		return badRequest("limit", "limit must be between 1 and %d", maxPageSize)
	}
	f.Limit = int(limit)
	bs, err := s.store.Builds.List(r.Context(), repo.ID, f)
	if err != nil {
		return err
	}
	out := make([]*buildJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, toBuildJSON(b, repo.Slug))
	}
	if len(bs) == f.Limit {
		// The next page: the same query with before= the last number.
		next := *r.URL
		nq := next.Query()
		nq.Set("before", fmt.Sprint(bs[len(bs)-1].Number))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", "<"+next.RequestURI()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// buildByNumber loads the repo's build named by the {number} path value.
func (s *Server) buildByNumber(r *http.Request, repo *store.Repo) (*store.Build, error) {
	n, err := pathInt(r, "number")
	if err != nil {
		return nil, err
	}
	b, err := s.store.Builds.GetNumber(r.Context(), repo.ID, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("build %d of %s not found", n, repo.Slug)
	}
	return b, err
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return err
	}
	b, err := s.buildByNumber(r, repo)
	if err != nil {
		return err
	}
	return s.writeBuild(w, r.Context(), http.StatusOK, repo, b)
}

// writeBuild answers a build with its pipelines, steps and jobs, and the
// reasons its waiting jobs wait.
func (s *Server) writeBuild(w http.ResponseWriter, ctx context.Context, status int, repo *store.Repo, b *store.Build) error {
	out, err := s.buildDetail(ctx, repo, b)
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) buildDetail(ctx context.Context, repo *store.Repo, b *store.Build) (*buildJSON, error) {
	pls, err := s.store.Pipelines.List(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	jobs, err := s.store.Jobs.List(ctx, store.JobFilter{BuildID: b.ID})
	if err != nil {
		return nil, err
	}
	jobOf := map[int64]*store.Job{}
	anyPending := false
	for _, j := range jobs {
		jobOf[j.PipelineID] = j
		anyPending = anyPending || j.Status == store.StatusPending
	}
	// Why pending jobs wait depends on the agents connected now.
	var agents []*store.Agent
	running := map[int64]int{}
	if anyPending {
		if agents, err = s.store.Agents.List(ctx); err != nil {
			return nil, err
		}
		rs, err := s.store.Jobs.List(ctx, store.JobFilter{Status: store.StatusRunning})
		if err != nil {
			return nil, err
		}
		for _, j := range rs {
			// A job of this build read as pending just above may have been
			// leased since: its agent is not busy with other work.
			if pj := jobOf[j.PipelineID]; pj != nil && pj.ID == j.ID {
				continue
			}
			running[j.LeaseOwner]++
		}
	}
	status := map[string]store.Status{}
	for _, p := range pls {
		status[p.Name] = p.Status
	}
	now := time.Now()
	out := toBuildJSON(b, repo.Slug)
	out.Pipelines = make([]*pipelineJSON, 0, len(pls))
	for _, p := range pls {
		pj := &pipelineJSON{Number: p.Number, Name: p.Name, Status: p.Status, Error: p.Error,
			DependsOn: p.DependsOn, Agent: p.Agent, Started: p.Started, Finished: p.Finished,
			Steps: make([]*stepJSON, 0, len(p.Steps))}
		if pj.DependsOn == nil {
			pj.DependsOn = []string{}
		}
		for _, st := range p.Steps {
			pj.Steps = append(pj.Steps, &stepJSON{Number: st.Number, Name: st.Name, Status: st.Status,
				ExitCode: st.ExitCode, Error: st.Error, Started: st.Started, Finished: st.Finished})
		}
		if j := jobOf[p.ID]; j != nil {
			jj := &jobJSON{ID: j.ID, Status: j.Status, Labels: j.Labels, Attempts: j.Attempts,
				Canceled: j.Canceled, Error: j.Error, Queued: j.Queued, Started: j.Started, Finished: j.Finished}
			if jj.Labels == nil {
				jj.Labels = map[string]string{}
			}
			switch j.Status {
			case store.StatusPending:
				jj.WaitingReason = waitingReason(j.Labels, agents, running, now)
			case store.StatusBlocked:
				jj.WaitingReason = blockedReason(b, p, status)
			}
			pj.Job = jj
		}
		out.Pipelines = append(out.Pipelines, pj)
	}
	return out, nil
}

// blockedReason explains why a blocked job waits.
func blockedReason(b *store.Build, p *store.Pipeline, status map[string]store.Status) string {
	if b.Approval == store.ApprovalPending {
		return "waiting for approval"
	}
	var waiting []string
	for _, d := range p.DependsOn {
		if st, ok := status[d]; ok && !st.Done() {
			waiting = append(waiting, d)
		}
	}
	if len(waiting) == 0 {
		return "waiting to be scheduled"
	}
	return "waiting for pipeline " + strings.Join(waiting, ", ")
}

var paramRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

type manualBuildRequest = api.BuildRequest

var shaRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`) })

func (s *Server) postBuild(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var req manualBuildRequest
	if err := decodeBody(w, r, &req, maxBodySize, true); err != nil {
		return err
	}
	for k := range req.Params {
		if !paramRE().MatchString(k) {
			return badRequest("params", "parameter name %q must be a variable name (letters, digits, '_')", k)
		}
	}
	if req.Branch != "" && req.Ref != "" {
		return badRequest("ref", "give branch or ref, not both")
	}
	switch req.Event {
	case "", store.EventCustom:
	case store.EventPush:
		return s.postPushBuild(w, r, repo, &req)
	default:
		return badRequest("event", "event %q is not one of [%s %s]; webhooks and polling report the others",
			req.Event, store.EventCustom, store.EventPush)
	}
	ev := &trigger.Event{Kind: store.EventCustom, Params: req.Params, Sender: caller(r).name(), SHA: req.SHA}
	switch {
	case req.SHA != "":
		if !shaRE().MatchString(req.SHA) {
			return badRequest("sha", "sha %q must be a full commit id (40 or 64 hex digits)", req.SHA)
		}
		ev.Ref = req.Ref
		if ev.Ref == "" {
			ev.Ref = "refs/heads/" + cmp.Or(req.Branch, repo.DefaultBranch, "main")
		}
	default:
		ref, field := req.Ref, "ref"
		if ref == "" {
			ref, field = "refs/heads/"+cmp.Or(req.Branch, repo.DefaultBranch, "main"), "branch"
		}
		auth, err := s.gitOptions(ctx, repo)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		sha, full, err := s.git.resolve(rctx, repo.GitURL, ref, auth...)
		cancel()
		if errors.Is(err, errUnknownRef) {
			return badRequest(field, "%v", err)
		}
		if errors.Is(err, forge.ErrAuth) {
			return errorf(http.StatusBadGateway, "", "resolving %s: %v; the repository needs a credential, or refused the one it has: "+
				"set one with `ferry repo credential set %s`", ref, err, repo.Slug)
		}
		if err != nil {
			return errorf(http.StatusBadGateway, "", "resolving %s: %v", ref, err)
		}
		ev.SHA, ev.Ref = sha, full
	}
	ev.Branch, _ = strings.CutPrefix(ev.Ref, "refs/heads/")
	if !strings.HasPrefix(ev.Ref, "refs/heads/") {
		ev.Branch = ""
	}
	ev.SourceBranch = ev.Branch
	b, err := s.CreateBuild(ctx, repo, ev)
	if err != nil {
		return err
	}
	if b == nil {
		return badRequest("", "nothing to build at %s (%s): no pipeline file, or no pipeline's trigger matches a custom build", ev.Ref, ev.SHA)
	}
	return s.writeBuild(w, ctx, http.StatusCreated, repo, b)
}

// postPushBuild builds a push reported through the API: the branch
// req.Branch (or req.Ref) moved to the commit req.SHA. It is how a client
// that knows of a push the forge does not report (`ferry up`, a git hook)
// tells the server; it is administrators' only, because a push build sees
// the secrets limited to pushes. While it runs, the server's poller does
// not poll the repo: the build is created through the build lifecycle,
// like a polled one, and the commit becomes the branch's poll baseline
// (when the repo has one: a repo never polled records its refs at its
// first poll without building them), so that the poller does not build it
// again. A commit that has a push build of that branch already is not
// built again: the answer is that build, with 200.
func (s *Server) postPushBuild(w http.ResponseWriter, r *http.Request, repo *store.Repo, req *manualBuildRequest) error {
	if !caller(r).isAdmin() {
		return forbidden("only administrators may report a push (event %q); start a custom build instead", store.EventPush)
	}
	ctx := r.Context()
	if len(req.Params) > 0 {
		return badRequest("params", "parameters are for custom builds, not for a push")
	}
	if req.SHA == "" {
		return badRequest("sha", "a push names its commit: sha is required")
	}
	if !shaRE().MatchString(req.SHA) {
		return badRequest("sha", "sha %q must be a full commit id (40 or 64 hex digits)", req.SHA)
	}
	ref, field := req.Ref, "ref"
	if ref == "" {
		ref, field = "refs/heads/"+req.Branch, "branch"
	}
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok || branch == "" {
		return badRequest(field, "a push names the branch it moved: give branch (or ref refs/heads/BRANCH), not %q", cmp.Or(req.Ref, req.Branch))
	}
	release, err := s.polls.Hold(ctx, repo.ID)
	if err != nil {
		return err
	}
	defer release()
	prev, err := s.store.Builds.List(ctx, repo.ID, store.BuildFilter{Branch: branch, Event: store.EventPush, Commit: req.SHA, Limit: 1})
	if err != nil {
		return err
	}
	if len(prev) > 0 {
		return s.writeBuild(w, ctx, http.StatusOK, repo, prev[0])
	}
	b, err := s.CreateBuild(ctx, repo, &trigger.Event{Kind: store.EventPush, Ref: ref, Branch: branch, SourceBranch: branch,
		SHA: req.SHA, Sender: caller(r).name()})
	if err != nil {
		return err
	}
	if refs, err := s.store.Repos.PollRefs(ctx, repo.ID); err != nil {
		return err
	} else if refs != nil && refs[ref] != req.SHA {
		refs[ref] = req.SHA
		if err := s.store.Repos.SavePollRefs(ctx, repo.ID, refs); err != nil {
			return err
		}
	}
	if b == nil {
		return badRequest("", "nothing to build at %s (%s): no pipeline file, or no pipeline's trigger matches a push", ref, req.SHA)
	}
	return s.writeBuild(w, ctx, http.StatusCreated, repo, b)
}

func (s *Server) cancelBuild(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	ctx := r.Context()
	b, err := s.buildByNumber(r, repo)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}, maxBodySize, true); err != nil {
		return err
	}
	if b.Status.Done() {
		return conflict("", "build %d already finished (%s)", b.Number, b.Status)
	}
	if err := s.cancelJobs(ctx, b.ID); err != nil {
		return err
	}
	s.log.Info("build cancelled", "repo", repo.Slug, "build", b.Number, "by", caller(r).name())
	if b, err = s.store.Builds.Get(ctx, b.ID); err != nil {
		return err
	}
	return s.writeBuild(w, ctx, http.StatusOK, repo, b)
}

// cancelJobs cancels every unfinished job of a build and reconciles it:
// queued jobs end at once, running ones when their agent learns of it.
func (s *Server) cancelJobs(ctx context.Context, buildID int64) error {
	return s.builds.Cancel(ctx, buildID)
}

type restartRequest = api.RestartRequest

func (s *Server) restartBuild(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	ctx := r.Context()
	old, err := s.buildByNumber(r, repo)
	if err != nil {
		return err
	}
	var req restartRequest
	if err := decodeBody(w, r, &req, maxBodySize, true); err != nil {
		return err
	}
	if !old.Status.Done() {
		return conflict("", "build %d is still %s; cancel it before restarting", old.Number, old.Status)
	}
	b, err := s.restart(ctx, repo, old, req.FailedOnly, caller(r).name())
	if err != nil {
		return err
	}
	return s.writeBuild(w, ctx, http.StatusCreated, repo, b)
}

// restart creates a new build of old's trigger and config; see
// build.Lifecycle.Restart.
func (s *Server) restart(ctx context.Context, repo *store.Repo, old *store.Build, failedOnly bool, by string) (*store.Build, error) {
	b, err := s.builds.Restart(ctx, repo, old, failedOnly, by)
	if errors.Is(err, build.ErrNothingToRestart) {
		return nil, conflict("", "build %d has no pipelines to restart: %s", old.Number, cmp.Or(old.Error, "it never ran"))
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("build restarted", "repo", repo.Slug, "build", b.Number, "parent", old.Number, "failed_only", failedOnly, "by", by)
	return b, nil
}

func (s *Server) approveBuild(w http.ResponseWriter, r *http.Request) error {
	return s.decide(w, r, store.ApprovalApproved)
}

func (s *Server) declineBuild(w http.ResponseWriter, r *http.Request) error {
	return s.decide(w, r, store.ApprovalDeclined)
}

// decide records an approval decision on a build waiting for one.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, decision store.Approval) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := decodeBody(w, r, &struct{}{}, maxBodySize, true); err != nil {
		return err
	}
	b, err := s.buildByNumber(r, repo)
	if err != nil {
		return err
	}
	b, err = s.builds.Decide(ctx, b.ID, decision, caller(r).name())
	if nw := (*build.NotWaitingError)(nil); errors.As(err, &nw) {
		return conflict("", "build %d is not waiting for approval", nw.Number)
	}
	if err != nil {
		return err
	}
	s.log.Info("build "+string(decision), "repo", repo.Slug, "build", b.Number, "by", b.ApprovedBy)
	return s.writeBuild(w, ctx, http.StatusOK, repo, b)
}

// badgeStatus is the status of the latest build of a repo's branch (the
// default branch when branch is empty), for the UI's status badges, or ""
// when there is no such repo or build.
func (s *Server) badgeStatus(ctx context.Context, slug, branch string) string {
	repo, err := s.store.Repos.GetBySlug(ctx, slug)
	if err != nil {
		return ""
	}
	if branch == "" {
		branch = repo.DefaultBranch
	}
	bs, err := s.store.Builds.List(ctx, repo.ID, store.BuildFilter{Branch: branch, Limit: 1})
	if err != nil || len(bs) == 0 {
		return ""
	}
	return string(bs[0].Status)
}
