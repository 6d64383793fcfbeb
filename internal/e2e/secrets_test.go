package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryci/ferry/internal/gittest"
)

// secretPipeline prints a secret and whether it is set.
const secretPipeline = `kind: pipeline
type: exec
name: default
steps:
- name: use-secret
  environment:
    TOKEN:
      from_secret: deploy_token
  commands:
  - echo "token=$TOKEN"
  - if [ -n "$TOKEN" ]; then echo "secret is set"; else echo "secret is not set"; fi
`

// TestSecrets is acceptance test 7, on SQLite and on PostgreSQL: a repo
// secret created through the API is encrypted at rest (its plaintext is in
// no file of the data directory, and in no row of any table, nor in the
// server's or the agent's output); a step that prints it shows ******** in
// the log the API serves; and a pull request from a fork, once approved,
// runs without it.
func TestSecrets(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			opts := serverOptions{}
			if driver == "postgres" {
				opts.Database = postgresDatabase(t)
			}
			root := t.TempDir()
			repo := gittest.NewWithOrigin(t, root, "vault", map[string]string{".drone.yml": secretPipeline, "README.md": "vault\n"})
			base := repo.Git("rev-parse", "HEAD")
			// The pull request's head, reachable only as refs/pull/1/head,
			// as GitHub keeps it for a fork's pull request.
			repo.Git("checkout", "--quiet", "-b", "feature")
			head := repo.Commit("Improve the vault", map[string]string{"README.md": "vault, improved\n"})
			repo.Push("feature:refs/pull/1/head")
			repo.Git("checkout", "--quiet", "main")

			srv := startServer(t, opts)
			c := adminAPI(t, srv)
			const slug, hookSecret = "acme/vault", "vault-webhook-secret"
			c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "forge": "github", "webhook_secret": hookSecret})
			plaintext := "pl41n-" + randomHex(t, 12)
			var sec struct {
				Name   string   `json:"name"`
				Events []string `json:"events"`
				Value  *string  `json:"value"`
			}
			c.do("POST", "/api/repos/"+slug+"/secrets", map[string]any{
				"name": "deploy_token", "value": plaintext, "events": []string{"push", "pull_request"},
			}, http.StatusCreated, &sec)
			if sec.Name != "deploy_token" || sec.Value != nil {
				t.Fatalf("created secret = %+v; want deploy_token, and no value in the answer", sec)
			}
			agent := startAgent(t, srv.URL, c.agentToken("vault-agent"), agentOptions{Name: "vault-agent"})
			hookURL := srv.URL + "/hook/" + slug

			// A push build gets the secret, masked in its log.
			status, body := sendHook(t, c.hc, hookURL, "push", githubPush(slug, repo.URL(), "main", strings.Repeat("0", 40), base, "Initial commit"), hookSecret)
			if status != http.StatusOK {
				t.Fatalf("push webhook: %d %s", status, body)
			}
			b := c.waitBuild(slug, 1, 20*time.Second, nil)
			if b.Status != "success" {
				t.Fatalf("push build %s: %s", b.Status, describe(b))
			}
			log := c.stepLog(slug, 1, 1, 1)
			want := []string{`+ echo "token=$TOKEN"`, "token=********"}
			if got := lines(log); len(got) < 3 || !slices.Equal(got[:2], want) || got[len(got)-1] != "secret is set" {
				t.Errorf("push build log:\n%s\nwant %q, then \"secret is set\"", log, want)
			}
			if strings.Contains(log, plaintext) {
				t.Errorf("the push build's log shows the secret in plain text:\n%s", log)
			}

			// A pull request from a fork waits for approval, then runs
			// without the secret.
			status, body = sendHook(t, c.hc, hookURL, "pull_request", githubPullRequest(slug, repo.URL(), "mallory/vault", 1, head, base), hookSecret)
			if status != http.StatusOK {
				t.Fatalf("pull_request webhook: %d %s", status, body)
			}
			pr := c.build(slug, 2)
			if !pr.Fork || pr.Event != "pull_request" || pr.Status != "blocked" || pr.Approval != "pending" || pr.Commit != head {
				t.Fatalf("fork pull request build = fork %v event %s status %s approval %q commit %s; want a blocked fork pull_request of %s waiting for approval",
					pr.Fork, pr.Event, pr.Status, pr.Approval, pr.Commit, head)
			}
			if r := pr.Pipelines[0].Job.WaitingReason; r != "waiting for approval" {
				t.Errorf("waiting reason = %q, want \"waiting for approval\"", r)
			}
			c.do("POST", fmt.Sprintf("/api/repos/%s/builds/2/approve", slug), nil, http.StatusOK, nil)
			pr = c.waitBuild(slug, 2, 20*time.Second, nil)
			if pr.Status != "success" {
				t.Fatalf("approved fork build %s: %s", pr.Status, describe(pr))
			}
			prLog := c.stepLog(slug, 2, 1, 1)
			if got := lines(prLog); len(got) < 3 || got[1] != "token=" || got[len(got)-1] != "secret is not set" {
				t.Errorf("fork build log:\n%s\nwant an empty token and \"secret is not set\"", prLog)
			}

			// Nothing on disk or in the database holds the plaintext, in
			// any common encoding.
			needles := [][]byte{
				[]byte(plaintext),
				[]byte(hex.EncodeToString([]byte(plaintext))),
				[]byte(base64.StdEncoding.EncodeToString([]byte(plaintext))),
				[]byte(base64.RawStdEncoding.EncodeToString([]byte(plaintext))),
			}
			for _, p := range []*proc{srv.proc, agent} {
				if strings.Contains(p.output(), plaintext) {
					t.Errorf("the output of %s shows the secret", p.name)
				}
			}
			switch driver {
			case "sqlite":
				checkFilesHideSecret(t, srv.opts.DataDir, needles)
			case "postgres":
				checkRowsHideSecret(t, opts.Database, needles)
			}
		})
	}
}

// checkFilesHideSecret reads every file under the server's data directory,
// the database and its write-ahead log included, and fails if one holds a
// needle. The secret's name must be found, so that the check is known to
// read where the secret is stored.
func checkFilesHideSecret(t *testing.T, dataDir string, needles [][]byte) {
	t.Helper()
	sawName, files := false, 0
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(dataDir, path)
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s holds the secret (as %q)", rel, n)
			}
		}
		if strings.HasPrefix(rel, "ferry.db") && bytes.Contains(data, []byte("deploy_token")) {
			sawName = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawName {
		t.Errorf("no database file under %s holds the secret's name: the check read the wrong files", dataDir)
	}
	t.Logf("%d files under the data directory checked", files)
}

// checkRowsHideSecret reads every row of every table of the database as
// text and fails if one holds a needle.
func checkRowsHideSecret(t *testing.T, dsn string, needles [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sawSecret, total := false, 0
	for _, table := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+table+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range texts {
			total++
			for _, n := range needles {
				if strings.Contains(row, string(n)) {
					t.Errorf("a row of %s holds the secret (as %q): %s", table, n, row)
				}
			}
			sawSecret = sawSecret || strings.Contains(row, "deploy_token")
		}
	}
	if !sawSecret {
		t.Errorf("no row holds the secret's name: the check read the wrong tables (%v)", tables)
	}
	t.Logf("%d rows of %d tables checked", total, len(tables))
}
