package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/server"
)

// TestAuthMatrix checks who may call what: no token, an agent token, a
// user token with each role, an administrator, the metrics token.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", func(c *server.Config) {
		c.MetricsToken = "metrics-secret-token"
		c.OpenRegistration = true
	})
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)

	var agentTok struct {
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/agent-tokens", adminToken, map[string]string{"name": "ci"}, &agentTok)
	agent := agentTok.Token
	reader := ts.userToken("reader")
	writer := ts.userToken("writer")
	stranger := ts.userToken("stranger")
	ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/reader", adminToken, map[string]string{"role": "read"}, nil)
	ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/writer", adminToken, map[string]string{"role": "write"}, nil)

	lease := `{"name":"a1","labels":{"backend":"none"},"capacity":1,"wait":0}`
	// Repos are added only when git can read them.
	strangerURL := apitest.GitRepoHTTP(t, "stranger", "app", map[string]string{"README": "x\n"})
	toolsURL := apitest.GitRepo(t, "ops", "tools", map[string]string{"README": "x\n"})
	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		want         int
	}{
		{"healthz needs no token", "GET", "/healthz", "", nil, 200},
		{"no token", "GET", "/api/repos", "", nil, 401},
		{"wrong token", "GET", "/api/repos", "ferry_nope", nil, 401},
		{"no token on an unknown path", "GET", "/api/nope", "", nil, 401},
		{"unknown path", "GET", "/api/nope", adminToken, nil, 404},
		{"wrong method", "DELETE", "/api/repos", adminToken, nil, 405},
		{"no token for the API document", "GET", "/api/openapi.json", "", nil, 401},
		{"no token for metrics", "GET", "/metrics", "", nil, 401},
		{"no token for leasing", "POST", "/api/agent/lease", "", lease, 401},
		{"agent token cannot list repos", "GET", "/api/repos", agent, nil, 403},
		{"agent token cannot read metrics", "GET", "/metrics", agent, nil, 403},
		{"agent token may lease", "POST", "/api/agent/lease", agent, lease, 204},
		{"user token cannot lease", "POST", "/api/agent/lease", reader, lease, 403},
		{"admin token cannot lease", "POST", "/api/agent/lease", adminToken, lease, 403},
		{"user token cannot extend", "POST", "/api/agent/jobs/1/extend", writer, `{"lease_token":"x"}`, 403},
		{"user lists repos", "GET", "/api/repos", reader, nil, 200},
		{"reader reads a build", "GET", "/api/repos/acme/app/builds/1", reader, nil, 200},
		{"reader cannot cancel", "POST", "/api/repos/acme/app/builds/1/cancel", reader, nil, 403},
		{"reader cannot start a build", "POST", "/api/repos/acme/app/builds", reader, `{}`, 403},
		{"reader cannot list secrets", "GET", "/api/repos/acme/app/secrets", reader, nil, 403},
		{"writer cannot change the repo", "PATCH", "/api/repos/acme/app", writer, `{"config_path":".x.yml"}`, 403},
		{"stranger does not see the repo", "GET", "/api/repos/acme/app", stranger, nil, 404},
		{"stranger does not see builds", "GET", "/api/repos/acme/app/builds/1", stranger, nil, 404},
		{"user cannot list users", "GET", "/api/users", reader, nil, 403},
		{"user cannot create agent tokens", "POST", "/api/agent-tokens", writer, `{"name":"x"}`, 403},
		{"user cannot list global secrets", "GET", "/api/secrets", writer, nil, 403},
		{"metrics token reads metrics", "GET", "/metrics", "metrics-secret-token", nil, 200},
		{"metrics token reads nothing else", "GET", "/api/repos", "metrics-secret-token", nil, 403},
		{"admin reads metrics", "GET", "/metrics", adminToken, nil, 200},
		{"user cannot read metrics", "GET", "/metrics", reader, nil, 403},
		{"writer cancels", "POST", "/api/repos/acme/app/builds/1/cancel", writer, nil, 200},
		{"user cannot add a file:// repo", "POST", "/api/repos", stranger, `{"git_url":"file:///etc/secret/repo.git"}`, 403},
		{"user adds an http repo", "POST", "/api/repos", stranger, `{"git_url":"` + strangerURL + `"}`, 201},
		{"repo admin cannot point the repo at file://", "PATCH", "/api/repos/stranger/app", stranger, `{"git_url":"FILE:///x/y"}`, 403},
		{"admin adds a file:// repo", "POST", "/api/repos", adminToken, `{"git_url":"` + toolsURL + `"}`, 201},
	}
	for _, tc := range cases {
		code, body := ts.call(tc.method, tc.path, tc.token, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d, want %d; body %s", tc.name, tc.method, tc.path, code, tc.want, body)
			continue
		}
		if code >= 400 && tc.method != "HEAD" {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("%s: error answer %q is not {\"error\": ...}", tc.name, body)
			}
		}
	}

	// The user's own view, and a repo list limited to the user's repos.
	var repos []struct {
		Slug string `json:"slug"`
		Role string `json:"role"`
	}
	ts.must(http.StatusOK, "GET", "/api/repos", reader, nil, &repos)
	if len(repos) != 1 || repos[0].Role != "read" {
		t.Errorf("reader's repos = %+v, want acme/app with role read", repos)
	}
	ts.must(http.StatusOK, "GET", "/api/repos", stranger, nil, &repos)
	if len(repos) != 1 || repos[0].Slug != "stranger/app" || repos[0].Role != "admin" {
		t.Errorf("stranger's repos = %+v, want only the one it added, as its admin", repos)
	}
}

// TestTokens creates, lists, expires and revokes personal tokens.
func TestTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	var tok struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/user/tokens", adminToken, map[string]string{"name": "laptop"}, &tok)
	if !strings.HasPrefix(tok.Token, "ferry_") {
		t.Fatalf("token %q", tok.Token)
	}
	var me struct {
		Login string `json:"login"`
		Admin bool   `json:"admin"`
	}
	ts.must(http.StatusOK, "GET", "/api/user", tok.Token, nil, &me)
	if me.Login != "admin" || !me.Admin {
		t.Errorf("GET /api/user = %+v", me)
	}
	list := ts.must(http.StatusOK, "GET", "/api/user/tokens", adminToken, nil, nil)
	if bytes.Contains(list, []byte(tok.Token)) || !bytes.Contains(list, []byte(`"laptop"`)) {
		t.Errorf("token list %s shows the token string, or lacks the token", list)
	}
	ts.must(http.StatusNoContent, "DELETE", "/api/user/tokens/"+itoa(tok.ID), adminToken, nil, nil)
	ts.must(http.StatusUnauthorized, "GET", "/api/user", tok.Token, nil, nil)

	var short struct {
		Token string `json:"token"`
	}
	// A token with an expiry works until then (an hour: however busy the
	// machine, the next call comes before it), and is refused after it.
	ts.must(http.StatusCreated, "POST", "/api/user/tokens", adminToken, map[string]string{"name": "hour", "expires_in": "1h"}, &short)
	ts.must(http.StatusOK, "GET", "/api/user", short.Token, nil, nil)
	ts.must(http.StatusCreated, "POST", "/api/user/tokens", adminToken, map[string]string{"name": "brief", "expires_in": "1s"}, &short)
	expires := time.Now().Add(time.Second)
	time.Sleep(time.Until(expires) + 100*time.Millisecond)
	ts.must(http.StatusUnauthorized, "GET", "/api/user", short.Token, nil, nil)
}

// TestBadRequests checks that invalid JSON and unknown fields are refused
// with a 400 naming the problem.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	cases := []struct {
		body, field, contains string
	}{
		{`{"git_url": "file:///x/y", "colour": 1}`, "colour", `unknown field "colour"`},
		{`{"git_url": 42}`, "git_url", `field "git_url" must be a string`},
		{`{"git_url": "file:///x/y",`, "", "invalid JSON"},
		{`{"git_url": "file:///x/y"} {}`, "", "unexpected data after the object"},
		{`{"git_url": "file:///x/y", "poll_interval": "soon"}`, "poll_interval", "invalid duration"},
		{`{"git_url": "ftp://host/x/y"}`, "git_url", "must be an http"},
		{`{"git_url": "file:///x/y", "forge": "bitbucket"}`, "forge", "is not one of"},
		{`{"git_url": "file:///does/not/exist"}`, "git_url", "cannot read the git repository at file:///does/not/exist: there is no git repository there ("},
		{`{"git_url": "http://127.0.0.1:1/acme/app.git"}`, "git_url", "nothing answers at that address ("},
		{`{}`, "git_url", "git_url is required"},
		{``, "", "request body is empty"},
	}
	for _, tc := range cases {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		ts.must(http.StatusBadRequest, "POST", "/api/repos", adminToken, tc.body, &e)
		if e.Field != tc.field || !strings.Contains(e.Error, tc.contains) {
			t.Errorf("body %s: error %q (field %q), want one containing %q (field %q)", tc.body, e.Error, e.Field, tc.contains, tc.field)
		}
	}
}

// TestWebhookMounted checks that webhooks reach the trigger package's
// handler without a token, and that a wrong signature stores nothing.
func TestWebhookMounted(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	sha := g.Git("rev-parse", "HEAD")
	var repo repoJSON
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
		map[string]any{"git_url": g.URL(), "forge": "github", "webhook_secret": "s3cret"}, &repo)
	payload := `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"` + sha + `",
		"repository":{"full_name":"acme/app","name":"app","owner":{"login":"acme"},"clone_url":"` + g.URL() + `"},
		"head_commit":{"id":"` + sha + `","message":"hi","author":{"name":"Ada","email":"ada@example.com"}},
		"sender":{"login":"ada"},"commits":[]}`
	send := func(secret string) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/hook/acme/app", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(payload))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		res, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, data
	}
	if code, body := send("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %s, want 401", code, body)
	}
	var list []buildJSON
	ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds", adminToken, nil, &list)
	if len(list) != 0 {
		t.Fatalf("a refused webhook stored builds: %+v", list)
	}
	if code, body := send("s3cret"); code != http.StatusOK {
		t.Fatalf("signed webhook: %d %s, want 200", code, body)
	}
	b := ts.build(1)
	if b.Event != "push" || b.Commit != sha || b.pipelineStatuses() != "build=pending deploy=blocked" {
		t.Errorf("webhook build: %s at %s with %s", b.Event, b.Commit, b.pipelineStatuses())
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestRevokedAgentTokenIsRefusedAtOnce checks that revoking an agent token
// takes effect immediately on the server that revoked it, although agent
// tokens are cached for a few seconds.
func TestRevokedAgentTokenIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	var tok struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/agent-tokens", adminToken, map[string]string{"name": "ci"}, &tok)
	lease := `{"name":"a1","labels":{"backend":"none"},"capacity":1,"wait":0}`
	// Twice: the second call is answered from the cache.
	ts.must(http.StatusNoContent, "POST", "/api/agent/lease", tok.Token, lease, nil)
	ts.must(http.StatusNoContent, "POST", "/api/agent/lease", tok.Token, lease, nil)
	ts.must(http.StatusNoContent, "DELETE", "/api/agent-tokens/"+itoa(tok.ID), adminToken, nil, nil)
	ts.must(http.StatusUnauthorized, "POST", "/api/agent/lease", tok.Token, lease, nil)
}
