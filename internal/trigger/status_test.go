package trigger

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// fakeForgeAPI is a FAKE of the commit status endpoints of GitHub's, Gitea's
// and GitLab's REST APIs, as their documentation describes them: none of
// the three forges can run here. It records every request and answers 201,
// or the codes queued in fail first.
type fakeForgeAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []fakeRequest
	fail     []int
}

type fakeRequest struct {
	Method, Path, RawPath string
	Header                http.Header
	Body                  map[string]string
}

func newFakeForgeAPI(t *testing.T) *fakeForgeAPI {
	f := &fakeForgeAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := fakeRequest{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Header: r.Header.Clone()}
		if err := json.Unmarshal(body, &req.Body); err != nil {
			t.Errorf("fake forge API: request body %q is not a JSON object of strings: %v", body, err)
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		code := http.StatusCreated
		if len(f.fail) > 0 {
			code, f.fail = f.fail[0], f.fail[1:]
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code >= 400 {
			_, _ = io.WriteString(w, `{"message":"fake refusal"}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":1}`)
	}))
	t.Cleanup(func() {
		f.srv.Close()
	})
	return f
}

// take returns the requests recorded since the last call.
func (f *fakeForgeAPI) take() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func (f *fakeForgeAPI) failNext(codes ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, codes...)
}

// statusKeys summarises requests as "context=state" (GitLab's name for
// context is "name").
func statusKeys(reqs []fakeRequest) []string {
	var out []string
	for _, r := range reqs {
		ctx := r.Body["context"]
		if ctx == "" {
			ctx = r.Body["name"]
		}
		out = append(out, ctx+"="+r.Body["state"])
	}
	return out
}

func notifier(t *testing.T, cfg StatusConfig) *StatusNotifier {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	cfg.Options = append(cfg.Options, forge.WithHTTPClient(client), forge.WithRetry(3, time.Millisecond))
	n, err := NewStatusNotifier(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("NewStatusNotifier: %v", err)
	}
	return n
}

func TestStatusNotifierAgainstFakeGitHubAPI(t *testing.T) {
	t.Parallel()
	api := newFakeForgeAPI(t)
	n := notifier(t, StatusConfig{URL: "https://ci.example.com/", GitHubAPI: api.srv.URL, GitHubToken: "ghp_token"})
	repo := &store.Repo{ID: 1, Slug: "octo/hello", Forge: store.ForgeGitHub}
	build := &store.Build{Number: 7, Commit: sha1, Event: store.EventPush, Status: store.StatusPending}
	pipelines := []*store.Pipeline{
		{Name: "test", Status: store.StatusPending},
		{Name: "deploy", Status: store.StatusBlocked, DependsOn: []string{"test"}},
	}
	ctx := t.Context()

	// The build starts: everything is pending.
	if err := n.Notify(ctx, repo, build, pipelines); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	reqs := api.take()
	if got, want := strings.Join(statusKeys(reqs), " "), "ferry/push=pending ferry/test/push=pending ferry/deploy/push=pending"; got != want {
		t.Fatalf("statuses %q, want %q", got, want)
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/repos/octo/hello/statuses/"+sha1 {
		t.Errorf("request %s %s, want POST /repos/octo/hello/statuses/%s", r.Method, r.Path, sha1)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer ghp_token" {
		t.Errorf("Authorization %q, want the token", got)
	}
	if got := r.Body["target_url"]; got != "https://ci.example.com/repos/octo/hello/builds/7" {
		t.Errorf("target_url %q", got)
	}
	if got := r.Body["description"]; got != "Build #7 is waiting for an agent" {
		t.Errorf("description %q", got)
	}

	// Nothing changed: nothing is posted again.
	if err := n.Notify(ctx, repo, build, pipelines); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if reqs := api.take(); len(reqs) != 0 {
		t.Errorf("posted %v again, want nothing", statusKeys(reqs))
	}

	// Running: GitHub has no running state, so it stays pending, but the
	// description changes.
	build.Status, pipelines[0].Status = store.StatusRunning, store.StatusRunning
	if err := n.Notify(ctx, repo, build, pipelines); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got, want := strings.Join(statusKeys(api.take()), " "), "ferry/push=pending ferry/test/push=pending"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}

	// The build fails: test failed, deploy was skipped.
	build.Status, pipelines[0].Status, pipelines[1].Status = store.StatusFailure, store.StatusFailure, store.StatusSkipped
	if err := n.Notify(ctx, repo, build, pipelines); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got, want := strings.Join(statusKeys(api.take()), " "), "ferry/push=failure ferry/test/push=failure ferry/deploy/push=error"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
}

func TestStatusNotifierAgainstFakeGiteaAndGitLabAPIs(t *testing.T) {
	t.Parallel()
	gitea := newFakeForgeAPI(t)
	gitlab := newFakeForgeAPI(t)
	n := notifier(t, StatusConfig{
		GiteaURL: gitea.srv.URL, GiteaToken: "gitea-token",
		GitLabURL: gitlab.srv.URL, GitLabToken: "glpat-token",
	})
	ctx := t.Context()

	build := &store.Build{Number: 3, Commit: sha1, Event: store.EventTag, Status: store.StatusError, Error: "agent lost"}
	pipelines := []*store.Pipeline{
		{Name: "a", Status: store.StatusSuccess},
		{Name: "b", Status: store.StatusError, Error: "agent lost"},
		{Name: "c", Status: store.StatusKilled},
	}
	if err := n.Notify(ctx, &store.Repo{ID: 1, Slug: "octo/hello", Forge: store.ForgeGitea}, build, pipelines); err != nil {
		t.Fatalf("Notify gitea: %v", err)
	}
	reqs := gitea.take()
	if got, want := strings.Join(statusKeys(reqs), " "), "ferry/tag=error ferry/a/tag=success ferry/b/tag=error ferry/c/tag=error"; got != want {
		t.Errorf("gitea statuses %q, want %q", got, want)
	}
	if r := reqs[0]; r.Path != "/api/v1/repos/octo/hello/statuses/"+sha1 || r.Header.Get("Authorization") != "token gitea-token" {
		t.Errorf("gitea request %s with Authorization %q", r.Path, r.Header.Get("Authorization"))
	}
	if got := reqs[0].Body["description"]; got != "Build #3 errored: agent lost" {
		t.Errorf("description %q", got)
	}
	if got := reqs[0].Body["target_url"]; got != "" {
		t.Errorf("target_url %q without a server URL, want none", got)
	}

	build.Status = store.StatusRunning
	pipelines = []*store.Pipeline{{Name: "a", Status: store.StatusRunning}, {Name: "c", Status: store.StatusKilled}}
	glRepo := &store.Repo{ID: 2, Slug: "group/sub/hello", Forge: store.ForgeGitLab}
	if err := n.Notify(ctx, glRepo, build, pipelines); err != nil {
		t.Fatalf("Notify gitlab: %v", err)
	}
	reqs = gitlab.take()
	if got, want := strings.Join(statusKeys(reqs), " "), "ferry/tag=running ferry/a/tag=running ferry/c/tag=canceled"; got != want {
		t.Errorf("gitlab statuses %q, want %q", got, want)
	}
	if r := reqs[0]; r.RawPath != "/api/v4/projects/group%2Fsub%2Fhello/statuses/"+sha1 || r.Header.Get("PRIVATE-TOKEN") != "glpat-token" {
		t.Errorf("gitlab request %s with PRIVATE-TOKEN %q", r.RawPath, r.Header.Get("PRIVATE-TOKEN"))
	}
	if gitea.take() != nil {
		t.Error("a GitLab repo's statuses went to Gitea")
	}
}

// TestStatusNotifierFailuresAgainstFakeGitHubAPI checks that a refused
// status is reported, does not stop the others, and is posted again on the
// next Notify; and that a server error is retried.
func TestStatusNotifierFailuresAgainstFakeGitHubAPI(t *testing.T) {
	t.Parallel()
	api := newFakeForgeAPI(t)
	n := notifier(t, StatusConfig{GitHubAPI: api.srv.URL, GitHubToken: "t"})
	repo := &store.Repo{ID: 1, Slug: "octo/hello", Forge: store.ForgeGitHub}
	build := &store.Build{Number: 1, Commit: sha1, Status: store.StatusSuccess}
	pipelines := []*store.Pipeline{{Name: "test", Status: store.StatusSuccess}}

	api.failNext(http.StatusUnprocessableEntity)
	err := n.Notify(t.Context(), repo, build, pipelines)
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "ferry") {
		t.Fatalf("Notify = %v, want the 422 of the build status", err)
	}
	if got := statusKeys(api.take()); strings.Join(got, " ") != "ferry=success ferry/test=success" {
		t.Errorf("statuses %v: a refusal must not stop the next status", got)
	}
	api.failNext(http.StatusBadGateway, http.StatusServiceUnavailable)
	if err := n.Notify(t.Context(), repo, build, pipelines); err != nil {
		t.Fatalf("Notify after two 5xx: %v, want the retry to succeed", err)
	}
	if got := statusKeys(api.take()); strings.Join(got, " ") != "ferry=success ferry=success ferry=success" {
		t.Errorf("statuses %v, want the refused build status posted again, after two retries", got)
	}
}

// TestStatusNotifierSeparatesEventsAgainstFakeGitHubAPI reports a push, a
// pull request and a tag build of the same commit, and checks that each
// posts under its own contexts: a finished push build is not replaced on
// the forge by the pull request build of the same commit.
func TestStatusNotifierSeparatesEventsAgainstFakeGitHubAPI(t *testing.T) {
	t.Parallel()
	api := newFakeForgeAPI(t)
	n := notifier(t, StatusConfig{GitHubAPI: api.srv.URL, GitHubToken: "t"})
	repo := &store.Repo{ID: 1, Slug: "octo/hello", Forge: store.ForgeGitHub}
	for i, c := range []struct {
		event, want string
	}{
		{store.EventPush, "ferry/push=success ferry/test/push=success"},
		{store.EventPullRequest, "ferry/pr=pending ferry/test/pr=pending"},
		{store.EventTag, "ferry/tag=pending ferry/test/tag=pending"},
		{store.EventCron, "ferry=pending ferry/test=pending"},
	} {
		status := store.StatusPending
		if c.event == store.EventPush {
			status = store.StatusSuccess
		}
		build := &store.Build{Number: int64(i + 1), Commit: sha1, Event: c.event, Status: status}
		if err := n.Notify(t.Context(), repo, build, []*store.Pipeline{{Name: "test", Status: status}}); err != nil {
			t.Fatalf("Notify %s: %v", c.event, err)
		}
		if got := strings.Join(statusKeys(api.take()), " "); got != c.want {
			t.Errorf("%s build posted %q, want %q", c.event, got, c.want)
		}
	}
}

func TestStatusNotifierSkipsUnconfiguredForges(t *testing.T) {
	t.Parallel()
	api := newFakeForgeAPI(t)
	n := notifier(t, StatusConfig{GitHubAPI: api.srv.URL, GitHubToken: "t"})
	build := &store.Build{Number: 1, Commit: sha1, Status: store.StatusSuccess}
	for _, f := range []store.Forge{store.ForgeNone, store.ForgeGitea, store.ForgeGitLab} {
		if n.Enabled(f) {
			t.Errorf("Enabled(%q) = true without a token", f)
		}
		if err := n.Notify(t.Context(), &store.Repo{Slug: "a/b", Forge: f}, build, nil); err != nil {
			t.Errorf("Notify for forge %q: %v", f, err)
		}
	}
	if reqs := api.take(); len(reqs) != 0 {
		t.Errorf("posted %d statuses for repos without a configured forge", len(reqs))
	}
	if !n.Enabled(store.ForgeGitHub) {
		t.Error("Enabled(github) = false with a token")
	}
	if _, err := NewStatusNotifier(StatusConfig{GiteaToken: "t"}, nil); err == nil {
		t.Error("NewStatusNotifier accepted a Gitea token without the Gitea URL")
	}
}
