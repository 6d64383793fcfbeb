package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// TestPollingBuildsNewCommit is acceptance test 2: a repo with no forge and
// a poll interval, and no webhook at all, is built when a new commit is
// pushed, within its interval.
func TestPollingBuildsNewCommit(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewWithOrigin(t, root, "lib", map[string]string{
		".drone.yml": "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: test\n  commands:\n  - git log -1 --format=%s\n",
	})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/lib"
	const interval = 2 * time.Second
	r := c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": interval.String()})
	if r.Forge != "none" {
		t.Fatalf("repo forge = %q, want none", r.Forge)
	}
	startAgent(t, srv.URL, c.agentToken("poller-agent"), agentOptions{Name: "poller-agent"})

	// The first poll records what is there as the baseline and builds
	// nothing; only a change after it builds.
	srv.waitOutput("first poll: recorded the branches and tags as the baseline", 10*time.Second)
	if bs := c.builds(slug, ""); len(bs) != 0 {
		t.Fatalf("the first poll built %d builds; it should only record the baseline", len(bs))
	}

	sha := repo.Commit("Add lib.go", map[string]string{"lib.go": "package lib\n"})
	repo.Push("main")
	pushed := time.Now()

	// The poller looks for due repos once a second, and a repo is due one
	// interval after its last poll began: on an idle machine a change is
	// fetched at most one interval plus that tick after the push. The
	// limit is a guard, not a requirement: the time is logged, and
	// what a timing requirement would prove is tested in internal/trigger
	// (TestNextPoll) without a clock.
	limit := 2 * time.Minute
	var b *buildJSON
	eventually(t, limit, 20*time.Millisecond, func() (bool, string) {
		bs := c.builds(slug, "")
		if len(bs) > 0 {
			b = bs[0]
			return true, ""
		}
		return false, "no build yet for the pushed commit " + sha
	})
	took := time.Since(pushed)
	t.Logf("the poll built the pushed commit %s after the push", took.Round(time.Millisecond))
	if b.Commit != sha || b.Event != "push" || b.Branch != "main" || b.Message != "Add lib.go" || b.Author != "Ada Lovelace" {
		t.Fatalf("build = commit %s event %s branch %s message %q author %q; want %s push main \"Add lib.go\" \"Ada Lovelace\"",
			b.Commit, b.Event, b.Branch, b.Message, b.Author, sha)
	}

	b = c.waitBuild(slug, b.Number, 20*time.Second, nil)
	if b.Status != "success" {
		t.Fatalf("build finished %s, want success: %s", b.Status, describe(b))
	}
	p := b.Pipelines[0]
	if got := c.stepLog(slug, b.Number, p.Number, p.Steps[0].Number); got != "+ git log -1 --format=%s\nAdd lib.go\n" {
		t.Errorf("step log = %q; want the checkout of the new commit", got)
	}

	// Later polls find nothing new: the commit is built once.
	time.Sleep(interval + time.Second)
	if bs := c.builds(slug, ""); len(bs) != 1 {
		t.Errorf("after more polls the repo has %d builds, want 1", len(bs))
	}
	var rj repoJSON
	c.do("GET", "/api/repos/"+slug, nil, http.StatusOK, &rj)
	if rj.BuildCounter != 1 {
		t.Errorf("build_counter = %d, want 1", rj.BuildCounter)
	}
}
