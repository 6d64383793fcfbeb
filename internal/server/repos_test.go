package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestPollIntervalChangeTakesEffectAtOnce polls a repo every hour, then
// shortens its interval to a second: a commit pushed after the first poll
// is built within the new interval, not after the hour is over.
func TestPollIntervalChangeTakesEffectAtOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	var r repoJSON
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
		map[string]any{"git_url": g.URL(), "forge": "none", "poll_interval": "1h"}, &r)
	repo, err := ts.Store().Repos.GetBySlug(context.Background(), "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	// The first poll is due at once and records the baseline.
	deadline := time.Now().Add(time.Minute)
	for {
		refs, err := ts.Store().Repos.PollRefs(context.Background(), repo.ID)
		if err == nil && refs != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no first poll within a minute (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sha := g.Commit("second", map[string]string{"a.txt": "a\n"})
	ts.must(http.StatusOK, "PATCH", "/api/repos/acme/app", adminToken, map[string]any{"poll_interval": "1s"}, nil)

	deadline = time.Now().Add(time.Minute)
	for {
		code, _ := ts.call("GET", "/api/repos/acme/app/builds/1", adminToken, nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the commit %s was not polled within a minute of shortening the interval to 1s (build 1: HTTP %d)", sha, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b := ts.build(1); b.Commit != sha || b.Event != "push" {
		t.Fatalf("build 1 is %s of %s, want a push of %s", b.Event, b.Commit, sha)
	}
}
