package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/gittest"
)

// gitRepo is a real git repository for tests: a bare "origin" that ferry
// polls, and a working clone that commits and pushes to it.
type gitRepo struct {
	t      *testing.T
	origin string // bare repository
	work   string // working clone
}

// requireGit skips the test when git is missing (fails when CI=true).
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		skipOrFail(t, "git is not on PATH: %v", err)
	}
}

// newGitRepo creates origin (named name.git under root) with one commit on
// main holding .drone.yml.
func newGitRepo(t *testing.T, root, name string) *gitRepo {
	t.Helper()
	requireGit(t)
	r := &gitRepo{t: t, origin: filepath.Join(root, name+".git"), work: filepath.Join(t.TempDir(), "work")}
	r.git("", "init", "--quiet", "--bare", "--initial-branch=main", r.origin)
	r.git("", "init", "--quiet", "--initial-branch=main", r.work)
	r.git(r.work, "remote", "add", "origin", r.origin)
	r.commit(".drone.yml", "kind: pipeline\nname: default\nsteps:\n- name: test\n  commands: [true]\n", "Initial commit")
	r.push("main")
	return r
}

// git runs git in dir (the current directory when empty) with a fixed
// identity and no user or system configuration, and returns its trimmed
// output.
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

// commit writes file with content in the working clone, commits it with
// message, and returns the commit's SHA. It does not push.
func (r *gitRepo) commit(file, content, message string) string {
	r.t.Helper()
	path := filepath.Join(r.work, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git(r.work, "add", "--", file)
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

// serveGit serves the bare repositories under root over smart HTTP with
// git http-backend, run as a CGI program, and returns the base URL: a
// repository NAME.git under root is at BASE/NAME.git.
func serveGit(t *testing.T, root string) string {
	t.Helper()
	return gittest.Serve(t, root, nil)
}
