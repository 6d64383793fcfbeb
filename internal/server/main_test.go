package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// adminToken is the --admin-token of every test server.
const adminToken = "ferry_test_admin_token_0123456789"

// testServer is a real server on a loopback port, on a real store.
type testServer struct {
	*server.Server
	t      *testing.T
	URL    string
	cfg    server.Config
	client *http.Client
	// dbPath is the SQLite database file, or "" on PostgreSQL.
	dbPath string
	// dsn is the PostgreSQL DSN, or "" on SQLite.
	dsn string
	// log holds what the server logged, for waitLog.
	log *testWriter
}

// drivers are the stores every store-dependent test runs on.
var drivers = []string{"sqlite", "postgres"}

// postgresDSN returns FERRY_TEST_POSTGRES, skipping the test when it is
// unset, except under CI=true, where that is a failure.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("FERRY_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FERRY_TEST_POSTGRES is not set: CI=true requires the PostgreSQL server tests to run")
		}
		t.Skip("FERRY_TEST_POSTGRES is not set: skipping the PostgreSQL variant " +
			"(set it to e.g. postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable)")
	}
	return dsn
}

// freshSchema creates a PostgreSQL schema for one test, dropped when the
// test ends, and returns a DSN that uses it.
func freshSchema(t *testing.T) string {
	t.Helper()
	dsn := postgresDSN(t)
	ctx := context.Background()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "ferry_server_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to FERRY_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startServer starts a server on driver ("sqlite" or "postgres") with the
// configuration adjusted by edit, serving until the test ends.
func startServer(t *testing.T, driver string, edit func(*server.Config)) *testServer {
	t.Helper()
	return startServerWith(t, driver, edit, nil)
}

// startServerWith starts a server as startServer does, and calls before
// with it before it serves.
func startServerWith(t *testing.T, driver string, edit func(*server.Config), before func(*server.Server)) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = adminToken
	cfg.Addr = "127.0.0.1:0"
	ts := &testServer{t: t, log: &testWriter{t: t}}
	switch driver {
	case "sqlite":
		ts.dbPath = filepath.Join(cfg.DataDir, "ferry.db")
	case "postgres":
		ts.dsn = freshSchema(t)
		cfg.Database = ts.dsn
	default:
		t.Fatalf("unknown driver %q", driver)
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	if before != nil {
		before(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	ts.Server, ts.cfg = srv, cfg
	ts.URL = "http://" + ln.Addr().String()
	ts.client = &http.Client{Transport: &http.Transport{}, Timeout: time.Minute}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.client.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ts
}

// testWriter logs through t, so that a failing test shows the server's
// log, and keeps what it logged for waitLog.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	all strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	w.mu.Lock()
	w.all.Write(p)
	w.mu.Unlock()
	return len(p), nil
}

// waitLog waits until the server has logged substr: for events that the
// API does not show.
func (ts *testServer) waitLog(substr string) {
	ts.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ts.log.mu.Lock()
		ok := strings.Contains(ts.log.all.String(), substr)
		ts.log.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("the server did not log %q within a minute", substr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call sends a request with token (none when empty) and a JSON body (none
// when nil; a string or []byte is sent as it is), and returns the status
// and the body.
func (ts *testServer) call(method, path, token string, body any) (int, []byte) {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res.StatusCode, data
}

// must sends a request as call does, fails the test unless the status is
// want, and decodes the body into out when it is not nil.
func (ts *testServer) must(want int, method, path, token string, body, out any) []byte {
	ts.t.Helper()
	code, data := ts.call(method, path, token, body)
	if code != want {
		ts.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, code, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			ts.t.Fatalf("%s %s: decoding %s: %v", method, path, data, err)
		}
	}
	return data
}

// agentClient returns an rpc client with a new agent token.
func (ts *testServer) agentClient(name string) *rpc.Client {
	ts.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/agent-tokens", adminToken, map[string]string{"name": name}, &tok)
	hc := &http.Client{Transport: &http.Transport{}}
	ts.t.Cleanup(hc.CloseIdleConnections)
	return rpc.NewClient(ts.URL, tok.Token, hc)
}

// userToken creates a non-admin user and returns a personal token of it.
func (ts *testServer) userToken(login string) string {
	ts.t.Helper()
	ts.must(http.StatusCreated, "POST", "/api/users", adminToken, map[string]any{"login": login}, nil)
	var tok struct {
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/users/"+login+"/tokens", adminToken, map[string]string{"name": "test"}, &tok)
	return tok.Token
}

// newGitRepo is a repository acme/app with one commit holding files.
func newGitRepo(t *testing.T, files map[string]string) *gittest.Repo {
	t.Helper()
	g := gittest.New(t, filepath.Join(t.TempDir(), "acme", "app"))
	g.Commit("initial commit", files)
	return g
}

// repoJSON is the part of a repo answer the tests read.
type repoJSON struct {
	ID            int64  `json:"id"`
	Slug          string `json:"slug"`
	WebhookSecret string `json:"webhook_secret"`
	DefaultBranch string `json:"default_branch"`
}

// addRepo adds g to the server as acme/app, with no polling.
func (ts *testServer) addRepo(g *gittest.Repo) *repoJSON {
	ts.t.Helper()
	var r repoJSON
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
		map[string]any{"git_url": g.URL(), "forge": "none", "poll_interval": "0s"}, &r)
	if r.Slug != "acme/app" {
		ts.t.Fatalf("slug = %q, want acme/app", r.Slug)
	}
	return &r
}

// buildJSON is the part of a build answer the tests read.
type buildJSON struct {
	Number    int64     `json:"number"`
	Parent    int64     `json:"parent"`
	Status    string    `json:"status"`
	Error     string    `json:"error"`
	Approval  string    `json:"approval"`
	Commit    string    `json:"commit"`
	Event     string    `json:"event"`
	Started   time.Time `json:"started"`
	Pipelines []struct {
		Number  int64     `json:"number"`
		Name    string    `json:"name"`
		Status  string    `json:"status"`
		Error   string    `json:"error"`
		Agent   string    `json:"agent"`
		Started time.Time `json:"started"`
		Steps   []struct {
			Number   int64     `json:"number"`
			Name     string    `json:"name"`
			Status   string    `json:"status"`
			ExitCode int       `json:"exit_code"`
			Error    string    `json:"error"`
			Started  time.Time `json:"started"`
		} `json:"steps"`
		Job *struct {
			ID            int64             `json:"id"`
			Status        string            `json:"status"`
			Labels        map[string]string `json:"labels"`
			Attempts      int               `json:"attempts"`
			Error         string            `json:"error"`
			WaitingReason string            `json:"waiting_reason"`
		} `json:"job"`
	} `json:"pipelines"`
}

// pipelineStatuses returns "name=status" for each pipeline of b.
func (b *buildJSON) pipelineStatuses() string {
	var parts []string
	for _, p := range b.Pipelines {
		parts = append(parts, p.Name+"="+p.Status)
	}
	return strings.Join(parts, " ")
}

func (ts *testServer) build(n int64) *buildJSON {
	ts.t.Helper()
	var b buildJSON
	ts.must(http.StatusOK, "GET", fmt.Sprintf("/api/repos/acme/app/builds/%d", n), adminToken, nil, &b)
	return &b
}

// waitBuild polls build n until cond holds, failing the test after d, or
// after a minute if d is shorter: a wait is a guard against hanging, never
// a requirement, since on a busy machine everything takes longer.
func (ts *testServer) waitBuild(n int64, d time.Duration, what string, cond func(*buildJSON) bool) *buildJSON {
	ts.t.Helper()
	d = max(d, time.Minute)
	deadline := time.Now().Add(d)
	for {
		b := ts.build(n)
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("build %d: %s did not happen within %s; build is %s (%s), pipelines %s",
				n, what, d, b.Status, b.Error, b.pipelineStatuses())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lease leases one job for agent name with labels, waiting up to wait.
func lease(t *testing.T, c *rpc.Client, name string, labels map[string]string, wait time.Duration) *rpc.Job {
	t.Helper()
	job, err := c.Lease(context.Background(), &rpc.LeaseRequest{Name: name, Labels: labels, Capacity: 4, Wait: wait})
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return job
}

// mustLease leases a job and fails the test when none comes.
func mustLease(t *testing.T, c *rpc.Client, name string, labels map[string]string) *rpc.Job {
	t.Helper()
	job := lease(t, c, name, labels, 5*time.Second)
	if job == nil {
		t.Fatal("Lease: no job within 5s")
	}
	return job
}

var dockerAgent = map[string]string{"backend": "docker", "platform": "linux/amd64"}

// isLeaseLost reports whether err is the rpc client's lease-lost error.
func isLeaseLost(err error) bool { return errors.Is(err, rpc.ErrLeaseLost) }
