package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// webhookPipelines has two exec pipelines: "build" checks the checkout and
// prints the build's context; "notify" waits for it. The sleep makes the
// running state visible through the API.
const webhookPipelines = `kind: pipeline
type: exec
name: build
steps:
- name: greet
  commands:
  - echo "building $DRONE_REPO at $DRONE_COMMIT_SHA on $DRONE_BRANCH by $DRONE_COMMIT_AUTHOR"
  - sleep 1
- name: test
  commands:
  - cat README.md
---
kind: pipeline
type: exec
name: notify
depends_on: [build]
steps:
- name: report
  commands:
  - echo "build ${DRONE_BUILD_NUMBER} passed"
`

// TestWebhookPushBuild is acceptance test 1: a signed GitHub push webhook
// produces a build, which an agent in another process runs; its statuses
// and logs are visible through the API. A wrongly signed or unsigned
// webhook gets 401 and stores nothing.
func TestWebhookPushBuild(t *testing.T) {
	root := t.TempDir()
	gitBase := gittest.Serve(t, root, nil)
	repo := gittest.NewWithOrigin(t, root, "app", map[string]string{
		".drone.yml": webhookPipelines,
		"README.md":  "the widget factory\n",
	})
	before := repo.Git("rev-parse", "HEAD")
	sha := repo.Commit("Add gears", map[string]string{"README.md": "the widget factory, now with gears\n"})
	repo.Push("main")

	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug, secret = "acme/app", "webhook-secret-for-e2e"
	r := c.createRepo(map[string]any{"git_url": gitBase + "/app.git", "slug": slug, "forge": "github", "webhook_secret": secret})
	if r.WebhookURL != srv.URL+"/hook/"+slug {
		t.Fatalf("webhook_url = %q, want %q", r.WebhookURL, srv.URL+"/hook/"+slug)
	}
	startAgent(t, srv.URL, c.agentToken("agent-1"), agentOptions{Name: "agent-1"})

	hookURL := srv.URL + "/hook/" + slug
	payload := githubPush("acme/app", gitBase+"/app.git", "main", before, sha, "Add gears")

	// Refused: a signature made with another secret, and no signature.
	for name, key := range map[string]string{"wrong secret": "not-the-secret", "unsigned": ""} {
		status, body := sendHook(t, c.hc, hookURL, "push", payload, key)
		if status != http.StatusUnauthorized {
			t.Fatalf("%s webhook: got %d %s, want 401", name, status, body)
		}
	}
	// A genuine event ferry does not build.
	if status, body := sendHook(t, c.hc, hookURL, "issues", []byte(`{"action":"opened"}`), secret); status != http.StatusNoContent {
		t.Fatalf("issues webhook: got %d %s, want 204", status, body)
	}
	if bs := c.builds(slug, ""); len(bs) != 0 {
		t.Fatalf("after refused webhooks the repo has %d builds, want none: %+v", len(bs), bs[0])
	}
	var got repoJSON
	c.do("GET", "/api/repos/"+slug, nil, http.StatusOK, &got)
	if got.BuildCounter != 0 {
		t.Fatalf("after refused webhooks build_counter = %d, want 0", got.BuildCounter)
	}

	// Accepted.
	status, body := sendHook(t, c.hc, hookURL, "push", payload, secret)
	if status != http.StatusOK || strings.TrimSpace(body) != `{"build":1}` {
		t.Fatalf("signed push webhook: got %d %s, want 200 {\"build\":1}", status, body)
	}

	// Follow the build through the API and record what it showed.
	seenBuild := map[string]bool{}
	// Every (status, waiting reason) of notify: a later poll must not hide an
	// earlier one, since notify is still blocked, "waiting to be scheduled",
	// for a moment after build has finished.
	seenNotify := map[string]bool{}
	seenGreet := map[string]bool{}
	b := c.waitBuild(slug, 1, 30*time.Second, func(b *buildJSON) {
		seenBuild[b.Status] = true
		if len(b.Pipelines) == 2 {
			n := b.pipeline(t, "notify")
			if n.Job != nil {
				seenNotify[n.Status+": "+n.Job.WaitingReason] = true
			}
			seenGreet[b.pipeline(t, "build").step(t, "greet").Status] = true
		}
	})
	if b.Status != "success" {
		t.Fatalf("build finished %s, want success: %s", b.Status, describe(b))
	}
	if !seenBuild["running"] || !seenGreet["running"] {
		t.Errorf("the API never showed the build and its step running: build states %v, step states %v", keys(seenBuild), keys(seenGreet))
	}
	if !seenNotify["blocked: waiting for pipeline build"] {
		t.Errorf("the API did not show pipeline notify blocked on build: states and reasons %v", keys(seenNotify))
	}
	if b.Event != "push" || b.Ref != "refs/heads/main" || b.Branch != "main" || b.Commit != sha ||
		b.Message != "Add gears" || b.Sender != "ada" || b.Author != "ada" {
		t.Errorf("build = event %q ref %q branch %q commit %q message %q sender %q author %q; want push, refs/heads/main, main, %s, Add gears, ada, ada",
			b.Event, b.Ref, b.Branch, b.Commit, b.Message, b.Sender, b.Author, sha)
	}
	for _, p := range b.Pipelines {
		if p.Status != "success" || p.Agent != "agent-1" || p.Job == nil || p.Job.Attempts != 1 {
			t.Errorf("pipeline %s: status %s agent %q job %+v; want success on agent-1 in one attempt", p.Name, p.Status, p.Agent, p.Job)
		}
		for _, s := range p.Steps {
			if s.Status != "success" || s.Started.IsZero() || s.Finished.Before(s.Started) {
				t.Errorf("step %s/%s: %+v; want success with started <= finished", p.Name, s.Name, s)
			}
		}
	}

	// The logs.
	build := b.pipeline(t, "build")
	wantGreet := []string{
		`+ echo "building $DRONE_REPO at $DRONE_COMMIT_SHA on $DRONE_BRANCH by $DRONE_COMMIT_AUTHOR"`,
		fmt.Sprintf("building acme/app at %s on main by ada", sha),
		"+ sleep 1",
	}
	if got := lines(c.stepLog(slug, 1, build.Number, build.step(t, "greet").Number)); !slices.Equal(got, wantGreet) {
		t.Errorf("log of greet:\n%q\nwant\n%q", got, wantGreet)
	}
	// The checkout is of the pushed commit, not of the one before.
	wantTest := []string{"+ cat README.md", "the widget factory, now with gears"}
	if got := lines(c.stepLog(slug, 1, build.Number, build.step(t, "test").Number)); !slices.Equal(got, wantTest) {
		t.Errorf("log of test:\n%q\nwant\n%q", got, wantTest)
	}
	notify := b.pipeline(t, "notify")
	wantReport := []string{`+ echo "build 1 passed"`, "build 1 passed"}
	if got := lines(c.stepLog(slug, 1, notify.Number, notify.step(t, "report").Number)); !slices.Equal(got, wantReport) {
		t.Errorf("log of report:\n%q\nwant\n%q", got, wantReport)
	}
	if got := c.text(fmt.Sprintf("/api/repos/%s/builds/1/pipelines/%d/steps/%d/logs?tail=1", slug, build.Number, build.step(t, "greet").Number)); got != "+ sleep 1\n" {
		t.Errorf("tail=1 of greet = %q, want %q", got, "+ sleep 1\n")
	}

	// The live log stream of the finished step replays the log as
	// Server-Sent Events and ends with the step's status.
	stream := c.text(fmt.Sprintf("/api/repos/%s/builds/1/pipelines/%d/steps/%d/logs/stream", slug, build.Number, build.step(t, "greet").Number))
	var data []string
	for l := range strings.SplitSeq(stream, "\n") {
		if v, ok := strings.CutPrefix(l, "data: "); ok {
			data = append(data, v)
		}
	}
	wantStream := append(slices.Clone(wantGreet), `{"exit_code":0,"status":"success"}`)
	if !slices.Equal(data, wantStream) || !strings.Contains(stream, "event: end\n") {
		t.Errorf("log stream of greet:\n%s\nwant the data %q and an end event", stream, wantStream)
	}

	// Still exactly one build.
	if bs := c.builds(slug, ""); len(bs) != 1 {
		t.Errorf("the repo has %d builds, want 1", len(bs))
	}
}

// keys returns the keys of a set, sorted.
func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
