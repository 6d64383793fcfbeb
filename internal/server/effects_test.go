package server_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/store"
)

// TestSideEffectsOfABuildItsServerLeft starts a server on a database that
// holds a build which finished without its side effects, as when a server
// is killed between finishing a build and reporting it: the new server's
// maintenance sweep claims them, posts the final commit status once, and
// marks them done; a build whose effects ran already is left alone.
func TestSideEffectsOfABuildItsServerLeft(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			fake := &fakeGitHub{}
			gh := httptest.NewServer(fake)
			t.Cleanup(gh.Close)
			const left, reported = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
			var st *store.Store
			var leftID int64
			startServerWith(t, driver, func(c *server.Config) { c.GitHubAPI, c.GitHubToken = gh.URL, "gh-token" },
				func(s *server.Server) {
					st = s.Store()
					ctx := context.Background()
					repo := &store.Repo{Slug: "acme/app", GitURL: "file:///nonexistent/acme/app", Forge: store.ForgeGitHub, Active: true}
					if err := st.Repos.Create(ctx, repo); err != nil {
						t.Fatal(err)
					}
					finished := time.Now().Add(-time.Minute)
					for _, sha := range []string{left, reported} {
						b := &store.Build{RepoID: repo.ID, Event: store.EventPush, Ref: "refs/heads/main", Branch: "main",
							Commit: sha, Status: store.StatusFailure, Error: "the server died", Started: finished, Finished: finished}
						if err := st.Builds.Create(ctx, b, nil); err != nil {
							t.Fatal(err)
						}
						if sha == left {
							leftID = b.ID
							continue
						}
						// This one's server ran its side effects before it died.
						if ok, err := st.BuildEffects.Claim(ctx, b.ID, "dead-server", finished, finished.Add(time.Second)); err != nil || !ok {
							t.Fatalf("claiming build %d: %v, %v", b.ID, ok, err)
						}
						if err := st.BuildEffects.Done(ctx, b.ID); err != nil {
							t.Fatal(err)
						}
					}
				})
			fake.wait(t, left+" ferry/push failure", time.Minute) // a guard against hanging, not a requirement
			// Marked done after the status was posted: wait for it, then
			// no sweep may find the build again.
			deadline := time.Now().Add(time.Minute)
			for {
				now := time.Now()
				pending, err := st.BuildEffects.Pending(context.Background(), now.Add(-time.Hour), now, now.Add(time.Hour), 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(pending) == 0 {
					break
				}
				if now.After(deadline) {
					t.Fatalf("build %d's side effects are still pending: %v", leftID, pending)
				}
				time.Sleep(20 * time.Millisecond)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			n := 0
			for _, s := range fake.statuses {
				switch s {
				case left + " ferry/push failure":
					n++
				case reported + " ferry/push failure":
					t.Errorf("the build whose side effects ran already was reported again: %q", fake.statuses)
				}
			}
			if n != 1 {
				t.Errorf("the left build was reported %d times, want once: %q", n, fake.statuses)
			}
		})
	}
}
