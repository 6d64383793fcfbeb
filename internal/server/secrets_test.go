package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferryci/ferry/internal/trigger"
)

// Plaintexts of the test's secrets. They are long and unusual, so that
// finding one in a file or a row is no accident.
const (
	repoPlain   = "repo-plaintext-7f3a9c1e5b2d4f6a8c0e"
	globalPlain = "global-plaintext-2b4d6f8a0c1e3a5c7e9b"
	forkPlain   = "fork-plaintext-9e8d7c6b5a4f3e2d1c0b"
	tagPlain    = "tag-plaintext-1a2b3c4d5e6f7a8b9c0d"
)

// TestSecrets stores secrets and checks that the database never holds
// their plaintext, that no answer shows them, and that a leased job gets
// exactly the secrets its build may see: by event, and none for a pull
// request from a fork unless the secret allows it.
func TestSecrets(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { t.Parallel(); testSecrets(t, driver) })
	}
}

func testSecrets(t *testing.T, driver string) {
	ts := startServer(t, driver, nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)

	var answers [][]byte
	answers = append(answers,
		ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/secrets", adminToken,
			map[string]any{"name": "deploy_key", "value": repoPlain}, nil),
		ts.must(http.StatusCreated, "POST", "/api/secrets", adminToken,
			map[string]any{"name": "registry", "value": globalPlain}, nil),
		ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/secrets", adminToken,
			map[string]any{"name": "public_token", "value": forkPlain, "allow_pull_request": true}, nil),
		ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/secrets", adminToken,
			map[string]any{"name": "release_key", "value": tagPlain, "events": []string{"tag"}}, nil),
		ts.must(http.StatusOK, "GET", "/api/repos/acme/app/secrets", adminToken, nil, nil),
		ts.must(http.StatusOK, "GET", "/api/repos/acme/app/secrets/deploy_key", adminToken, nil, nil),
		ts.must(http.StatusOK, "GET", "/api/secrets", adminToken, nil, nil),
		// Renaming re-encrypts the value under the new name.
		ts.must(http.StatusOK, "PATCH", "/api/secrets/registry", adminToken, map[string]any{"name": "docker_registry"}, nil),
	)
	ts.must(http.StatusConflict, "POST", "/api/secrets", adminToken, map[string]any{"name": "docker_registry", "value": "x"}, nil)
	for _, a := range answers {
		for _, p := range []string{repoPlain, globalPlain, forkPlain, tagPlain} {
			if bytes.Contains(a, []byte(p)) {
				t.Fatalf("an API answer shows a secret's value: %s", a)
			}
		}
	}

	// A push build sees every secret but the tag-only one.
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	want := map[string]string{"deploy_key": repoPlain, "docker_registry": globalPlain, "public_token": forkPlain}
	if len(job.Secrets) != len(want) {
		t.Errorf("custom build got secrets %v, want %v", keys(job.Secrets), keys(want))
	}
	for k, v := range want {
		if job.Secrets[k] != v {
			t.Errorf("secret %s = %q, want %q", k, job.Secrets[k], v)
		}
	}

	// A pull request from a fork waits for approval, and then gets only
	// the secret that allows pull requests.
	sha := g.Commit("from a fork", map[string]string{"fork.txt": "x"})
	repo, err := ts.Store().Repos.GetBySlug(context.Background(), "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ts.CreateBuild(context.Background(), repo, &trigger.Event{Kind: "pull_request", Ref: "refs/heads/main",
		Branch: "main", SourceBranch: "feature", SHA: sha, PullRequest: 7, Fork: true, Sender: "mallory"})
	if err != nil || b == nil {
		t.Fatalf("CreateBuild: %v, %v", b, err)
	}
	fork := ts.build(b.Number)
	if fork.Status != "blocked" || fork.Approval != "pending" || fork.Pipelines[0].Job.WaitingReason != "waiting for approval" {
		t.Fatalf("fork build %s (approval %q, reason %q), want blocked waiting for approval",
			fork.Status, fork.Approval, fork.Pipelines[0].Job.WaitingReason)
	}
	if j := lease(t, c, "agent-1", dockerAgent, 0); j != nil {
		t.Fatalf("leased pipeline %q of build %d before approval", j.Pipeline, j.Metadata.Build.Number)
	}
	ts.must(http.StatusOK, "POST", "/api/repos/acme/app/builds/2/approve", adminToken, nil, nil)
	ts.must(http.StatusConflict, "POST", "/api/repos/acme/app/builds/2/approve", adminToken, nil, nil)
	job = mustLease(t, c, "agent-1", dockerAgent)
	if job.Metadata.Build.Number != 2 {
		t.Fatalf("leased build %d, want the approved build 2", job.Metadata.Build.Number)
	}
	if len(job.Secrets) != 1 || job.Secrets["public_token"] != forkPlain {
		t.Errorf("fork build got secrets %v, want only public_token", keys(job.Secrets))
	}

	// The raw database never holds a plaintext.
	raw := ts.rawDatabase(t)
	for _, p := range []string{repoPlain, globalPlain, forkPlain, tagPlain} {
		if bytes.Contains(raw, []byte(p)) {
			t.Errorf("the database holds the plaintext %q", p)
		}
	}
	if !bytes.Contains(raw, []byte("deploy_key")) {
		t.Error("the raw database does not even hold the secret's name: the check reads the wrong data")
	}
}

// rawDatabase returns the bytes of the SQLite files (database and WAL), or
// on PostgreSQL the raw bytes of the rows of the secrets and the repo
// credentials.
func (ts *testServer) rawDatabase(t *testing.T) []byte {
	t.Helper()
	if ts.dbPath != "" {
		var all []byte
		for _, p := range []string{ts.dbPath, ts.dbPath + "-wal", ts.dbPath + "-journal"} {
			data, err := os.ReadFile(p)
			if err == nil {
				all = append(all, data...)
			}
		}
		if len(all) == 0 {
			t.Fatalf("no database files at %s", filepath.Dir(ts.dbPath))
		}
		return all
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ts.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var all []byte
	// Each query returns the text and bytes columns of a table that holds
	// sealed values.
	for _, q := range []string{
		`SELECT name, value, events FROM secrets`,
		`SELECT kind, value, username FROM repo_credentials`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a, c string
			var value []byte
			if err := rows.Scan(&a, &value, &c); err != nil {
				t.Fatal(err)
			}
			all = append(append(append(all, a...), value...), c...)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
