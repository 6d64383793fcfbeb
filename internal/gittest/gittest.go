// Package gittest is the one git helper of the tests: it makes real
// repositories in temporary directories (Repo), serves them the way a
// forge does, over smart HTTP with the real `git http-backend`,
// optionally behind HTTP basic authentication, or over SSH, and records
// the command lines git is run with.
package gittest

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// skipOrFail skips the test, or fails it when CI=true, where every
// component must be present.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Serve serves the bare repositories under root with git http-backend,
// each handler wrapped by wrap when it is not nil, and returns the base
// URL: root/NAME.git is at BASE/NAME.git. The server stops when the test
// ends.
func Serve(t testing.TB, root string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		skipOrFail(t, "git is required: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		skipOrFail(t, "git http-backend is required: %v", err)
	}
	var h http.Handler = &cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull},
		// "not our ref" and the like: the client reports them.
		Stderr: io.Discard,
	}
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// BasicAuth is a gate in front of a git server that lets through only
// requests with its username and password, and counts both kinds.
type BasicAuth struct {
	User, Password    string
	Refused, Admitted atomic.Int32
}

// Wrap returns h behind the gate; pass it to Serve.
func (a *BasicAuth) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != a.User || p != a.Password {
			a.Refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		a.Admitted.Add(1)
		h.ServeHTTP(w, r)
	})
}

// RecordArgs puts a git on PATH, for the rest of the test, that records
// its command line in a file and runs the real git; it returns a function
// that reads what was recorded, one command per line. The test must not
// be parallel (it sets PATH).
func RecordArgs(t *testing.T) func() string {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		skipOrFail(t, "git is required: %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "args.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + log + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() string {
		data, err := os.ReadFile(log)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(data)
	}
}
