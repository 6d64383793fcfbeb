package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/trigger"
)

// TestLeaseExpiry lets an agent vanish twice: its first lease expires and
// the job is re-queued, its second expires and the job fails with "agent
// lost", all within about a lease TTL each.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { t.Parallel(); testLeaseExpiry(t, driver) })
	}
}

func testLeaseExpiry(t *testing.T, driver string) {
	const ttl = 600 * time.Millisecond
	ts := startServer(t, driver, func(c *server.Config) { c.LeaseTTL = ttl; c.MaxAttempts = 2 })
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	ctx := context.Background()

	first := mustLease(t, c, "doomed-1", dockerAgent)
	if err := c.UpdateStep(ctx, first.ID, &rpc.StepUpdate{LeaseToken: first.LeaseToken, Step: "compile", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendLogs(ctx, first.ID, &rpc.LogBatch{LeaseToken: first.LeaseToken, Step: "compile", Lines: []string{"first try"}}); err != nil {
		t.Fatal(err)
	}
	leased := time.Now()
	b := ts.waitBuild(1, 3*time.Second, "re-queue", func(b *buildJSON) bool {
		return b.Pipelines[0].Status == "pending" && b.Pipelines[0].Job.Status == "pending"
	})
	t.Logf("re-queued %s after the lease (TTL %s)", time.Since(leased).Round(time.Millisecond), ttl)
	if s := b.Pipelines[0].Steps[0]; s.Status != "pending" {
		t.Errorf("after re-queue step compile is %s, want pending for the next attempt", s.Status)
	}
	if _, err := c.Extend(ctx, first.ID, &rpc.ExtendRequest{LeaseToken: first.LeaseToken}); !isLeaseLost(err) {
		t.Errorf("Extend of the expired lease: %v, want lease lost", err)
	}

	second := mustLease(t, c, "doomed-2", dockerAgent)
	if second.ID != first.ID || second.LeaseToken == first.LeaseToken {
		t.Fatalf("second lease: job %d token %q; want job %d with a new token", second.ID, second.LeaseToken, first.ID)
	}
	// Fencing: the first attempt, should it still run somewhere, can no
	// longer report anything.
	if err := c.UpdateStep(ctx, first.ID, &rpc.StepUpdate{LeaseToken: first.LeaseToken, Step: "compile", Status: "success"}); !isLeaseLost(err) {
		t.Errorf("a step update of the first attempt: %v, want lease lost", err)
	}
	if err := c.AppendLogs(ctx, first.ID, &rpc.LogBatch{LeaseToken: first.LeaseToken, Step: "compile", Seq: 1, Lines: []string{"stale"}}); !isLeaseLost(err) {
		t.Errorf("logs of the first attempt: %v, want lease lost", err)
	}
	if err := c.Complete(ctx, first.ID, &rpc.CompleteRequest{LeaseToken: first.LeaseToken, Status: "success"}); !isLeaseLost(err) {
		t.Errorf("completion by the first attempt: %v, want lease lost", err)
	}
	if err := c.AppendLogs(ctx, second.ID, &rpc.LogBatch{LeaseToken: second.LeaseToken, Step: "compile", Lines: []string{"second try"}}); err != nil {
		t.Fatal(err)
	}
	b = ts.waitBuild(1, 3*time.Second, "agent lost", func(b *buildJSON) bool { return b.Status == "error" })
	p := b.Pipelines[0]
	if p.Status != "error" || p.Error != "agent lost" || p.Job.Attempts != 2 {
		t.Errorf("pipeline %s (%q) after %d attempts, want error \"agent lost\" after 2", p.Status, p.Error, p.Job.Attempts)
	}
	if !strings.Contains(b.Error, "agent lost") {
		t.Errorf("build error %q does not say the agent was lost", b.Error)
	}
	if b.Pipelines[1].Status != "skipped" {
		t.Errorf("deploy is %s, want skipped after its dependency failed", b.Pipelines[1].Status)
	}
	log := ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/1/pipelines/1/steps/1/logs", adminToken, nil, nil)
	want := "first try\nferry: the agent running this job was lost; attempt 2 starts over\nsecond try\n"
	if string(log) != want {
		t.Errorf("log = %q, want %q", log, want)
	}
}

// TestPendingTimeout checks that a job no agent can take says why, and
// ends with that reason after the pending timeout.
func TestPendingTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", func(c *server.Config) { c.PendingTimeout = time.Second })
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
name: gpu
node:
  gpu: "true"
steps:
- name: train
  image: busybox
  commands: [nvidia-smi]
`})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	if j := lease(t, c, "cpu-only", dockerAgent, 0); j != nil {
		t.Fatalf("an agent without the gpu label leased %q", j.Pipeline)
	}
	b := ts.build(1)
	const reason = "no agent with labels backend=docker,gpu=true is connected"
	if got := b.Pipelines[0].Job.WaitingReason; got != reason {
		t.Errorf("waiting reason %q, want %q", got, reason)
	}
	b = ts.waitBuild(1, 4*time.Second, "pending timeout", func(b *buildJSON) bool { return b.Status == "error" })
	p := b.Pipelines[0]
	if want := "no agent took the job within 1s: " + reason; p.Error != want {
		t.Errorf("pipeline error %q, want %q", p.Error, want)
	}
	if p.Steps[0].Status != "skipped" {
		t.Errorf("step is %s, want skipped", p.Steps[0].Status)
	}

	metrics := string(ts.must(http.StatusOK, "GET", "/metrics", adminToken, nil, nil))
	for _, want := range []string{
		"ferry_jobs_pending 0", "ferry_jobs_running 0", "ferry_agents_connected 1",
		`ferry_jobs_total{status="error"} 1`, `ferry_build_duration_seconds_count{status="error"} 1`,
		"ferry_queue_wait_seconds_count 0", "process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestRestartFailedOnly restarts a failed build, re-running only the
// pipelines that did not succeed.
func TestRestartFailedOnly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
name: lint
steps:
- name: vet
  image: busybox
  commands: [go vet]
---
kind: pipeline
name: test
steps:
- name: unit
  image: busybox
  commands: [go test]
---
kind: pipeline
name: publish
depends_on: [lint, test]
steps:
- name: push
  image: busybox
  commands: [echo push]
`})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	ctx := context.Background()
	for range 2 {
		j := mustLease(t, c, "agent-1", dockerAgent)
		status := "success"
		if j.Pipeline == "test" {
			status = "failure"
		}
		step := map[string]string{"lint": "vet", "test": "unit"}[j.Pipeline]
		if err := c.UpdateStep(ctx, j.ID, &rpc.StepUpdate{LeaseToken: j.LeaseToken, Step: step, Status: status}); err != nil {
			t.Fatal(err)
		}
		if err := c.AppendLogs(ctx, j.ID, &rpc.LogBatch{LeaseToken: j.LeaseToken, Step: step, Lines: []string{step + " says " + status}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Complete(ctx, j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	b := ts.build(1)
	if b.Status != "failure" || b.pipelineStatuses() != "lint=success test=failure publish=skipped" {
		t.Fatalf("build 1: %s with %s", b.Status, b.pipelineStatuses())
	}

	var nb buildJSON
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds/1/restart", adminToken, map[string]bool{"failed_only": true}, &nb)
	if nb.Number != 2 || nb.Parent != 1 || nb.Commit != b.Commit {
		t.Fatalf("restart: build %d (parent %d) at %s; want build 2, parent 1, at %s", nb.Number, nb.Parent, nb.Commit, b.Commit)
	}
	if got := nb.pipelineStatuses(); got != "lint=success test=pending publish=blocked" {
		t.Fatalf("restarted pipelines %s, want lint=success test=pending publish=blocked", got)
	}
	if nb.Pipelines[0].Job != nil || nb.Pipelines[0].Steps[0].Status != "success" {
		t.Errorf("lint should be copied with its step and no job: %+v", nb.Pipelines[0])
	}
	if got := ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/2/pipelines/1/steps/1/logs", adminToken, nil, nil); string(got) != "vet says success\n" {
		t.Errorf("the copied lint step's log = %q, want its log from build 1", got)
	}
	j := mustLease(t, c, "agent-1", dockerAgent)
	if j.Pipeline != "test" || j.Metadata.Build.Number != 2 || j.Metadata.Build.Parent != 1 {
		t.Fatalf("leased %q of build %d (parent %d), want test of build 2", j.Pipeline, j.Metadata.Build.Number, j.Metadata.Build.Parent)
	}
	if err := c.Complete(ctx, j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	j = mustLease(t, c, "agent-1", dockerAgent)
	if j.Pipeline != "publish" {
		t.Fatalf("leased %q, want publish once test passed", j.Pipeline)
	}
	if err := c.Complete(ctx, j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	if b := ts.build(2); b.Status != "success" {
		t.Errorf("restarted build is %s with %s, want success", b.Status, b.pipelineStatuses())
	}
	// The whole build again: every pipeline runs.
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds/1/restart", adminToken, nil, &nb)
	if got := nb.pipelineStatuses(); nb.Number != 3 || got != "lint=pending test=pending publish=blocked" {
		t.Errorf("full restart: build %d with %s", nb.Number, got)
	}
}

// TestDecline declines a fork's pull request: nothing of it ever runs.
func TestDecline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)
	repo, err := ts.Store().Repos.GetBySlug(context.Background(), "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	sha := g.Git("rev-parse", "HEAD")
	b, err := ts.CreateBuild(context.Background(), repo, &trigger.Event{Kind: "pull_request", Ref: "refs/pull/3/head",
		Branch: "main", SourceBranch: "evil", SHA: sha, PullRequest: 3, Fork: true, Sender: "mallory"})
	if err != nil || b == nil {
		t.Fatalf("CreateBuild: %v, %v", b, err)
	}
	writer := ts.userToken("writer")
	reader := ts.userToken("reader")
	ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/writer", adminToken, map[string]string{"role": "write"}, nil)
	ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/reader", adminToken, map[string]string{"role": "read"}, nil)
	ts.must(http.StatusForbidden, "POST", "/api/repos/acme/app/builds/1/approve", reader, nil, nil)

	var declined buildJSON
	ts.must(http.StatusOK, "POST", "/api/repos/acme/app/builds/1/decline", writer, nil, &declined)
	if declined.Status != "declined" || declined.Approval != "declined" || declined.pipelineStatuses() != "build=declined deploy=declined" {
		t.Fatalf("declined build: %s (approval %s) with %s", declined.Status, declined.Approval, declined.pipelineStatuses())
	}
	for _, p := range declined.Pipelines {
		if p.Job.Status != "killed" {
			t.Errorf("job of %s is %s, want killed", p.Name, p.Job.Status)
		}
	}
	c := ts.agentClient("agents")
	if j := lease(t, c, "agent-1", dockerAgent, 0); j != nil {
		t.Fatalf("leased %q of a declined build", j.Pipeline)
	}
	ts.must(http.StatusConflict, "POST", "/api/repos/acme/app/builds/1/approve", writer, nil, nil)
}

// TestPollingWired checks that the server runs the git poller: a commit
// pushed to a polled repo becomes a build.
func TestPollingWired(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
		map[string]any{"git_url": g.URL(), "poll_interval": "1s"}, nil)
	// The first poll only records the refs; the commit must come after it.
	ts.waitLog("first poll: recorded the branches and tags as the baseline")
	sha := g.Commit("second", map[string]string{"README": "hi"})
	deadline := time.Now().Add(time.Minute) // a guard: polls come every second
	for {
		code, body := ts.call("GET", "/api/repos/acme/app/builds/1", adminToken, nil)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("no polled build within a minute: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := ts.build(1)
	if b.Commit != sha || b.Event != "push" {
		t.Errorf("polled build of %s (%s), want a push of %s", b.Commit, b.Event, sha)
	}
}
