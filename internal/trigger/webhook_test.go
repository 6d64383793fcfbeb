package trigger

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

const (
	hookSecret = "s3cr3t-webhook-key"
	sha1       = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"
	sha0       = "0000000000000000000000000000000000000000"
)

// Webhook bodies written by hand in the shape each forge documents, with
// only the fields ferry reads plus a few it does not.
const (
	githubPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "` + sha1 + `",
  "deleted": false,
  "compare": "https://github.com/octo/hello/compare/6113728f27ae...7fd1a60b01f9",
  "head_commit": {
    "id": "` + sha1 + `",
    "message": "Fix the flux capacitor",
    "url": "https://github.com/octo/hello/commit/` + sha1 + `",
    "author": {"name": "Mona Lisa", "email": "mona@example.com", "username": "mona"},
    "added": ["docs/flux.md"], "removed": [], "modified": ["main.go"]
  },
  "commits": [{
    "id": "` + sha1 + `",
    "message": "Fix the flux capacitor",
    "author": {"name": "Mona Lisa", "email": "mona@example.com", "username": "mona"},
    "added": ["docs/flux.md"], "removed": [], "modified": ["main.go"]
  }],
  "repository": {
    "id": 1296269, "name": "hello", "full_name": "octo/hello",
    "owner": {"login": "octo", "id": 1},
    "private": false, "html_url": "https://github.com/octo/hello",
    "clone_url": "https://github.com/octo/hello.git", "ssh_url": "git@github.com:octo/hello.git",
    "default_branch": "main"
  },
  "sender": {"login": "mona", "id": 2, "avatar_url": "https://avatars.example.com/u/2"}
}`

	githubForkPR = `{
  "action": "opened",
  "number": 42,
  "pull_request": {
    "number": 42,
    "title": "Add a feature",
    "html_url": "https://github.com/octo/hello/pull/42",
    "user": {"login": "stranger", "id": 9},
    "head": {"ref": "feature", "sha": "` + sha1 + `",
      "repo": {"id": 999, "name": "hello", "full_name": "stranger/hello",
               "clone_url": "https://github.com/stranger/hello.git"}},
    "base": {"ref": "main", "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      "repo": {"id": 1296269, "name": "hello", "full_name": "octo/hello",
               "clone_url": "https://github.com/octo/hello.git"}}
  },
  "repository": {
    "id": 1296269, "name": "hello", "full_name": "octo/hello",
    "owner": {"login": "octo", "id": 1},
    "clone_url": "https://github.com/octo/hello.git", "default_branch": "main"
  },
  "sender": {"login": "stranger", "id": 9}
}`

	giteaPush = `{
  "ref": "refs/tags/v1.2.0",
  "before": "` + sha0 + `",
  "after": "` + sha1 + `",
  "compare_url": "",
  "commits": [],
  "head_commit": {"id": "` + sha1 + `", "message": "Release 1.2.0\n",
    "author": {"name": "Gitea User", "email": "gitea@example.com", "username": "gitea"}},
  "repository": {
    "id": 7, "name": "hello", "full_name": "octo/hello",
    "owner": {"id": 1, "login": "octo", "username": "octo"},
    "html_url": "https://gitea.example.com/octo/hello",
    "clone_url": "https://gitea.example.com/octo/hello.git", "default_branch": "main"
  },
  "pusher": {"id": 3, "login": "gitea", "username": "gitea"},
  "sender": {"id": 3, "login": "gitea", "username": "gitea"}
}`

	gitlabPush = `{
  "object_kind": "push",
  "event_name": "push",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "` + sha1 + `",
  "ref": "refs/heads/develop",
  "checkout_sha": "` + sha1 + `",
  "user_name": "Jane Doe", "user_username": "jdoe", "user_email": "jane@example.com",
  "project": {
    "id": 15, "name": "hello", "path_with_namespace": "octo/hello",
    "web_url": "https://gitlab.example.com/octo/hello",
    "git_http_url": "https://gitlab.example.com/octo/hello.git",
    "git_ssh_url": "git@gitlab.example.com:octo/hello.git",
    "default_branch": "main", "visibility_level": 20
  },
  "commits": [{"id": "` + sha1 + `", "message": "Develop things",
    "author": {"name": "Jane Doe", "email": "jane@example.com"},
    "added": [], "modified": ["README.md"], "removed": []}],
  "total_commits_count": 1
}`

	githubBranchDelete = `{
  "ref": "refs/heads/old", "before": "` + sha1 + `", "after": "` + sha0 + `", "deleted": true,
  "repository": {"id": 1296269, "name": "hello", "full_name": "octo/hello"},
  "sender": {"login": "mona"}
}`
)

// hookRequest builds a webhook request signed as forge kind signs it, with
// the given secret; an empty secret sends no signature.
func hookRequest(t *testing.T, target string, kind forge.Kind, event, body, secret string) *http.Request {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch kind {
	case forge.GitHub:
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		if secret != "" {
			req.Header.Set("X-Hub-Signature-256", "sha256="+forge.Sign([]byte(body), secret))
		}
	case forge.Gitea:
		req.Header.Set("X-Gitea-Event", event)
		if secret != "" {
			req.Header.Set("X-Gitea-Signature", forge.Sign([]byte(body), secret))
		}
	case forge.GitLab:
		req.Header.Set("X-Gitlab-Event", event)
		if secret != "" {
			req.Header.Set("X-Gitlab-Token", secret)
		}
	}
	return req
}

type hookResult struct {
	code  int
	body  string
	build int64
}

func serveHook(t *testing.T, h http.Handler, req *http.Request) hookResult {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := hookResult{code: rec.Code, body: rec.Body.String()}
	if rec.Code == http.StatusOK {
		var out struct {
			Build int64 `json:"build"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("decoding 200 answer %q: %v", rec.Body.String(), err)
		}
		res.build = out.Build
	}
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNoContent && rec.Code != http.StatusMethodNotAllowed && ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %q)", ct, rec.Body.String())
	}
	return res
}

func TestWebhookCreatesBuilds(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	b := newBuilder(st)
	h := WebhookHandler(st, b, testLogger(t))
	gh := createRepo(t, st, &store.Repo{Slug: "octo/hello", GitURL: "https://github.com/octo/hello.git",
		Forge: store.ForgeGitHub, WebhookSecret: hookSecret})
	gitea := createRepo(t, st, &store.Repo{Slug: "octo/hello-gitea", GitURL: "https://gitea.example.com/octo/hello.git",
		Forge: store.ForgeGitea, WebhookSecret: hookSecret})
	gl := createRepo(t, st, &store.Repo{Slug: "group/sub/hello", GitURL: "https://gitlab.example.com/octo/hello.git",
		Forge: store.ForgeGitLab, WebhookSecret: hookSecret})

	tests := []struct {
		name   string
		repo   *store.Repo
		target string
		kind   forge.Kind
		event  string
		body   string
		want   Event
	}{{
		name:   "github push",
		repo:   gh,
		target: "/hook/octo/hello",
		kind:   forge.GitHub, event: "push", body: githubPush,
		want: Event{
			Kind: "push", Ref: "refs/heads/main", Branch: "main", SourceBranch: "main", SHA: sha1,
			Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Message: "Fix the flux capacitor",
			Link:        "https://github.com/octo/hello/compare/6113728f27ae...7fd1a60b01f9",
			AuthorLogin: "mona", AuthorName: "Mona Lisa", AuthorEmail: "mona@example.com",
			AuthorAvatar: "https://avatars.example.com/u/2", Sender: "mona",
			ChangedPaths: []string{"docs/flux.md", "main.go"},
		},
	}, {
		name:   "github pull request from a fork",
		repo:   gh,
		target: "/hook?repo=octo/hello",
		kind:   forge.GitHub, event: "pull_request", body: githubForkPR,
		want: Event{
			Kind: "pull_request", Action: "opened", Ref: "refs/pull/42/head", Branch: "main",
			SourceBranch: "feature", SHA: sha1, Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Message: "Add a feature", Link: "https://github.com/octo/hello/pull/42", AuthorLogin: "stranger",
			PullRequest: 42, PullRequestTitle: "Add a feature", Fork: true, Sender: "stranger",
		},
	}, {
		name:   "gitea tag",
		repo:   gitea,
		target: "/hook/octo/hello-gitea",
		kind:   forge.Gitea, event: "push", body: giteaPush,
		want: Event{
			Kind: "tag", Ref: "refs/tags/v1.2.0", SHA: sha1, Before: sha0, Message: "Release 1.2.0",
			AuthorLogin: "gitea", AuthorName: "Gitea User", AuthorEmail: "gitea@example.com", Sender: "gitea",
		},
	}, {
		name:   "gitlab push to a repo in a subgroup",
		repo:   gl,
		target: "/hook/group/sub/hello",
		kind:   forge.GitLab, event: "Push Hook", body: gitlabPush,
		want: Event{
			Kind: "push", Ref: "refs/heads/develop", Branch: "develop", SourceBranch: "develop", SHA: sha1,
			Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Message: "Develop things",
			Link:        "https://gitlab.example.com/octo/hello/-/compare/6113728f27ae82c7b1a177c8d03f9e96e0adf246...7fd1a60b01f91b314f59955a4e4d4e80d8edf11d",
			AuthorLogin: "jdoe", AuthorName: "Jane Doe", AuthorEmail: "jane@example.com", Sender: "jdoe",
			ChangedPaths: []string{"README.md"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.Events())
			res := serveHook(t, h, hookRequest(t, tt.target, tt.kind, tt.event, tt.body, hookSecret))
			if res.code != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", res.code, res.body)
			}
			evs := b.Events()
			if len(evs) != before+1 {
				t.Fatalf("builder got %d new events, want 1", len(evs)-before)
			}
			got := evs[len(evs)-1]
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("event:\n got %+v\nwant %+v", *got, tt.want)
			}
			build, err := st.Builds.GetNumber(t.Context(), tt.repo.ID, res.build)
			if err != nil {
				t.Fatalf("answered build %d, which the store does not have: %v", res.build, err)
			}
			if build.Commit != sha1 || build.Event != tt.want.Kind || build.Fork != tt.want.Fork {
				t.Errorf("stored build = %+v, want commit %s event %s fork %v", build, sha1, tt.want.Kind, tt.want.Fork)
			}
		})
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	b := newBuilder(st)
	b.skip = func(ev *Event) bool { return ev.Branch == "develop" }
	b.fail = func(ev *Event) error {
		if ev.Branch == "broken" {
			return errors.New("reading config: boom")
		}
		return nil
	}
	h := WebhookHandler(st, b, testLogger(t))
	gh := createRepo(t, st, &store.Repo{Slug: "octo/hello", GitURL: "https://github.com/octo/hello.git",
		Forge: store.ForgeGitHub, WebhookSecret: hookSecret})
	gl := createRepo(t, st, &store.Repo{Slug: "octo/gl", GitURL: "https://gitlab.example.com/octo/gl.git",
		Forge: store.ForgeGitLab, WebhookSecret: hookSecret})
	nosecret := createRepo(t, st, &store.Repo{Slug: "octo/nosecret", GitURL: "https://github.com/octo/nosecret.git",
		Forge: store.ForgeGitHub})
	inactive := &store.Repo{Slug: "octo/off", GitURL: "https://github.com/octo/off.git", Forge: store.ForgeGitHub,
		WebhookSecret: hookSecret}
	createRepo(t, st, inactive)
	inactive.Active = false
	if err := st.Repos.Update(t.Context(), inactive); err != nil {
		t.Fatal(err)
	}
	brokenPush := strings.ReplaceAll(githubPush, "refs/heads/main", "refs/heads/broken")

	tests := []struct {
		name     string
		req      *http.Request
		code     int
		bodyHas  string
		builder  bool // whether the Builder is called
		repoID   int64
		stored   bool // whether a build is stored
		noBodyOK bool
	}{{
		name: "wrong github signature",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", githubPush, "not-the-secret"),
		code: http.StatusUnauthorized, bodyHas: "signature", repoID: gh.ID,
	}, {
		name: "missing github signature",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", githubPush, ""),
		code: http.StatusUnauthorized, bodyHas: "signature", repoID: gh.ID,
	}, {
		name: "body changed after signing",
		req: func() *http.Request {
			r := hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", githubPush, hookSecret)
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(githubPush, "main", "prod", 1)))
			return r
		}(),
		code: http.StatusUnauthorized, repoID: gh.ID,
	}, {
		name: "wrong gitlab token",
		req:  hookRequest(t, "/hook/octo/gl", forge.GitLab, "Push Hook", gitlabPush, "guess"),
		code: http.StatusUnauthorized, repoID: gl.ID,
	}, {
		name: "github-signed request to a gitlab repo",
		req:  hookRequest(t, "/hook/octo/gl", forge.GitHub, "push", githubPush, hookSecret),
		code: http.StatusUnauthorized, repoID: gl.ID,
	}, {
		name: "repo without a webhook secret accepts nothing",
		req:  hookRequest(t, "/hook/octo/nosecret", forge.GitHub, "push", githubPush, ""),
		code: http.StatusUnauthorized, repoID: nosecret.ID,
	}, {
		name: "ping is ignored",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "ping", `{"zen":"Keep it logically awesome.","repository":{"full_name":"octo/hello"}}`, hookSecret),
		code: http.StatusNoContent, repoID: gh.ID, noBodyOK: true,
	}, {
		name: "branch deletion is ignored",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", githubBranchDelete, hookSecret),
		code: http.StatusNoContent, repoID: gh.ID, noBodyOK: true,
	}, {
		name: "malformed JSON",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", `{"ref": "refs/heads/main", "after": `, hookSecret),
		code: http.StatusBadRequest, bodyHas: "invalid JSON", repoID: gh.ID,
	}, {
		name: "payload with a wrong field type",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", `{"ref": 12, "repository": {"full_name": "octo/hello"}}`, hookSecret),
		code: http.StatusBadRequest, bodyHas: "ref", repoID: gh.ID,
	}, {
		name: "body over 25 MiB",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", `{"pad":"`+strings.Repeat("x", forge.MaxPayloadSize)+`"}`, hookSecret),
		code: http.StatusRequestEntityTooLarge, bodyHas: "too large", repoID: gh.ID,
	}, {
		name: "unknown repo",
		req:  hookRequest(t, "/hook/octo/nope", forge.GitHub, "push", githubPush, hookSecret),
		code: http.StatusNotFound, bodyHas: "octo/nope",
	}, {
		name: "inactive repo",
		req:  hookRequest(t, "/hook/octo/off", forge.GitHub, "push", githubPush, hookSecret),
		code: http.StatusNotFound, bodyHas: "not active", repoID: inactive.ID,
	}, {
		name: "no repo named",
		req:  hookRequest(t, "/hook/", forge.GitHub, "push", githubPush, hookSecret),
		code: http.StatusBadRequest, bodyHas: "no repository",
	}, {
		name: "no pipeline matched",
		req:  hookRequest(t, "/hook/octo/gl", forge.GitLab, "Push Hook", gitlabPush, hookSecret),
		code: http.StatusNoContent, builder: true, repoID: gl.ID, noBodyOK: true,
	}, {
		name: "builder fails",
		req:  hookRequest(t, "/hook/octo/hello", forge.GitHub, "push", brokenPush, hookSecret),
		code: http.StatusInternalServerError, bodyHas: "boom", builder: true, repoID: gh.ID,
	}, {
		name: "GET is not allowed",
		req:  httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/hook/octo/hello", nil),
		code: http.StatusMethodNotAllowed, repoID: gh.ID, noBodyOK: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.Events())
			res := serveHook(t, h, tt.req)
			if res.code != tt.code {
				t.Fatalf("status %d (%s), want %d", res.code, res.body, tt.code)
			}
			if tt.bodyHas != "" {
				var out struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal([]byte(res.body), &out); err != nil || !strings.Contains(out.Error, tt.bodyHas) {
					t.Errorf("body %q: want a JSON error containing %q", res.body, tt.bodyHas)
				}
			}
			if tt.noBodyOK && tt.code == http.StatusNoContent && res.body != "" {
				t.Errorf("204 with body %q", res.body)
			}
			if called := len(b.Events()) > before; called != tt.builder {
				t.Errorf("builder called = %v, want %v", called, tt.builder)
			}
			if tt.repoID != 0 {
				if bs := listBuilds(t, st, tt.repoID); len(bs) != 0 {
					t.Errorf("stored %d builds, want none: %+v", len(bs), bs[0])
				}
			}
		})
	}
}

// TestWebhookRepoWithoutForge checks that a repo whose forge is "none"
// accepts a webhook from any forge, detected from its headers, when it is
// signed with the repo's secret, and refuses one that names no forge.
func TestWebhookRepoWithoutForge(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	b := newBuilder(st)
	h := WebhookHandler(st, b, testLogger(t))
	repo := createRepo(t, st, &store.Repo{Slug: "plain/repo", GitURL: "https://git.example.com/plain/repo.git",
		WebhookSecret: hookSecret})

	res := serveHook(t, h, hookRequest(t, "/hook/plain/repo", forge.Gitea, "push", giteaPush, hookSecret))
	if res.code != http.StatusOK || res.build != 1 {
		t.Fatalf("gitea-style hook: status %d (%s), want 200 and build 1", res.code, res.body)
	}
	res = serveHook(t, h, hookRequest(t, "/hook/plain/repo", forge.GitLab, "Push Hook", gitlabPush, "wrong"))
	if res.code != http.StatusUnauthorized {
		t.Fatalf("gitlab-style hook with a wrong token: status %d (%s), want 401", res.code, res.body)
	}
	res = serveHook(t, h, hookRequest(t, "/hook/plain/repo", "", "", githubPush, ""))
	if res.code != http.StatusUnauthorized {
		t.Fatalf("hook without forge headers: status %d (%s), want 401", res.code, res.body)
	}
	if bs := listBuilds(t, st, repo.ID); len(bs) != 1 {
		t.Errorf("stored %d builds, want 1", len(bs))
	}
}

// TestWebhookOverHTTP sends a signed push through a real HTTP server and
// mux, mounted as the server mounts it.
func TestWebhookOverHTTP(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	b := newBuilder(st)
	mux := http.NewServeMux()
	h := WebhookHandler(st, b, testLogger(t))
	mux.Handle("/hook", h)
	mux.Handle("/hook/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	createRepo(t, st, &store.Repo{Slug: "octo/hello", GitURL: "https://github.com/octo/hello.git",
		Forge: store.ForgeGitHub, WebhookSecret: hookSecret})

	for i := 1; i <= 2; i++ {
		req := hookRequest(t, srv.URL+"/hook/octo/hello", forge.GitHub, "push", githubPush, hookSecret)
		req.RequestURI = ""
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"build":`+string(rune('0'+i))+`}` {
			t.Fatalf("push %d: %d %s, want 200 {\"build\":%d}", i, resp.StatusCode, body, i)
		}
	}
}

// TestWebhookInFlightCap checks the bound on unauthenticated bodies read
// at once: with every slot held by a delivery whose body is still coming,
// the next one waits for a slot and gets 503 with Retry-After when none
// frees in time; once the slow delivery ends, deliveries are served again.
func TestWebhookInFlightCap(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	createRepo(t, st, &store.Repo{Slug: "octo/hello", GitURL: "https://github.com/octo/hello.git",
		Forge: store.ForgeGitHub, WebhookSecret: hookSecret})
	wh := newWebhook(st, newBuilder(st), testLogger(t), 1, 50*time.Millisecond)
	srv := httptest.NewServer(wh.handler())
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()

	// A delivery that holds the only slot: a signed-looking request whose
	// body is written slowly.
	pr, pw := io.Pipe()
	slow := hookRequest(t, srv.URL+"/hook/octo/hello", forge.GitHub, "push", githubPush, "wrong secret")
	slow.RequestURI = ""
	slow.Body, slow.ContentLength = pr, int64(len(githubPush))
	slowDone := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Do(slow)
		if err != nil {
			slowDone <- -1
			return
		}
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	if _, err := io.WriteString(pw, githubPush[:10]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(wh.inflight) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // only guards against a hang
			t.Fatal("the slow delivery never took the slot")
		}
	}

	// send delivers a correctly signed push and returns the status and the
	// Retry-After header.
	send := func() (int, string) {
		req := hookRequest(t, srv.URL+"/hook/octo/hello", forge.GitHub, "push", githubPush, hookSecret)
		req.RequestURI = ""
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, retry := send(); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("a delivery beyond the cap: %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	if _, err := io.WriteString(pw, githubPush[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-slowDone; code != http.StatusUnauthorized {
		t.Fatalf("the slow, wrongly signed delivery: %d, want 401", code)
	}
	if code, _ := send(); code != http.StatusOK {
		t.Fatalf("a delivery once the slot is free: %d, want 200", code)
	}
}
