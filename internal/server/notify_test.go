package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// fakeGitHub is a FAKE of GitHub's commit status API (GitHub cannot run
// here): it records the statuses posted to it.
type fakeGitHub struct {
	mu       sync.Mutex
	statuses []string // "sha context state"
	// described are the statuses with their descriptions:
	// "sha context state: description".
	described []string
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State       string `json:"state"`
		Context     string `json:"context"`
		Description string `json:"description"`
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/repos/acme/app/statuses/") ||
		r.Header.Get("Authorization") == "" || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.statuses = append(f.statuses, strings.TrimPrefix(r.URL.Path, "/repos/acme/app/statuses/")+" "+body.Context+" "+body.State)
	f.described = append(f.described, f.statuses[len(f.statuses)-1]+": "+body.Description)
	f.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeGitHub) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, got := range f.statuses {
		if got == s {
			return true
		}
	}
	return false
}

// wait waits up to d for status s ("sha context state").
func (f *fakeGitHub) wait(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f.has(s) {
		if time.Now().After(deadline) {
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Fatalf("no status %q within %s; got %q", s, d, f.statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneStep is a config with one pipeline, build, of one step, compile.
const oneStep = `kind: pipeline
name: build
steps:
- name: compile
  image: busybox
  commands: [true]
`

// TestCommitStatusWithFakeGitHub checks that the server reports a GitHub
// repo's builds as commit statuses, against a fake of GitHub's API.
func TestCommitStatusWithFakeGitHub(t *testing.T) {
	t.Parallel()
	fake := &fakeGitHub{}
	gh := httptest.NewServer(fake)
	t.Cleanup(gh.Close)
	ts := startServer(t, "sqlite", func(c *server.Config) { c.GitHubAPI = gh.URL; c.GitHubToken = "gh-token" })
	g := newGitRepo(t, map[string]string{".drone.yml": oneStep})
	sha := g.Git("rev-parse", "HEAD")
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken, map[string]any{"git_url": g.URL(), "forge": "github"}, nil)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	wait := func(s string) { fake.wait(t, s, time.Minute) } // a guard against hanging, not a requirement
	wait(sha + " ferry pending")
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	if err := c.Complete(context.Background(), job.ID, &rpc.CompleteRequest{LeaseToken: job.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	wait(sha + " ferry/build success")
	wait(sha + " ferry success")
}
