// Package apitest starts real ferry components for the tests of the API
// client and the CLI: the real server (internal/server) on a temporary
// SQLite store behind an httptest.Server, an in-process agent
// (internal/agent) on the local backend, and real git repositories in
// temporary directories. Nothing here is a mock. Only tests import it.
package apitest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/agent"
	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/server"
)

// AdminToken is the admin user's token on every test server.
const AdminToken = "ferry_apitest_admin_token_0123456789"

// Server is a real ferry server served by an httptest.Server. The
// server's background loops (maintenance, polling, crons) do not run:
// builds advance through the API and the agent endpoints alone.
type Server struct {
	*server.Server
	// HTTP serves the server's handler.
	HTTP *httptest.Server
	// URL is the server's base URL.
	URL string
}

// NewServer starts a server on a fresh SQLite store in a temporary
// directory, with AdminToken as the admin's token. It is shut down when
// the test ends; the server's log goes to the test's log.
func NewServer(t testing.TB) *Server {
	t.Helper()
	// The listener comes first, so that the server knows its public URL
	// (webhook URLs, build links).
	hs := httptest.NewUnstartedServer(nil)
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = AdminToken
	cfg.Addr = hs.Listener.Addr().String()
	cfg.URL = "http://" + cfg.Addr
	srv, err := server.Open(context.Background(), cfg, Logger(t, "server"))
	if err != nil {
		hs.Close()
		t.Fatalf("server.New: %v", err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(func() {
		// Ending the server first ends its log streams and long polls,
		// so that closing the HTTP server does not wait for them.
		hs.CloseClientConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		hs.Close()
	})
	return &Server{Server: srv, HTTP: hs, URL: hs.URL}
}

// Client returns an API client of the server with token, on a transport
// of its own that is closed when the test ends.
func (s *Server) Client(t testing.TB, token string) *apiclient.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return s.ClientWith(t, token, &http.Client{Transport: tr})
}

// ClientWith returns an API client of the server with token and hc.
func (s *Server) ClientWith(t testing.TB, token string, hc *http.Client) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(s.URL, token, hc)
	if err != nil {
		t.Fatalf("apiclient.New: %v", err)
	}
	return c
}

// StartAgent runs an in-process agent on the local backend (steps are
// host processes) with a new agent token. Repos whose exec pipelines it
// should run must be trusted. It is stopped when the test
// ends: its running jobs are killed and reported.
func (s *Server) StartAgent(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tok, err := s.CreateAgentToken(ctx, "apitest")
	if err != nil {
		cancel()
		t.Fatalf("CreateAgentToken: %v", err)
	}
	a, err := agent.New(agent.Config{
		Server: s.URL, Token: tok, Name: "apitest", Backend: agent.BackendLocal,
		WorkDir: t.TempDir(), PollWait: 5 * time.Second, Heartbeat: 200 * time.Millisecond, Timeout: time.Minute,
		// Steps run as the test's user, in the test's temporary
		// directories, which only that user may enter.
		ExecUser: strconv.Itoa(os.Geteuid()),
	}, Logger(t, "agent"))
	if err != nil {
		cancel()
		t.Fatalf("agent.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the agent did not stop within 30s")
		}
	})
}

// GitRepo creates a git repository at a temporary OWNER/NAME directory
// with files committed on branch main, and returns its file:// URL, from
// which the server derives the slug OWNER/NAME.
func GitRepo(t testing.TB, owner, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), owner, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, content := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "-A"},
		{"commit", "--quiet", "-m", "initial commit"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
			"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return "file://" + dir
}

// GitRepoHTTP is GitRepo served over smart HTTP by git http-backend
// (gittest.Serve), for tests that need a URL other than file://. It
// returns the repository's http:// URL, ending in OWNER/NAME.
func GitRepoHTTP(t testing.TB, owner, name string, files map[string]string) string {
	t.Helper()
	dir := strings.TrimPrefix(GitRepo(t, owner, name, files), "file://")
	// http-backend finds OWNER/NAME/.git under the project root.
	return gittest.Serve(t, filepath.Dir(filepath.Dir(dir)), nil) + "/" + owner + "/" + name
}

// Logger returns a logger that writes to the test's log, naming the
// component, at the warn level (an info log of every request would drown
// a failing test's output).
func Logger(t testing.TB, component string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", component)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
