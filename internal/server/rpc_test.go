package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// twoPipelines is a config whose second pipeline depends on the first.
const twoPipelines = `kind: pipeline
type: docker
name: build
steps:
- name: compile
  image: busybox
  commands:
  - echo build ${DRONE_BUILD_NUMBER} ${GREETING}
- name: test
  image: busybox
  commands:
  - echo test
---
kind: pipeline
type: docker
name: deploy
depends_on: [build]
steps:
- name: ship
  image: busybox
  commands:
  - echo ship
`

// TestJobCycle runs a build through the agent protocol with the rpc
// client: lease, step updates, logs (re-sent too), heartbeat, complete,
// and the dependent pipeline that this unblocks.
func TestJobCycle(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { t.Parallel(); testJobCycle(t, driver) })
	}
}

func testJobCycle(t *testing.T, driver string) {
	ts := startServer(t, driver, nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	sha := g.Git("rev-parse", "HEAD")
	ts.addRepo(g)
	ctx := context.Background()

	var created buildJSON
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken,
		map[string]any{"branch": "main", "params": map[string]string{"GREETING": "hello"}}, &created)
	if created.Number != 1 || created.Commit != sha || created.Event != "custom" {
		t.Fatalf("created build %d at %s (%s), want build 1 at %s (custom)", created.Number, created.Commit, created.Event, sha)
	}
	if got := created.pipelineStatuses(); got != "build=pending deploy=blocked" {
		t.Fatalf("pipelines %s, want build=pending deploy=blocked", got)
	}
	if r := created.Pipelines[0].Job.WaitingReason; r != "no agent is connected" {
		t.Errorf("waiting reason %q, want %q", r, "no agent is connected")
	}
	if r := created.Pipelines[1].Job.WaitingReason; r != "waiting for pipeline build" {
		t.Errorf("waiting reason of deploy %q, want %q", r, "waiting for pipeline build")
	}

	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	if job.Pipeline != "build" || job.Number != 1 || job.ConfigFile != ".drone.yml" {
		t.Fatalf("leased %q #%d of %q, want build #1 of .drone.yml", job.Pipeline, job.Number, job.ConfigFile)
	}
	if !strings.Contains(job.Config, "echo build 1 hello") {
		t.Errorf("config was not expanded with the build number and the parameter:\n%s", job.Config)
	}
	if job.Metadata.Build.Number != 1 || job.Metadata.Commit.SHA != sha || job.Metadata.Repo.Slug != "acme/app" {
		t.Errorf("metadata %+v does not describe build 1 of acme/app at %s", job.Metadata, sha)
	}
	if job.Clone.URL != g.URL() || job.Clone.Ref != "refs/heads/main" || job.Clone.SHA != sha {
		t.Errorf("clone %+v, want %s refs/heads/main %s", job.Clone, g.URL(), sha)
	}
	if job.LeaseTTL != server.DefaultLeaseTTL || job.LeaseToken == "" {
		t.Errorf("lease ttl %s token %q", job.LeaseTTL, job.LeaseToken)
	}
	// The dependent pipeline is not leased before its dependency ends.
	if j := lease(t, c, "agent-1", dockerAgent, 0); j != nil {
		t.Fatalf("leased %q while it waits for build", j.Pipeline)
	}

	b := ts.build(1)
	if b.Status != "running" || b.Pipelines[0].Status != "running" || b.Pipelines[0].Agent != "agent-1" {
		t.Fatalf("after lease: build %s, pipeline %s on %q; want running on agent-1", b.Status, b.Pipelines[0].Status, b.Pipelines[0].Agent)
	}
	if b.Started.IsZero() || b.Pipelines[0].Started.IsZero() || b.Started.After(b.Pipelines[0].Started) {
		t.Fatalf("after lease: build started %v, pipeline started %v; want both set, the build's first", b.Started, b.Pipelines[0].Started)
	}

	tok := job.LeaseToken
	step := func(name, status string, code int) {
		t.Helper()
		if err := c.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: tok, Step: name, Status: status, ExitCode: code}); err != nil {
			t.Fatalf("UpdateStep %s %s: %v", name, status, err)
		}
	}
	logs := func(name string, seq int64, lines ...string) {
		t.Helper()
		if err := c.AppendLogs(ctx, job.ID, &rpc.LogBatch{LeaseToken: tok, Step: name, Seq: seq, Lines: lines}); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
	}
	step("compile", "running", 0)
	logs("compile", 0, "one", "two")
	logs("compile", 0, "one", "two") // re-sent after a lost acknowledgement
	logs("compile", 2, "three")
	step("compile", "success", 0)
	step("compile", "running", 0) // a late duplicate never moves a finished step back
	step("test", "running", 0)
	logs("test", 0, "testing")
	step("test", "success", 0)
	extended := time.Now()
	res, err := c.Extend(ctx, job.ID, &rpc.ExtendRequest{LeaseToken: tok})
	if err != nil || res.Cancel {
		t.Fatalf("Extend = %+v, %v; want no cancel", res, err)
	}
	// The server extends from the time of the call, which is after
	// extended, however long the call took. (The store keeps microseconds.)
	if least := extended.Add(server.DefaultLeaseTTL).Truncate(time.Millisecond); res.Expires.Before(least) {
		t.Errorf("extended lease expires at %s, want a lease TTL (%s) after the call, at least %s", res.Expires, server.DefaultLeaseTTL, least)
	}

	// Calls with a wrong lease token, or about an unknown step, fail.
	err = c.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: "stale", Step: "test", Status: "running"})
	if !isLeaseLost(err) {
		t.Errorf("UpdateStep with a wrong token: %v, want lease lost", err)
	}
	err = c.AppendLogs(ctx, job.ID, &rpc.LogBatch{LeaseToken: tok, Step: "nope", Lines: []string{"x"}})
	var se *rpc.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("AppendLogs for an unknown step: %v, want 404", err)
	}

	if err := c.Complete(ctx, job.ID, &rpc.CompleteRequest{LeaseToken: tok, Status: "success"}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if err := c.Complete(ctx, job.ID, &rpc.CompleteRequest{LeaseToken: tok, Status: "success"}); !isLeaseLost(err) {
		t.Errorf("second Complete: %v, want lease lost", err)
	}
	b = ts.build(1)
	if got := b.pipelineStatuses(); got != "build=success deploy=pending" {
		t.Fatalf("after build succeeded: %s, want build=success deploy=pending", got)
	}
	if st := b.Pipelines[0].Steps; st[0].Status != "success" || st[1].Status != "success" {
		t.Errorf("steps %+v, want both success", st)
	}

	deploy := mustLease(t, c, "agent-1", dockerAgent)
	if deploy.Pipeline != "deploy" || deploy.Number != 2 {
		t.Fatalf("leased %q #%d, want deploy #2", deploy.Pipeline, deploy.Number)
	}
	// The second job reports everything in one request. A report with
	// an invalid item is refused as a whole, before anything is applied.
	bad := &rpc.Report{LeaseToken: deploy.LeaseToken, Items: []rpc.ReportItem{
		{Step: &rpc.StepUpdate{Step: "ship", Status: "running"}},
		{Step: &rpc.StepUpdate{Step: "ship", Status: "bogus"}},
	}}
	if err := c.Report(ctx, deploy.ID, bad); !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Errorf("Report with an invalid status: %v, want 400", err)
	}
	if st := ts.build(1).Pipelines[1].Steps[0]; st.Status != "pending" {
		t.Errorf("after a refused report the ship step is %s, want pending", st.Status)
	}
	// The step starts and finishes within the report: its start time is
	// the running update's, also though the final update has none.
	shipStarted := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	report := &rpc.Report{LeaseToken: deploy.LeaseToken, Items: []rpc.ReportItem{
		{Step: &rpc.StepUpdate{Step: "ship", Status: "running", Started: shipStarted}},
		{Logs: &rpc.LogBatch{Step: "ship", Seq: 0, Lines: []string{"shipping"}}},
		{Logs: &rpc.LogBatch{Step: "ship", Seq: 1, Lines: []string{"failed"}}},
		{Step: &rpc.StepUpdate{Step: "ship", Status: "failure", ExitCode: 3}},
		// Dropped without refusing the rest.
		{Logs: &rpc.LogBatch{Step: "nope", Lines: []string{"x"}}},
	}, Complete: &rpc.CompleteRequest{Status: "failure"}}
	if err := c.Report(ctx, deploy.ID, report); err != nil {
		t.Fatalf("Report: %v", err)
	}
	// Re-sent after a lost acknowledgement: the lease ended with the job.
	if err := c.Report(ctx, deploy.ID, report); !isLeaseLost(err) {
		t.Errorf("re-sent Report: %v, want lease lost", err)
	}
	b = ts.build(1)
	if b.Status != "failure" || b.pipelineStatuses() != "build=success deploy=failure" {
		t.Fatalf("final build %s with %s, want failure with build=success deploy=failure", b.Status, b.pipelineStatuses())
	}
	if s := b.Pipelines[1].Steps[0]; s.Status != "failure" || s.ExitCode != 3 || !s.Started.Equal(shipStarted) {
		t.Errorf("ship step %+v, want failure with exit code 3, started %s", s, shipStarted)
	}

	// The whole log, once per line, and its tail.
	full := ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/1/pipelines/1/steps/1/logs", adminToken, nil, nil)
	if string(full) != "one\ntwo\nthree\n" {
		t.Errorf("log = %q, want one, two, three", full)
	}
	shipped := ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/1/pipelines/2/steps/1/logs", adminToken, nil, nil)
	if string(shipped) != "shipping\nfailed\n" {
		t.Errorf("ship log = %q, want shipping, failed", shipped)
	}
	tail := ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/1/pipelines/1/steps/1/logs?tail=1", adminToken, nil, nil)
	if string(tail) != "three\n" {
		t.Errorf("tail = %q, want three", tail)
	}
	ts.must(http.StatusNotFound, "GET", "/api/repos/acme/app/builds/1/pipelines/1/steps/9/logs", adminToken, nil, nil)

	// The build list filters by status.
	var list []buildJSON
	ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds?status=failure", adminToken, nil, &list)
	if len(list) != 1 || list[0].Number != 1 {
		t.Errorf("builds with status failure: %+v", list)
	}
	ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds?status=success", adminToken, nil, &list)
	if len(list) != 0 {
		t.Errorf("builds with status success: %+v, want none", list)
	}
}

// TestCancelRunning cancels a build through the API: the agent learns it
// from its next heartbeat and completes the job as killed.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, map[string]any{}, nil)
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	ctx := context.Background()
	if err := c.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: job.LeaseToken, Step: "compile", Status: "running"}); err != nil {
		t.Fatal(err)
	}

	b := buildJSON{}
	ts.must(http.StatusOK, "POST", "/api/repos/acme/app/builds/1/cancel", adminToken, nil, &b)
	if b.Status != "running" || b.pipelineStatuses() != "build=running deploy=killed" {
		t.Fatalf("after cancel: %s with %s; want the running pipeline to wait for its agent, the blocked one killed",
			b.Status, b.pipelineStatuses())
	}
	res, err := c.Extend(ctx, job.ID, &rpc.ExtendRequest{LeaseToken: job.LeaseToken})
	if err != nil || !res.Cancel {
		t.Fatalf("Extend after cancel = %+v, %v; want cancel", res, err)
	}
	if err := c.Complete(ctx, job.ID, &rpc.CompleteRequest{LeaseToken: job.LeaseToken, Status: "killed"}); err != nil {
		t.Fatal(err)
	}
	b = *ts.build(1)
	if b.Status != "killed" || b.pipelineStatuses() != "build=killed deploy=killed" {
		t.Fatalf("final: %s with %s, want killed", b.Status, b.pipelineStatuses())
	}
	steps := b.Pipelines[0].Steps
	if steps[0].Status != "killed" || steps[1].Status != "skipped" {
		t.Errorf("steps compile=%s test=%s, want the running one killed and the pending one skipped", steps[0].Status, steps[1].Status)
	}
	ts.must(http.StatusConflict, "POST", "/api/repos/acme/app/builds/1/cancel", adminToken, nil, nil)
}
