package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// webhookReceiver is a real webhook receiver, as a user would write one
// from docs/server.md: it checks the signature and records the events.
type webhookReceiver struct {
	secret string
	mu     sync.Mutex
	events []notify.Event
	bad    []string
}

func (rcv *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var ev notify.Event
	switch {
	case !notify.VerifySignature(rcv.secret, body, r.Header.Get("X-Ferry-Signature-256")):
		rcv.bad = append(rcv.bad, "bad signature: "+string(body))
	case json.Unmarshal(body, &ev) != nil:
		rcv.bad = append(rcv.bad, "bad body: "+string(body))
	case r.Header.Get("X-Ferry-Event") != ev.Name():
		rcv.bad = append(rcv.bad, "X-Ferry-Event "+r.Header.Get("X-Ferry-Event")+" for "+ev.Name())
	default:
		rcv.events = append(rcv.events, ev)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Error(w, "rejected", http.StatusBadRequest)
}

func (rcv *webhookReceiver) names() []string {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var out []string
	for _, ev := range rcv.events {
		out = append(out, ev.Name()+"/"+ev.Status)
	}
	return out
}

// TestBuildNotifications runs a build through the agent protocol with a
// --notify webhook configured, and checks that the receiver gets
// build.started and build.finished, signed, in that order, describing the
// build.
func TestBuildNotifications(t *testing.T) {
	t.Parallel()
	rcv := &webhookReceiver{secret: "hook-secret"}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)
	ts := startServer(t, "sqlite", func(c *server.Config) {
		c.URL = "https://ci.example.com"
		c.Notify = []string{"webhook=" + hook.URL + "/ferry;secret=hook-secret;on=build.*"}
	})
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
name: build
steps:
- name: compile
  image: busybox
  commands: [false]
`})
	sha := g.Git("rev-parse", "HEAD")
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken, map[string]any{"git_url": g.URL()}, nil)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	if err := c.Complete(context.Background(), job.ID, &rpc.CompleteRequest{LeaseToken: job.LeaseToken, Status: "failure"}); err != nil {
		t.Fatal(err)
	}
	want := "[build.started/running build.finished/failure]"
	deadline := time.Now().Add(2 * time.Minute) // a guard against hanging
	for strings.Join(rcv.names(), " ") != strings.Trim(want, "[]") {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %v, want %s; rejected: %v", rcv.names(), want, rcv.bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Errorf("rejected deliveries: %v", rcv.bad)
	}
	fin := rcv.events[1]
	b := fin.Build
	if b == nil || b.Repo != "acme/app" || b.Number != 1 || b.Commit != sha || b.Event != "custom" ||
		fin.Link != "https://ci.example.com/repos/acme/app/builds/1" || b.Finished.IsZero() || fin.Kind != notify.KindBuild {
		t.Errorf("build.finished event %+v, build %+v (commit %s)", fin, b, sha)
	}
}

// TestNotifyFlagValidated: a bad --notify value is refused at start,
// naming the flag and the key.
func TestNotifyFlagValidated(t *testing.T) {
	t.Parallel()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Notify = []string{"webhook=https://h.example;on=build.done"}
	_, err := server.Open(context.Background(), cfg, nil)
	want := `invalid configuration: --notify "webhook https://h.example": on[0]: unknown build event "build.done"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("New = %v, want %s…", err, want)
	}
}
