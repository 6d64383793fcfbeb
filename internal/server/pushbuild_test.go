package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPushBuildThroughAPI reports a push through POST .../builds with event
// push, on both store drivers: bad requests name their field; the commit
// is built once as a push, a second report answers that build with 200;
// and a later poll, which sees the branch at that commit, builds nothing
// of it (it builds only a branch pushed meanwhile).
func TestPushBuildThroughAPI(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, driver, nil)
			g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
			ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
				map[string]any{"git_url": g.URL(), "forge": "none", "poll_interval": "1h"}, nil)
			// The first poll is due at once and records the baseline;
			// an hour passes before the next.
			ts.waitLog("first poll: recorded the branches and tags")
			sha := g.Commit("second", map[string]string{"a.txt": "a\n"})

			for _, tc := range []struct {
				body  map[string]any
				field string
			}{
				{map[string]any{"event": "pull_request", "branch": "main", "sha": sha}, "event"},
				{map[string]any{"event": "push", "branch": "main"}, "sha"},
				{map[string]any{"event": "push", "branch": "main", "sha": "abc"}, "sha"},
				{map[string]any{"event": "push", "ref": "refs/tags/v1", "sha": sha}, "ref"},
				{map[string]any{"event": "push", "branch": "main", "sha": sha, "params": map[string]string{"A": "b"}}, "params"},
			} {
				code, body := ts.call("POST", "/api/repos/acme/app/builds", adminToken, tc.body)
				var e struct{ Error, Field string }
				_ = json.Unmarshal(body, &e)
				if code != http.StatusBadRequest || e.Field != tc.field {
					t.Errorf("%v: HTTP %d %s, want 400 naming field %q", tc.body, code, body, tc.field)
				}
			}
			bob := ts.userToken("bob")
			ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/bob", adminToken, map[string]string{"role": "write"}, nil)
			if code, body := ts.call("POST", "/api/repos/acme/app/builds", bob,
				map[string]any{"event": "push", "branch": "main", "sha": sha}); code != http.StatusForbidden {
				t.Errorf("a push reported by a writer: HTTP %d %s, want 403", code, body)
			}

			type pushed struct {
				Number                     int64
				Event, Ref, Branch, Commit string
			}
			push := map[string]any{"event": "push", "branch": "main", "sha": sha}
			var b pushed
			ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, push, &b)
			if b.Number != 1 || b.Event != "push" || b.Commit != sha || b.Ref != "refs/heads/main" {
				t.Fatalf("build %d is a %s of %s at %s, want build 1, a push of refs/heads/main at %s", b.Number, b.Event, b.Ref, b.Commit, sha)
			}
			var again pushed
			ts.must(http.StatusOK, "POST", "/api/repos/acme/app/builds", adminToken, push, &again)
			if again.Number != 1 {
				t.Fatalf("a second report of the push answered build %d, want build 1", again.Number)
			}

			// A branch pushed meanwhile tells when the next poll has
			// happened: it builds that branch, and main not again.
			g.Git("checkout", "-q", "-b", "other")
			other := g.Commit("other", map[string]string{"b.txt": "b\n"})
			ts.must(http.StatusOK, "PATCH", "/api/repos/acme/app", adminToken, map[string]any{"poll_interval": "1s"}, nil)
			var polled pushed
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
				code, body := ts.call("GET", "/api/repos/acme/app/builds/2", adminToken, nil)
				if code == http.StatusOK {
					if err := json.Unmarshal(body, &polled); err != nil {
						t.Fatal(err)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no poll built branch other within a minute of shortening the interval (build 2: HTTP %d)", code)
				}
			}
			if polled.Branch != "other" || polled.Commit != other {
				t.Fatalf("build 2 is of %s at %s, want branch other at %s", polled.Branch, polled.Commit, other)
			}
			code, body := ts.call("GET", "/api/repos/acme/app/builds?event=push", adminToken, nil)
			if n := strings.Count(string(body), `"number":`); code != http.StatusOK || n != 2 {
				t.Fatalf("%d push builds after the poll (HTTP %d), want 2: %s", n, code, body)
			}
		})
	}
}
