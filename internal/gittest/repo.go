package gittest

// Repositories for tests: a working repository, optionally with a bare
// origin that it pushes to. Git runs with a fixed identity and without the
// user's or the system's configuration, so tests behave the same on every
// machine.

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The identity of every commit.
const (
	AuthorName  = "Ada Lovelace"
	AuthorEmail = "ada@example.com"
)

// Repo is a git repository with a working tree.
type Repo struct {
	t testing.TB
	// Dir is the working tree.
	Dir string
	// Origin is the bare repository that Push pushes to, or "".
	Origin string
}

// Require skips the test when git is missing, or fails it when CI=true.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		skipOrFail(t, "git is not on PATH: %v", err)
	}
}

// New creates an empty repository (branch main) in dir, creating dir.
func New(t testing.TB, dir string) *Repo {
	t.Helper()
	Require(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Repo{t: t, Dir: dir}
	r.Git("init", "--quiet", "--initial-branch=main")
	return r
}

// NewWithOrigin creates a bare repository root/NAME.git and a working
// clone of it (in a temporary directory) whose first commit, on main,
// holds files and is pushed.
func NewWithOrigin(t testing.TB, root, name string, files map[string]string) *Repo {
	t.Helper()
	r := New(t, filepath.Join(t.TempDir(), "work"))
	r.Origin = filepath.Join(root, name+".git")
	run(t, "", "init", "--quiet", "--bare", "--initial-branch=main", r.Origin)
	r.Git("remote", "add", "origin", r.Origin)
	r.Commit("Initial commit", files)
	r.Push("main")
	return r
}

// URL is the file:// URL of the origin, or of the working repository when
// it has none.
func (r *Repo) URL() string {
	if r.Origin != "" {
		return "file://" + r.Origin
	}
	return "file://" + r.Dir
}

// Git runs git in the working tree and returns its trimmed output; it
// fails the test when git fails.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	return run(r.t, r.Dir, args...)
}

// Commit writes files (creating their directories) and commits everything
// with message; it returns the new commit's SHA. It does not push.
func (r *Repo) Commit(message string, files map[string]string) string {
	r.t.Helper()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(r.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.Git("add", "--all")
	r.Git("commit", "--quiet", "--allow-empty", "-m", message)
	return r.Git("rev-parse", "HEAD")
}

// Push pushes refspecs to the origin.
func (r *Repo) Push(refspecs ...string) {
	r.t.Helper()
	r.Git(append([]string{"push", "--quiet", "origin"}, refspecs...)...)
}

// run runs git in dir (the current directory when empty).
func run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME="+AuthorName, "GIT_AUTHOR_EMAIL="+AuthorEmail,
		"GIT_COMMITTER_NAME="+AuthorName, "GIT_COMMITTER_EMAIL="+AuthorEmail,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
