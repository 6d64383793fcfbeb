package forge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeForgeAPI is a FAKE of the forges' commit status endpoints: GitHub,
// Gitea and GitLab cannot be reached from the test machines. It follows
// their published API documents (GitHub "Create a commit status", Gitea
// "repoCreateStatus", GitLab "Set the pipeline status of a commit"), records
// every request, and answers with the scripted status codes, then 201.
type fakeForgeAPI struct {
	*httptest.Server

	mu       sync.Mutex
	requests []recordedRequest
	script   []fakeResponse
}

type recordedRequest struct {
	Method  string
	URI     string // as sent on the wire, with its escaping
	Header  http.Header
	Body    map[string]string
	RawBody string
}

type fakeResponse struct {
	code   int
	body   string
	header map[string]string
}

func newFakeForgeAPI(t *testing.T, script ...fakeResponse) *fakeForgeAPI {
	f := &fakeForgeAPI{script: script}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := recordedRequest{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), RawBody: string(raw)}
		_ = json.Unmarshal(raw, &rec.Body)
		f.mu.Lock()
		f.requests = append(f.requests, rec)
		resp := fakeResponse{code: http.StatusCreated, body: `{"id": 1}`}
		if len(f.script) > 0 {
			resp, f.script = f.script[0], f.script[1:]
		}
		f.mu.Unlock()
		for k, v := range resp.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.code)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeForgeAPI) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

const statusSHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

func newTestStatusClient(t *testing.T, kind Kind, base string, opts ...StatusOption) StatusClient {
	t.Helper()
	c, err := NewStatusClient(kind, base, "tok-123", append([]StatusOption{WithRetry(3, time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSetStatusAgainstFakeForgeAPI(t *testing.T) {
	status := Status{State: StateRunning, Context: StatusContext("build", EventPush), TargetURL: "https://ferry.example.com/octo/hello/42", Description: "Build #42 is running"}
	cases := []struct {
		kind       Kind
		basePath   string // under the fake's URL: GitHub Enterprise, Gitea or GitLab at a sub-path
		slug       string
		wantURI    string
		wantHeader map[string]string
		wantBody   map[string]string
	}{
		{
			kind: GitHub, basePath: "/api/v3", slug: "octo-org/hello-ferry",
			wantURI:    "/api/v3/repos/octo-org/hello-ferry/statuses/" + statusSHA,
			wantHeader: map[string]string{"Authorization": "Bearer tok-123", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"},
			wantBody:   map[string]string{"state": "pending", "context": "ferry/build/push", "target_url": status.TargetURL, "description": status.Description},
		},
		{
			kind: Gitea, basePath: "/git", slug: "infra/deployer",
			wantURI:    "/git/api/v1/repos/infra/deployer/statuses/" + statusSHA,
			wantHeader: map[string]string{"Authorization": "token tok-123", "Content-Type": "application/json"},
			wantBody:   map[string]string{"state": "pending", "context": "ferry/build/push", "target_url": status.TargetURL, "description": status.Description},
		},
		{
			kind: GitLab, basePath: "", slug: "acme/payments/billing-api",
			wantURI:    "/api/v4/projects/acme%2Fpayments%2Fbilling-api/statuses/" + statusSHA,
			wantHeader: map[string]string{"PRIVATE-TOKEN": "tok-123", "Content-Type": "application/json"},
			wantBody:   map[string]string{"state": "running", "name": "ferry/build/push", "target_url": status.TargetURL, "description": status.Description},
		},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			fake := newFakeForgeAPI(t)
			client := newTestStatusClient(t, c.kind, fake.URL+c.basePath+"/")
			if err := client.SetStatus(context.Background(), c.slug, statusSHA, status); err != nil {
				t.Fatalf("SetStatus: %v", err)
			}
			reqs := fake.recorded()
			if len(reqs) != 1 {
				t.Fatalf("fake forge API got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.URI != c.wantURI {
				t.Errorf("request = %s %s, want POST %s", r.Method, r.URI, c.wantURI)
			}
			for k, v := range c.wantHeader {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if len(r.Body) != len(c.wantBody) {
				t.Errorf("body = %s, want exactly the fields %v", r.RawBody, c.wantBody)
			}
			for k, v := range c.wantBody {
				if r.Body[k] != v {
					t.Errorf("body field %s = %q, want %q (body %s)", k, r.Body[k], v, r.RawBody)
				}
			}
		})
	}
}

func TestStatusContext(t *testing.T) {
	for _, c := range []struct{ pipeline, event, want string }{
		{"", EventPush, "ferry/push"},
		{"", EventPullRequest, "ferry/pr"},
		{"", EventTag, "ferry/tag"},
		{"", "cron", "ferry"},
		{"", "", "ferry"},
		{"test", EventPush, "ferry/test/push"},
		{"test", EventPullRequest, "ferry/test/pr"},
		{"test", EventTag, "ferry/test/tag"},
		{"test", "custom", "ferry/test"},
	} {
		if got := StatusContext(c.pipeline, c.event); got != c.want {
			t.Errorf("StatusContext(%q, %q) = %q, want %q", c.pipeline, c.event, got, c.want)
		}
	}
}

// TestStatusContextsPerEventAgainstFakeForgeAPI posts the statuses of a
// push, a pull request and a tag build of one commit, and checks that each
// went under its own context on every forge, so none replaces another.
func TestStatusContextsPerEventAgainstFakeForgeAPI(t *testing.T) {
	for _, kind := range []Kind{GitHub, Gitea, GitLab} {
		t.Run(string(kind), func(t *testing.T) {
			fake := newFakeForgeAPI(t)
			client := newTestStatusClient(t, kind, fake.URL)
			for _, ev := range []string{EventPush, EventPullRequest, EventTag} {
				for _, pipeline := range []string{"", "test"} {
					s := Status{State: StateSuccess, Context: StatusContext(pipeline, ev)}
					if err := client.SetStatus(context.Background(), "a/b", statusSHA, s); err != nil {
						t.Fatalf("SetStatus %s: %v", s.Context, err)
					}
				}
			}
			field := "context"
			if kind == GitLab {
				field = "name"
			}
			var got []string
			for _, r := range fake.recorded() {
				got = append(got, r.Body[field])
			}
			want := "ferry/push ferry/test/push ferry/pr ferry/test/pr ferry/tag ferry/test/tag"
			if strings.Join(got, " ") != want {
				t.Errorf("contexts %q, want %q", strings.Join(got, " "), want)
			}
		})
	}
}

func TestSetStatusStateMappingAgainstFakeForgeAPI(t *testing.T) {
	want := map[Kind]map[State]string{
		GitHub: {StatePending: "pending", StateRunning: "pending", StateSuccess: "success", StateFailure: "failure", StateError: "error", StateCanceled: "error"},
		Gitea:  {StatePending: "pending", StateRunning: "pending", StateSuccess: "success", StateFailure: "failure", StateError: "error", StateCanceled: "error"},
		GitLab: {StatePending: "pending", StateRunning: "running", StateSuccess: "success", StateFailure: "failed", StateError: "failed", StateCanceled: "canceled"},
	}
	for kind, states := range want {
		fake := newFakeForgeAPI(t)
		client := newTestStatusClient(t, kind, fake.URL)
		for state, forgeState := range states {
			if err := client.SetStatus(context.Background(), "a/b", statusSHA, Status{State: state}); err != nil {
				t.Fatalf("%s %s: %v", kind, state, err)
			}
			reqs := fake.recorded()
			last := reqs[len(reqs)-1]
			if last.Body["state"] != forgeState {
				t.Errorf("%s: state %s sent as %q, want %q", kind, state, last.Body["state"], forgeState)
			}
			ctxField := "context"
			if kind == GitLab {
				ctxField = "name"
			}
			if last.Body[ctxField] != "ferry" {
				t.Errorf("%s: empty context sent as %q, want \"ferry\"", kind, last.Body[ctxField])
			}
		}
	}
}

func TestSetStatusRetriesAgainstFakeForgeAPI(t *testing.T) {
	ctx := context.Background()
	st := Status{State: StateSuccess, Context: "ferry"}

	t.Run("5xx is retried until it succeeds", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 502, body: "bad gateway"}, fakeResponse{code: 503, body: `{"message": "try later"}`})
		if err := newTestStatusClient(t, GitHub, fake.URL).SetStatus(ctx, "a/b", statusSHA, st); err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		reqs := fake.recorded()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3", len(reqs))
		}
		for _, r := range reqs[1:] {
			if r.RawBody != reqs[0].RawBody {
				t.Errorf("retry body %s differs from first %s", r.RawBody, reqs[0].RawBody)
			}
		}
	})
	t.Run("429 is retried", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 429, body: `{"message": "API rate limit exceeded"}`})
		if err := newTestStatusClient(t, Gitea, fake.URL).SetStatus(ctx, "a/b", statusSHA, st); err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		if n := len(fake.recorded()); n != 2 {
			t.Fatalf("%d requests, want 2", n)
		}
	})
	t.Run("5xx gives up after the attempts", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 500}, fakeResponse{code: 500}, fakeResponse{code: 500, body: `{"message": "boom"}`}, fakeResponse{code: 500})
		err := newTestStatusClient(t, GitLab, fake.URL).SetStatus(ctx, "a/b", statusSHA, st)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 500 || se.Message != "boom" {
			t.Fatalf("err = %v, want a *StatusError 500 boom", err)
		}
		if n := len(fake.recorded()); n != 3 {
			t.Fatalf("%d requests, want 3 (the configured attempts)", n)
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		for _, code := range []int{401, 403, 404, 422} {
			fake := newFakeForgeAPI(t, fakeResponse{code: code, body: `{"message": "Validation Failed", "errors": [{"field": "state"}]}`})
			err := newTestStatusClient(t, GitHub, fake.URL).SetStatus(ctx, "a/b", statusSHA, st)
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code || !strings.Contains(err.Error(), "Validation Failed") {
				t.Errorf("%d: err = %v, want a *StatusError naming the forge's message", code, err)
			}
			if n := len(fake.recorded()); n != 1 {
				t.Errorf("%d: %d requests, want 1", code, n)
			}
		}
	})
	t.Run("gitlab refusing a repeated state is success", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 400, body: `{"message": "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"}`})
		if err := newTestStatusClient(t, GitLab, fake.URL).SetStatus(ctx, "a/b", statusSHA, Status{State: StateRunning}); err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		if n := len(fake.recorded()); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
	})
	t.Run("other gitlab 400 is an error", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 400, body: `{"message": {"state": ["is invalid"]}}`})
		err := newTestStatusClient(t, GitLab, fake.URL).SetStatus(ctx, "a/b", statusSHA, st)
		if err == nil || !strings.Contains(err.Error(), "is invalid") {
			t.Fatalf("err = %v, want the forge's message", err)
		}
	})
	t.Run("cancelling stops the backoff", func(t *testing.T) {
		fake := newFakeForgeAPI(t, fakeResponse{code: 503}, fakeResponse{code: 503})
		client, err := NewStatusClient(GitHub, fake.URL, "tok", WithRetry(5, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = client.SetStatus(ctx, "a/b", statusSHA, st)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's error", err)
		}
		if d := time.Since(start); d > 2*time.Minute { // a guard: the backoff is an hour
			t.Fatalf("SetStatus returned after %v", d)
		}
	})
	t.Run("unreachable forge is retried", func(t *testing.T) {
		fake := newFakeForgeAPI(t)
		url := fake.URL
		fake.Close()
		var logs strings.Builder
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		err := newTestStatusClient(t, GitHub, url, WithStatusLogger(logger)).SetStatus(ctx, "a/b", statusSHA, st)
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v, want connection refused", err)
		}
		if n := strings.Count(logs.String(), "retrying"); n != 2 {
			t.Errorf("logged %d retries, want 2 (3 attempts):\n%s", n, logs.String())
		}
	})
}

func TestSetStatusRejectsBadInputAgainstFakeForgeAPI(t *testing.T) {
	fake := newFakeForgeAPI(t)
	gh := newTestStatusClient(t, GitHub, fake.URL)
	gl := newTestStatusClient(t, GitLab, fake.URL)
	for _, c := range []struct {
		client    StatusClient
		slug, sha string
		state     State
	}{
		{gh, "a/b", "HEAD", StateSuccess},
		{gh, "a/b", "--upload-pack", StateSuccess},
		{gh, "a", statusSHA, StateSuccess},
		{gh, "a/b/c", statusSHA, StateSuccess},
		{gh, "a/../b", statusSHA, StateSuccess},
		{gl, "a//b", statusSHA, StateSuccess},
		{gh, "a/b", statusSHA, "skipped"},
	} {
		if err := c.client.SetStatus(context.Background(), c.slug, c.sha, Status{State: c.state}); err == nil {
			t.Errorf("SetStatus(%q, %q, %q) succeeded", c.slug, c.sha, c.state)
		}
	}
	if n := len(fake.recorded()); n != 0 {
		t.Errorf("%d requests reached the fake forge API, want none", n)
	}
	long := strings.Repeat("é", 200)
	if err := gh.SetStatus(context.Background(), "a/b", statusSHA, Status{State: StateSuccess, Description: long}); err != nil {
		t.Fatal(err)
	}
	if d := []rune(fake.recorded()[0].Body["description"]); len(d) != 140 || d[139] != '…' {
		t.Errorf("description has %d characters, want 140 ending in …", len(d))
	}
}

func TestNewStatusClient(t *testing.T) {
	if _, err := NewStatusClient(Gitea, "", "tok"); err == nil {
		t.Error("gitea without a URL accepted")
	}
	if _, err := NewStatusClient(GitHub, "", ""); err == nil {
		t.Error("no token accepted")
	}
	if _, err := NewStatusClient("bitbucket", "https://example.com", "tok"); err == nil {
		t.Error("unknown forge accepted")
	}
	if _, err := NewStatusClient(GitLab, "gitlab.example.com", "tok"); err == nil {
		t.Error("URL without a scheme accepted")
	}
	c, err := NewStatusClient(GitHub, "", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.(*statusClient).base.String(); got != DefaultGitHubAPI {
		t.Errorf("default base = %s", got)
	}
	if err := NopStatusClient.SetStatus(context.Background(), "a/b", statusSHA, Status{}); err != nil {
		t.Error(err)
	}
}
