package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ferryci/ferry/internal/api"
)

// TestQueue: the queue lists the job an agent runs, with the agent, and
// the job that waits, with why; only administrators may read it.
func TestQueue(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
name: build
steps:
- name: make
  image: busybox
  commands: [make]
---
kind: pipeline
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
	if j := mustLease(t, c, "cpu-1", dockerAgent); j.Pipeline != "build" {
		t.Fatalf("leased %q, want build", j.Pipeline)
	}
	var q []*api.QueueEntry
	if err := json.Unmarshal(ts.must(http.StatusOK, "GET", "/api/queue", adminToken, nil, nil), &q); err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 {
		t.Fatalf("queue has %d entries, want 2: %+v", len(q), q)
	}
	byPipeline := map[string]*api.QueueEntry{}
	for _, e := range q {
		byPipeline[e.Pipeline] = e
	}
	run, wait := byPipeline["build"], byPipeline["gpu"]
	if run == nil || run.Agent != "cpu-1" || run.Job.Status != "running" || run.Repo != "acme/app" || run.Build != 1 {
		t.Errorf("running entry = %+v", run)
	}
	const reason = "no agent with labels backend=docker,gpu=true is connected"
	if wait == nil || wait.Agent != "" || wait.Job.Status != "pending" || wait.Job.WaitingReason != reason {
		t.Errorf("waiting entry = %+v (job %+v), want reason %q", wait, wait.Job, reason)
	}
	ts.must(http.StatusForbidden, "GET", "/api/queue", ts.userToken("reader"), nil, nil)
}
