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
	"strings"
	"testing"
	"time"
)

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
