package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/trigger"
)

// execPipeline is one exec pipeline, whose job any local agent leases.
const execPipeline = "kind: pipeline\ntype: exec\nname: p\nsteps:\n- name: s\n  commands: [echo hi]\n"

// TestRepoCredential stores a private repo's credential through the API,
// on both drivers, and checks that it is write-only (answers say only
// that it is set), sealed in the database, used by the server's own git
// reads, handed to the job for its clone, and offered to the steps (as
// netrc_password) only for builds that may see secrets.
func TestRepoCredential(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { t.Parallel(); testRepoCredential(t, driver) })
	}
}

func testRepoCredential(t *testing.T, driver string) {
	ts := startServer(t, driver, nil)
	root := t.TempDir()
	g := newGitRepo(t, map[string]string{".drone.yml": execPipeline})
	g.Git("clone", "--quiet", "--bare", g.Dir, filepath.Join(root, "app.git"))
	auth := &gittest.BasicAuth{User: "ci-bot", Password: "tok-credential-4e1f9a2b7c3d"}
	url := gittest.Serve(t, root, auth.Wrap) + "/app.git"

	// A credential of the wrong kind for the URL, or an incomplete one,
	// is refused, naming what would do.
	for _, c := range []struct {
		cred map[string]string
		url  string
		want string
	}{
		{map[string]string{"username": "u", "password": "p"}, g.URL(), "needs an http(s) git URL"},
		{map[string]string{"ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"}, url, "needs an ssh git URL"},
		{map[string]string{"password": "p"}, url, "needs a username"},
		{map[string]string{"username": "u"}, url, "needs a password or token"},
		{map[string]string{}, url, "credential is empty"},
	} {
		code, body := ts.call("POST", "/api/repos", adminToken, map[string]any{"git_url": c.url, "slug": "acme/app", "credential": c.cred, "poll_interval": "0s"})
		if code != http.StatusBadRequest || !strings.Contains(string(body), c.want) || !strings.Contains(string(body), `"field":"credential"`) {
			t.Errorf("adding %s with credential %v: %d %s; want 400 on field credential saying %q", c.url, c.cred, code, body, c.want)
		}
	}

	var answers [][]byte
	var repo struct {
		DefaultBranch string `json:"default_branch"`
		Credential    struct {
			Set      bool   `json:"set"`
			Kind     string `json:"kind"`
			Username string `json:"username"`
		} `json:"credential"`
	}
	answers = append(answers, ts.must(http.StatusCreated, "POST", "/api/repos", adminToken, map[string]any{
		"git_url": url, "slug": "acme/app", "poll_interval": "0s", "trusted": true, // an exec pipeline
		"credential": map[string]string{"username": auth.User, "password": auth.Password},
	}, &repo))
	if !repo.Credential.Set || repo.Credential.Kind != "https" || repo.Credential.Username != auth.User {
		t.Errorf("credential in the answer = %+v, want set, https, %s", repo.Credential, auth.User)
	}
	if repo.DefaultBranch != "main" {
		t.Errorf("default branch %q, want main: read with the credential", repo.DefaultBranch)
	}
	answers = append(answers,
		ts.must(http.StatusOK, "GET", "/api/repos/acme/app", adminToken, nil, nil),
		ts.must(http.StatusOK, "GET", "/api/repos/acme/app/credential", adminToken, nil, nil),
		ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/credential", adminToken,
			map[string]string{"username": auth.User, "password": auth.Password}, nil),
		ts.must(http.StatusOK, "GET", "/api/repos", adminToken, nil, nil),
	)
	for _, a := range answers {
		if bytes.Contains(a, []byte(auth.Password)) {
			t.Errorf("an answer shows the token: %s", a)
		}
	}
	// A git URL the credential does not fit is refused.
	code, body := ts.call("PATCH", "/api/repos/acme/app", adminToken, map[string]any{"git_url": "git@git.example.com:acme/app.git"})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "https credential does not fit") {
		t.Errorf("changing the git URL to ssh: %d %s; want 400 saying the credential does not fit", code, body)
	}
	// Only the repo's admins see even that it is set.
	bob := ts.userToken("bob")
	ts.must(http.StatusNotFound, "GET", "/api/repos/acme/app/credential", bob, nil, nil)
	ts.must(http.StatusNotFound, "PUT", "/api/repos/acme/app/credential", bob, map[string]string{"username": "x", "password": "y"}, nil)

	// A build: the server resolves the branch and reads the pipeline with
	// the credential, and the job carries it for the clone, and offers
	// the token to steps that ask for netrc_password.
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, map[string]string{"branch": "main"}, nil)
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", localAgent)
	if cr := job.Clone.Credential; cr == nil || cr.Username != auth.User || cr.Password != auth.Password {
		t.Errorf("the job's clone credential = %+v, want the repo's", cr)
	}
	if job.Secrets["netrc_password"] != auth.Password || job.Env["DRONE_NETRC_USERNAME"] != auth.User ||
		job.Env["DRONE_NETRC_MACHINE"] != "127.0.0.1" {
		t.Errorf("the job offers secrets %v and env %v; want netrc_password and DRONE_NETRC_*", keys(job.Secrets), job.Env)
	}

	// A pull request from a fork clones with it, but its steps cannot ask
	// for it.
	r, err := ts.Store().Repos.GetBySlug(context.Background(), "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.TrimSpace(gitOut(t, filepath.Join(root, "app.git"), "rev-parse", "main"))
	b, err := ts.CreateBuild(context.Background(), r, &trigger.Event{Kind: "pull_request", Ref: "refs/heads/main",
		Branch: "main", SourceBranch: "feature", SHA: sha, PullRequest: 3, Fork: true, Sender: "mallory"})
	if err != nil || b == nil {
		t.Fatalf("CreateBuild: %v, %v", b, err)
	}
	ts.must(http.StatusOK, "POST", "/api/repos/acme/app/builds/2/approve", adminToken, nil, nil)
	job = mustLease(t, c, "agent-1", localAgent)
	if job.Clone.Credential == nil || job.Secrets["netrc_password"] != "" || job.Env["DRONE_NETRC_USERNAME"] != "" {
		t.Errorf("fork build: clone credential %v, secrets %v, env %v; want the clone credential only",
			job.Clone.Credential != nil, keys(job.Secrets), job.Env)
	}

	raw := ts.rawDatabase(t)
	if bytes.Contains(raw, []byte(auth.Password)) {
		t.Error("the database holds the token in plain text")
	}
	if !bytes.Contains(raw, []byte(auth.User)) {
		t.Error("the raw database does not even hold the credential's username: the check reads the wrong data")
	}

	// Without it, the server's reads are refused, and the answer says what
	// is missing.
	ts.must(http.StatusNoContent, "DELETE", "/api/repos/acme/app/credential", adminToken, nil, nil)
	ts.must(http.StatusNotFound, "DELETE", "/api/repos/acme/app/credential", adminToken, nil, nil)
	code, body = ts.call("POST", "/api/repos/acme/app/builds", adminToken, map[string]string{"branch": "main"})
	if code != http.StatusBadGateway || !strings.Contains(string(body), "ferry repo credential set acme/app") {
		t.Errorf("a build without the credential: %d %s; want 502 naming `ferry repo credential set`", code, body)
	}
}

// localAgent are the labels of an agent with the local backend.
var localAgent = map[string]string{"backend": "local", "platform": "linux/amd64"}

// gitOut runs git in dir and returns its output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStatusTokenWarnings checks that a repo on a forge the server has no
// commit status token for is announced: in the answer that adds it, and
// in the server's log at every start; and that the answer lists the
// webhook events to tick on that forge.
func TestStatusTokenWarnings(t *testing.T) {
	t.Parallel()
	g := newGitRepo(t, map[string]string{".drone.yml": execPipeline})
	dir := t.TempDir()
	start := func() (*server.Server, *syncBuffer) {
		t.Helper()
		cfg := server.DefaultConfig()
		cfg.DataDir, cfg.AdminToken = dir, adminToken
		cfg.GitHubToken = "ghp-configured"
		var log syncBuffer
		srv, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return srv, &log
	}
	srv, log := start()
	if !strings.Contains(log.String(), "level=INFO") || strings.Contains(log.String(), "no commit status") {
		t.Errorf("first start, with a GitHub token and no repos, logged:\n%s\nwant no warning", log)
	}
	h := httptest.NewServer(srv.Handler())
	add := func(slug, forge string) (warnings, events []string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"git_url": g.URL(), "slug": slug, "forge": forge, "poll_interval": "0s"})
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/repos", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Warnings      []string `json:"warnings"`
			WebhookEvents []string `json:"webhook_events"`
		}
		if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&out) != nil {
			t.Fatalf("adding %s: %d", slug, res.StatusCode)
		}
		return out.Warnings, out.WebhookEvents
	}
	w, ev := add("acme/gitea", "gitea")
	if len(w) != 1 || !strings.Contains(w[0], "no commit status will be posted to gitea") || !strings.Contains(w[0], "--gitea-token") {
		t.Errorf("adding a gitea repo warned %q; want that no status will be posted without --gitea-token", w)
	}
	if !slices.Equal(ev, []string{"Push", "Pull Request", "Pull Request Synchronized"}) {
		t.Errorf("gitea webhook events %q", ev)
	}
	w, ev = add("acme/github", "github")
	if len(w) != 0 || !slices.Equal(ev, []string{"Pushes", "Pull requests"}) {
		t.Errorf("adding a github repo (token set): warnings %q, events %q; want none, and Pushes, Pull requests", w, ev)
	}
	if _, ev = add("acme/gitlab", "gitlab"); !slices.Equal(ev, []string{"Push events", "Tag push events", "Merge request events"}) {
		t.Errorf("gitlab webhook events %q", ev)
	}
	if _, ev = add("acme/plain", "none"); len(ev) != 0 {
		t.Errorf("a repo with no forge lists webhook events %q", ev)
	}
	h.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	// At the next start, the repos without a token are announced.
	srv, log = start()
	defer srv.Close()
	for _, want := range []string{"level=WARN msg=\"no commit status will be posted to gitea", "level=WARN msg=\"no commit status will be posted to gitlab"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the second start logged:\n%s\nwant %s", log, want)
		}
	}
	if strings.Contains(log.String(), "posted to github") {
		t.Errorf("the second start warned about github, which has a token:\n%s", log)
	}
}
