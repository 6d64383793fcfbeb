package agent

import (
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/rpc"
)

// checkoutGit runs git in a checkout and returns its trimmed output.
func checkoutGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCloneChecksOutExactCommit(t *testing.T) {
	// A directory name that needs quoting in git's config file.
	repo := gittest.New(t, filepath.Join(t.TempDir(), `re"po\ x`))
	first := repo.Commit("commit", map[string]string{"a.txt": "one"})
	second := repo.Commit("commit", map[string]string{"a.txt": "two"})
	repo.Git("update-ref", "refs/pull/1/head", second)
	repo.Git("branch", "feature", first)
	// The branch moves on past the commit to build, beyond depth 1.
	repo.Git("tag", "-a", "-m", "Release 1", "v1", first)
	repo.Git("tag", "light", second)
	repo.Commit("commit", map[string]string{"a.txt": "three"})
	repo.Commit("commit", map[string]string{"a.txt": "four"})

	tests := []struct {
		name  string
		clone rpc.Clone
		want  string // commit checked out
		file  string // content of a.txt
	}{
		{"tip", rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", SHA: repo.Git("rev-parse", "HEAD"), Depth: 1}, repo.Git("rev-parse", "HEAD"), "four"},
		{"behind depth", rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", SHA: second, Depth: 1}, second, "two"},
		{"full history", rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", SHA: first}, first, "one"},
		{"sha only", rpc.Clone{URL: repo.URL(), SHA: first, Depth: 1}, first, "one"},
		{"plain path", rpc.Clone{URL: repo.Dir, Ref: "main", SHA: second, Depth: 2}, second, "two"},
		{"annotated tag", rpc.Clone{URL: repo.URL(), Ref: "refs/tags/v1", SHA: first, Depth: 1}, first, "one"},
		{"lightweight tag", rpc.Clone{URL: repo.URL(), Ref: "refs/tags/light", SHA: second}, second, "two"},
		{"pull request", rpc.Clone{URL: repo.URL(), Ref: "refs/pull/1/head", SHA: second, Depth: 1}, second, "two"},
		{"no sha", rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", Depth: 1}, repo.Git("rev-parse", "HEAD"), "four"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if err := clone(context.Background(), out, tt.clone); err != nil {
				t.Fatal(err)
			}
			if got := checkoutGit(t, out, "rev-parse", "HEAD"); got != tt.want {
				t.Errorf("HEAD is %s, want %s", got, tt.want)
			}
			data, err := os.ReadFile(filepath.Join(out, "a.txt"))
			if err != nil || string(data) != tt.file {
				t.Errorf("a.txt holds %q (%v), want %q", data, err, tt.file)
			}
			// HEAD is detached, as after `git checkout --detach`.
			if err := exec.Command("git", "-C", out, "symbolic-ref", "-q", "HEAD").Run(); err == nil {
				t.Errorf("HEAD is a branch (%s), want it detached", checkoutGit(t, out, "symbolic-ref", "HEAD"))
			}
			if got := checkoutGit(t, out, "remote", "get-url", "origin"); got != tt.clone.URL {
				t.Errorf("origin is %q, want %q", got, tt.clone.URL)
			}
			if status := checkoutGit(t, out, "status", "--porcelain"); status != "" {
				t.Errorf("the checkout is not clean:\n%s", status)
			}
			// Steps may fetch more of the repository through origin.
			checkoutGit(t, out, "fetch", "--quiet", "origin")
			if got := checkoutGit(t, out, "rev-parse", "origin/main"); got != repo.Git("rev-parse", "HEAD") {
				t.Errorf("origin/main is %s after a fetch, want the tip", got)
			}
			if got := checkoutGit(t, out, "rev-parse", "origin/feature"); got != first {
				t.Errorf("origin/feature is %s after a fetch, want %s: origin must fetch every branch", got, first)
			}
			if tt.clone.Depth > 0 && tt.name == "tip" {
				if n := checkoutGit(t, out, "rev-list", "--count", tt.want); n != "1" {
					t.Errorf("depth 1 clone holds %s commits", n)
				}
			}
		})
	}
}

func TestCloneUnknownCommitFails(t *testing.T) {
	repo := gittest.New(t, t.TempDir())
	repo.Commit("commit", map[string]string{"a.txt": "one"})
	err := clone(context.Background(), t.TempDir(), rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", SHA: strings.Repeat("1", 40), Depth: 1})
	if err == nil || !strings.Contains(err.Error(), "checking out") {
		t.Fatalf("clone of a commit the repository lacks: %v, want a checkout error", err)
	}
}

// TestCloneWithCredential clones from git http-backend behind HTTP basic
// authentication: without the job's credential the clone fails saying
// so; with it, it succeeds, and the token is neither on any git command
// line nor in the checkout's files.
func TestCloneWithCredential(t *testing.T) {
	args := gittest.RecordArgs(t) // sets PATH: not parallel
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a.txt": "private"})
	root := t.TempDir()
	repo.Git("clone", "--quiet", "--bare", repo.Dir, filepath.Join(root, "private.git"))
	auth := &gittest.BasicAuth{User: "ci-bot", Password: "tok-" + strings.Repeat("5ec", 8)}
	url := gittest.Serve(t, root, auth.Wrap) + "/private.git"
	c := rpc.Clone{URL: url, Ref: "refs/heads/main", SHA: sha, Depth: 1}

	err := clone(context.Background(), t.TempDir(), c)
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("clone without the credential: %v; want git's authentication failure", err)
	}
	if auth.Refused.Load() == 0 {
		t.Fatal("the git server refused nothing: the test does not test authentication")
	}

	c.Credential = &gitauth.Credential{Username: auth.User, Password: auth.Password}
	out := t.TempDir()
	if err := clone(context.Background(), out, c); err != nil {
		t.Fatalf("clone with the credential: %v", err)
	}
	if got := checkoutGit(t, out, "rev-parse", "HEAD"); got != sha {
		t.Errorf("HEAD = %s, want %s", got, sha)
	}
	if auth.Admitted.Load() == 0 {
		t.Error("the git server admitted no request")
	}
	basic := base64.StdEncoding.EncodeToString([]byte(auth.User + ":" + auth.Password))
	recorded := args()
	if !strings.Contains(recorded, "clone") {
		t.Fatalf("recorded git command lines %q lack the clone: the recording does not work", recorded)
	}
	if strings.Contains(recorded, auth.Password) || strings.Contains(recorded, basic) {
		t.Errorf("a git command line holds the token:\n%s", recorded)
	}
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), auth.Password) || strings.Contains(string(data), basic) {
			t.Errorf("%s in the checkout holds the token", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCloneWithSSHKey clones over ssh:// from a real sshd with the job's
// deploy key, checking the server's host key against the known_hosts sent
// with it; without the key the clone is refused.
func TestCloneWithSSHKey(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // not parallel
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a.txt": "private"})
	bare := filepath.Join(t.TempDir(), "private.git")
	repo.Git("clone", "--quiet", "--bare", repo.Dir, bare)
	srv := gittest.StartSSH(t)
	c := rpc.Clone{URL: srv.URL(bare), Ref: "refs/heads/main", SHA: sha, Depth: 1,
		Credential: &gitauth.Credential{SSHKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n", KnownHosts: srv.KnownHosts}}
	if err := clone(context.Background(), t.TempDir(), c); err == nil {
		t.Fatal("clone with a key the server does not know succeeded")
	}
	c.Credential.SSHKey = srv.Key
	out := t.TempDir()
	if err := clone(context.Background(), out, c); err != nil {
		t.Fatalf("clone with the deploy key: %v", err)
	}
	if got := checkoutGit(t, out, "rev-parse", "HEAD"); got != sha {
		t.Errorf("HEAD = %s, want %s", got, sha)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the clone left %v in TMPDIR; the key's directory must be removed", entries)
	}
}
