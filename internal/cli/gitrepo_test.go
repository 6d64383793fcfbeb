package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/gittest"
)

// gitCmd runs git in dir with a fixed identity and returns its output.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func requireGitBinary(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is not installed")
		}
		t.Skip("git is not installed")
	}
}

// checkAgainstGit compares what readGit reads from the files with what
// git itself answers, and fails when readGit had to ask git.
func checkAgainstGit(t *testing.T, dir string) gitInfo {
	t.Helper()
	r, err := openGitRepo(dir)
	if err != nil {
		t.Fatalf("openGitRepo: %v", err)
	}
	got, err := r.info()
	if err != nil {
		t.Fatalf("reading the repository: %v", err)
	}
	want := readGitCommand(context.Background(), dir)
	if got != want {
		t.Errorf("read from the files:\n %+v\ngit says:\n %+v", got, want)
	}
	return got
}

func TestReadGitMatchesGit(t *testing.T) {
	t.Parallel()
	requireGitBinary(t)
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	// An unborn branch: no commit yet, only the remote.
	gitCmd(t, dir, "remote", "add", "origin", "https://git.example.com/acme/widgets.git")
	if info := checkAgainstGit(t, dir); info.RemoteURL == "" || info.SHA != "" {
		t.Fatalf("unborn branch: %+v", info)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), bytes.Repeat([]byte("some text\n"), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, dir, "add", "-A")
	gitCmd(t, dir, "commit", "-q", "-m", "First line\n\nA body with \"quotes\" and\n\ttabs.\n\n")
	// Loose objects and loose refs.
	if info := checkAgainstGit(t, dir); info.SHA == "" || info.Branch != "main" || info.Tag != "" {
		t.Fatalf("first commit: %+v", info)
	}
	// Tags: a lightweight and an annotated one, loose; git lists the last
	// by name first.
	gitCmd(t, dir, "tag", "v1.0.0")
	gitCmd(t, dir, "tag", "-a", "-m", "release", "v1.1.0")
	if info := checkAgainstGit(t, dir); info.Tag != "v1.1.0" {
		t.Errorf("tag %q, want v1.1.0", info.Tag)
	}
	// A second commit, then everything packed: objects (with deltas) and
	// refs (with peeled tags).
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), bytes.Repeat([]byte("some text\n"), 501), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, dir, "commit", "-q", "-am", "Second")
	gitCmd(t, dir, "tag", "-a", "-m", "two", "v2")
	gitCmd(t, dir, "gc", "-q", "--aggressive")
	if _, err := os.Stat(filepath.Join(dir, ".git", "packed-refs")); err != nil {
		t.Fatalf("gc packed no refs: %v", err)
	}
	if info := checkAgainstGit(t, dir); info.Tag != "v2" || info.Message != "Second" {
		t.Errorf("after gc: %+v", info)
	}
	// A detached HEAD at the first commit, found from a subdirectory.
	gitCmd(t, dir, "checkout", "-q", "v1.0.0")
	sub := filepath.Join(dir, "sub", "dir")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if info := checkAgainstGit(t, sub); info.Branch != "" || !strings.HasPrefix(info.Message, "First line") {
		t.Errorf("detached: %+v", info)
	}
	gitCmd(t, dir, "checkout", "-q", "main")
	// A linked worktree: HEAD in its own git dir, the rest in the common one.
	wt := filepath.Join(t.TempDir(), "wt")
	gitCmd(t, dir, "worktree", "add", "-q", "-b", "feature", wt)
	if info := checkAgainstGit(t, wt); info.Branch != "feature" {
		t.Errorf("worktree: %+v", info)
	}
	// A remote URL written with quotes and a comment, set twice.
	cfg := filepath.Join(dir, ".git", "config")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("[remote \"origin\"]\n\tURL = \"git@example.com:acme/widgets.git\" ; the second\n")
	_ = f.Close()
	if info := checkAgainstGit(t, dir); info.RemoteURL != "git@example.com:acme/widgets.git" {
		t.Errorf("remote %q", info.RemoteURL)
	}
}

// TestReadObjectMatchesGit reads every object of a repository whose packs
// hold deltas and compares each with git cat-file.
func TestReadObjectMatchesGit(t *testing.T) {
	t.Parallel()
	requireGitBinary(t)
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	text := strings.Repeat("a line of text that stays the same\n", 200)
	for i := range 8 {
		if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte(text+strconv.Itoa(i)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		gitCmd(t, dir, "add", "-A")
		gitCmd(t, dir, "commit", "-q", "-m", fmt.Sprintf("change %d\n\n%s", i, strings.Repeat("a long message body ", 50)))
	}
	gitCmd(t, dir, "repack", "-q", "-a", "-d", "-f", "--depth=50", "--window=250")
	r, err := openGitRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "cat-file", "--batch-all-objects", "--batch")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(out))
	n := 0
	for {
		head, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var sha, typ string
		var size int
		if _, err := fmt.Sscanf(head, "%s %s %d", &sha, &typ, &size); err != nil {
			t.Fatalf("cat-file header %q: %v", head, err)
		}
		want := make([]byte, size+1)
		if _, err := io.ReadFull(br, want); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := r.readObject(sha)
		if err != nil {
			t.Fatalf("object %s: %v", sha, err)
		}
		if gotTyp != objTypes[typ] || !bytes.Equal(got, want[:size]) {
			t.Fatalf("object %s: got type %d, %d bytes; git says %s, %d bytes", sha, gotTyp, len(got), typ, size)
		}
		n++
	}
	if n < 24 {
		t.Fatalf("read %d objects, want every commit, tree and blob", n)
	}
	deltas := gitCmd(t, dir, "verify-pack", "-v", filepath.Join(dir, ".git", "objects", "pack", mustGlob(t, filepath.Join(dir, ".git", "objects", "pack", "*.idx"))))
	if !strings.Contains(deltas, "chain length = ") {
		t.Errorf("the pack holds no deltas; the test does not exercise them:\n%s", deltas)
	}
}

func mustGlob(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("nothing matches %s: %v", pattern, err)
	}
	return filepath.Base(m[0])
}

func TestReadGitOutsideRepository(t *testing.T) {
	t.Parallel()
	if _, err := openGitRepo(t.TempDir()); !errors.Is(err, errNoRepo) {
		t.Fatalf("openGitRepo in a plain directory: %v, want errNoRepo", err)
	}
}

// TestExecStartsNoProcessBeforeTheStep runs ferry exec in a git checkout
// with a git on PATH that records every call: neither reading the
// checkout nor anything else before the first step may start git.
// BenchmarkProcessesBeforeFirstStep counts every program with strace.
func TestExecStartsNoProcessBeforeTheStep(t *testing.T) {
	requireGitBinary(t)
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	gitCmd(t, dir, "remote", "add", "origin", "https://git.example.com/acme/widgets.git")
	yml := "kind: pipeline\ntype: exec\nname: p\nsteps:\n- name: s\n  commands: [echo \"$DRONE_REPO $DRONE_BRANCH $DRONE_COMMIT_SHA\"]\n"
	if err := os.WriteFile(filepath.Join(dir, ".ferry.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, dir, "add", "-A")
	gitCmd(t, dir, "commit", "-q", "-m", "one")
	gitCmd(t, dir, "gc", "-q") // a packed commit, as in a fresh clone
	sha := strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD"))

	calls := gittest.RecordArgs(t)
	for _, flags := range []ExecOptions{{}, {Commit: sha, Branch: "main"}} {
		var out bytes.Buffer
		o := flags
		o.Dir, o.Backend, o.Stdout, o.Stderr = dir, "local", &out, &out
		if code := Exec(context.Background(), o); code != 0 {
			t.Fatalf("exec exited %d:\n%s", code, out.String())
		}
		if want := "acme/widgets main " + sha; !strings.Contains(out.String(), want) {
			t.Errorf("the step printed:\n%s\nwant %q", out.String(), want)
		}
	}
	if c := calls(); c != "" {
		t.Errorf("ferry exec started git:\n%s", c)
	}
}
