package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// gitRepo is a real git repository: a bare origin that ferry clones, and a
// working clone that commits and pushes to it.
type gitRepo struct {
	t      testing.TB
	origin string // the bare repository, NAME.git under the root
	work   string
}

// requireGit skips the test when git is missing (fails when CI=true).
func requireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		skipOrFail(t, "git is not on PATH: %v", err)
	}
}

// newGitRepo creates root/NAME.git with one commit on main holding files.
func newGitRepo(t testing.TB, root, name string, files map[string]string) *gitRepo {
	t.Helper()
	requireGit(t)
	r := &gitRepo{t: t, origin: filepath.Join(root, name+".git"), work: filepath.Join(t.TempDir(), "work")}
	r.git("", "init", "--quiet", "--bare", "--initial-branch=main", r.origin)
	r.git("", "init", "--quiet", "--initial-branch=main", r.work)
	r.git(r.work, "remote", "add", "origin", r.origin)
	r.commit(files, "Initial commit")
	r.push("main")
	return r
}

// git runs git in dir with a fixed identity and no user or system
// configuration, and returns its trimmed output.
func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files in the working clone, commits them with message and
// returns the commit's SHA. It does not push.
func (r *gitRepo) commit(files map[string]string, message string) string {
	r.t.Helper()
	names := make([]string, 0, len(files))
	for name, content := range files {
		writeFile(r.t, r.work, name, content)
		names = append(names, name)
	}
	sort.Strings(names)
	r.git(r.work, append([]string{"add", "--"}, names...)...)
	r.git(r.work, "commit", "--quiet", "-m", message)
	return r.git(r.work, "rev-parse", "HEAD")
}

// push pushes refspecs to origin.
func (r *gitRepo) push(refspecs ...string) {
	r.t.Helper()
	r.git(r.work, append([]string{"push", "--quiet", "origin"}, refspecs...)...)
}

// fileURL is origin's file:// URL.
func (r *gitRepo) fileURL() string { return "file://" + r.origin }

// serveGit serves the bare repositories under root over git's smart HTTP
// protocol with `git http-backend`, run as a CGI program by this process,
// and returns the base URL: NAME.git under root is at BASE/NAME.git.
func serveGit(t testing.TB, root string) string {
	t.Helper()
	requireGit(t)
	return gittest.Serve(t, root, nil)
}

// ---- webhooks ----

// ghRepository is a GitHub repository object, as webhook payloads carry
// it.
func ghRepository(id int64, fullName, cloneURL string) map[string]any {
	owner, name, _ := strings.Cut(fullName, "/")
	return map[string]any{
		"id": id, "node_id": "R_kgDO" + fmt.Sprint(id), "name": name, "full_name": fullName, "private": false,
		"owner":          map[string]any{"login": owner, "id": id + 1000, "type": "Organization"},
		"html_url":       "https://github.com/" + fullName,
		"clone_url":      cloneURL,
		"ssh_url":        "git@github.com:" + fullName + ".git",
		"default_branch": "main",
		"master_branch":  "main",
	}
}

// githubPush is a GitHub push event payload for a push of after (one new
// commit with message) to branch, shaped like what GitHub sends.
func githubPush(fullName, cloneURL, branch, before, after, message string) []byte {
	commit := map[string]any{
		"id": after, "tree_id": strings.Repeat("0", 40), "distinct": true, "message": message,
		"timestamp": time.Now().Format(time.RFC3339),
		"url":       "https://github.com/" + fullName + "/commit/" + after,
		"author":    map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
		"committer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
		"added":     []string{}, "removed": []string{}, "modified": []string{".drone.yml"},
	}
	payload := map[string]any{
		"ref":         "refs/heads/" + branch,
		"before":      before,
		"after":       after,
		"created":     false,
		"deleted":     false,
		"forced":      false,
		"base_ref":    nil,
		"compare":     "https://github.com/" + fullName + "/compare/" + before[:12] + "..." + after[:12],
		"commits":     []any{commit},
		"head_commit": commit,
		"repository":  ghRepository(4242, fullName, cloneURL),
		"pusher":      map[string]any{"name": "ada", "email": "ada@example.com"},
		"sender":      map[string]any{"login": "ada", "id": 77, "type": "User"},
	}
	data, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return data
}

// githubPullRequest is a GitHub pull_request "opened" payload for pull
// request number, whose head is headSHA in headRepo (a fork when it is not
// fullName) and whose base is main of fullName.
func githubPullRequest(fullName, cloneURL, headRepo string, number int, headSHA, baseSHA string) []byte {
	base := ghRepository(4242, fullName, cloneURL)
	head := base
	if headRepo != fullName {
		head = ghRepository(9999, headRepo, "https://github.com/"+headRepo+".git")
	}
	headOwner, _, _ := strings.Cut(headRepo, "/")
	payload := map[string]any{
		"action": "opened",
		"number": number,
		"pull_request": map[string]any{
			"number":   number,
			"state":    "open",
			"title":    "Improve the widget",
			"html_url": fmt.Sprintf("https://github.com/%s/pull/%d", fullName, number),
			"user":     map[string]any{"login": headOwner, "id": 88, "type": "User"},
			"head":     map[string]any{"label": headOwner + ":feature", "ref": "feature", "sha": headSHA, "repo": head},
			"base":     map[string]any{"label": "acme:main", "ref": "main", "sha": baseSHA, "repo": base},
		},
		"repository": base,
		"sender":     map[string]any{"login": headOwner, "id": 88, "type": "User"},
	}
	data, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return data
}

// sendHook posts a GitHub webhook to url, signed with secret (unsigned
// when secret is empty), and returns the answer's status and body.
func sendHook(t testing.TB, hc *http.Client, url, event string, body []byte, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/e2e")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", randomHex(t, 16))
	req.Header.Set("X-GitHub-Hook-ID", "123456")
	if secret != "" {
		// Computed here, not with package forge, so that the test checks
		// the server against GitHub's documented scheme.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("posting %s webhook: %v", event, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}
