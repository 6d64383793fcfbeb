package forge

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// requireGit skips a test when git is missing, and fails it under CI=true.
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git is required: %v", err)
		}
		t.Skipf("git is not installed: %v", err)
	}
}

// origin is a real repository: a bare "server" copy, and a working copy
// that commits and pushes to it.
type origin struct {
	t    *testing.T
	root string // GIT_PROJECT_ROOT for git http-backend
	bare string // root/repo.git
	work string
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	requireGit(t)
	dir := t.TempDir()
	o := &origin{t: t, root: filepath.Join(dir, "srv"), work: filepath.Join(dir, "work")}
	o.bare = filepath.Join(o.root, "repo.git")
	o.run("", "init", "--quiet", "--bare", o.bare)
	o.run("", "init", "--quiet", "--initial-branch=main", o.work)
	o.run(o.work, "remote", "add", "origin", o.bare)
	return o
}

// run runs git in dir and returns its trimmed output.
func (o *origin) run(dir string, args ...string) string {
	o.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Charles Babbage", "GIT_COMMITTER_EMAIL=charles@example.com",
		"GIT_AUTHOR_DATE=2026-11-20T10:00:00+01:00", "GIT_COMMITTER_DATE=2026-11-20T10:05:00+01:00")
	out, err := cmd.CombinedOutput()
	if err != nil {
		o.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content deletes the file), commits them on
// the current branch and returns the commit.
func (o *origin) commit(msg string, files map[string]string) string {
	o.t.Helper()
	for name, content := range files {
		p := filepath.Join(o.work, name)
		if content == "" {
			o.run(o.work, "rm", "--quiet", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			o.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			o.t.Fatal(err)
		}
		o.run(o.work, "add", name)
	}
	o.run(o.work, "commit", "--quiet", "--allow-empty", "-m", msg)
	return o.run(o.work, "rev-parse", "HEAD")
}

// push pushes refspecs to the bare repository.
func (o *origin) push(refspecs ...string) {
	o.t.Helper()
	o.run(o.work, append([]string{"push", "--quiet", "--force", "origin"}, refspecs...)...)
}

// refs lists the bare repository's heads and tags, peeled, as git sees them.
func (o *origin) refs() map[string]string {
	o.t.Helper()
	refs := map[string]string{}
	out := o.run(o.bare, "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)", "refs/heads", "refs/tags")
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			refs[f[0]] = f[len(f)-1]
		}
	}
	return refs
}

func (o *origin) fileURL() string { return "file://" + o.bare }

// serveHTTP serves the origin over smart HTTP with git http-backend and
// returns the repository's URL. wrap, if set, wraps the handler.
func (o *origin) serveHTTP(wrap func(http.Handler) http.Handler) string {
	o.t.Helper()
	return gittest.Serve(o.t, o.root, wrap) + "/repo.git"
}

// seed makes a history: main with two commits, an annotated and a
// lightweight tag, and a feature branch. It returns the first and second
// commits of main.
func (o *origin) seed() (first, second string) {
	first = o.commit("Add the pipeline", map[string]string{".drone.yml": "kind: pipeline\nname: v1\n", "README.md": "hello\n"})
	second = o.commit("Rename the pipeline\n\nIt is the default one.", map[string]string{".drone.yml": "kind: pipeline\nname: v2\n"})
	o.run(o.work, "tag", "-a", "v1.0.0", "-m", "Release 1.0.0", first)
	o.run(o.work, "tag", "light", second)
	o.run(o.work, "branch", "feature", first)
	o.push("main", "feature", "v1.0.0", "light")
	return first, second
}

// transports runs f once over file:// and once over HTTP.
func transports(t *testing.T, f func(t *testing.T, o *origin, url string)) {
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		o := newOrigin(t)
		f(t, o, o.fileURL())
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		o := newOrigin(t)
		f(t, o, o.serveHTTP(nil))
	})
}

func TestLsRemote(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, o *origin, url string) {
		first, second := o.seed()
		got, err := LsRemote(context.Background(), url)
		if err != nil {
			t.Fatalf("LsRemote: %v", err)
		}
		want := map[string]string{
			"refs/heads/main":    second,
			"refs/heads/feature": first,
			"refs/tags/v1.0.0":   first, // the annotated tag, peeled to its commit
			"refs/tags/light":    second,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LsRemote = %v\nwant %v", got, want)
		}
		if !reflect.DeepEqual(got, o.refs()) {
			t.Errorf("LsRemote = %v, git for-each-ref says %v", got, o.refs())
		}
	})
}

func TestLsRemoteErrors(t *testing.T) {
	t.Parallel()
	requireGit(t)
	ctx := context.Background()
	if _, err := LsRemote(ctx, "file://"+filepath.Join(t.TempDir(), "nope.git")); err == nil {
		t.Error("LsRemote of a missing repository succeeded")
	}
	// A URL that git would read as an option must not run anything.
	marker := filepath.Join(t.TempDir(), "pwned")
	_, err := LsRemote(ctx, "--upload-pack=touch "+marker)
	if err == nil {
		t.Error("LsRemote accepted an option as URL")
	}
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Fatal("LsRemote ran a command given as URL")
	}
	if _, err := ReadFileAt(ctx, "-oProxyCommand=touch "+marker, strings.Repeat("a", 40), ".drone.yml"); err == nil {
		t.Error("ReadFileAt accepted an option as URL")
	}
	if _, err := ReadFileAt(ctx, "file:///x", "--all", ".drone.yml"); err == nil {
		t.Error("ReadFileAt accepted an option as sha")
	}
}

func TestLsRemoteRespectsContext(t *testing.T) {
	t.Parallel()
	requireGit(t)
	// A server that accepts the request and never answers. The context is
	// cancelled once git's request has reached it, so the test does not
	// depend on how long git takes to start.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}))
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		_, err := LsRemote(ctx, srv.URL+"/repo.git")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if ctx.Err() == nil {
			t.Fatal("LsRemote returned before git reached the server")
		}
	case <-time.After(2 * time.Minute):
		// Without the context git would wait for the server forever.
		t.Fatal("LsRemote still runs 2 minutes after its context was cancelled")
	}
}

func TestLsRemoteBasicAuth(t *testing.T) {
	t.Parallel()
	const user, password = "ferry-bot", "s3cret-t0ken"
	o := newOrigin(t)
	_, second := o.seed()
	gate := &gittest.BasicAuth{User: user, Password: password}
	url := o.serveHTTP(gate.Wrap)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Without credentials git fails at once instead of prompting.
	if _, err := LsRemote(ctx, url); err == nil {
		t.Fatal("LsRemote without credentials succeeded")
	} else if !errors.Is(err, ErrAuth) {
		t.Errorf("LsRemote without credentials: %v, want an error matching ErrAuth", err)
	}
	if gate.Refused.Load() == 0 {
		t.Fatal("the server never refused a request")
	}
	if _, err := LsRemote(ctx, url, WithBasicAuth(user, "wrong")); err == nil {
		t.Fatal("LsRemote with a wrong password succeeded")
	} else if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("LsRemote with a wrong password: %v, want an error matching ErrAuth, without the password", err)
	}
	// A missing repository is not an authentication problem.
	if _, err := LsRemote(ctx, o.fileURL()+"-missing"); err == nil || errors.Is(err, ErrAuth) {
		t.Errorf("LsRemote of a missing repository: %v, want an error that is not ErrAuth", err)
	}
	refs, err := LsRemote(ctx, url, WithBasicAuth(user, password))
	if err != nil {
		t.Fatalf("LsRemote with credentials: %v", err)
	}
	if refs["refs/heads/main"] != second {
		t.Errorf("refs = %v", refs)
	}
	data, err := ReadFileAt(ctx, url, second, ".drone.yml", WithBasicAuth(user, password))
	if err != nil || string(data) != "kind: pipeline\nname: v2\n" {
		t.Fatalf("ReadFileAt with credentials = %q, %v", data, err)
	}

	// A mirror keeps the password out of its files.
	m := NewMirror(filepath.Join(t.TempDir(), "m.git"), url, WithBasicAuth(user, password))
	if err := m.Fetch(ctx); err != nil {
		t.Fatalf("Mirror.Fetch with credentials: %v", err)
	}
	err = filepath.WalkDir(m.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), password) || strings.Contains(string(data), "ZmVycnktYm90OnMzY3JldC10MGtlbg") {
			t.Errorf("%s holds the credentials", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiffRefs(t *testing.T) {
	const (
		a  = "1111111111111111111111111111111111111111"
		b  = "2222222222222222222222222222222222222222"
		c  = "3333333333333333333333333333333333333333"
		z  = "0000000000000000000000000000000000000000"
		a2 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" // SHA-256
	)
	old := map[string]string{
		"refs/heads/main":    a,
		"refs/heads/stale":   a,
		"refs/heads/gone":    b,
		"refs/tags/v1":       a,
		"refs/tags/moved":    a,
		"refs/tags/gone-tag": b,
	}
	new := map[string]string{
		"refs/heads/main":    b, // moved
		"refs/heads/stale":   a, // unchanged
		"refs/heads/new":     a, // new, at an existing commit
		"refs/tags/v1":       a, // unchanged
		"refs/tags/moved":    c, // re-pointed tag
		"refs/tags/v2":       c, // new tag
		"refs/heads/sha256":  a2,
		"refs/pull/1/head":   c, // neither branch nor tag
		"refs/notes/commits": c,
	}
	want := []RefChange{
		{Event: EventPush, Ref: "refs/heads/main", Before: a, After: b},
		{Event: EventPush, Ref: "refs/heads/new", Before: z, After: a},
		{Event: EventPush, Ref: "refs/heads/sha256", Before: strings.Repeat("0", 64), After: a2},
		{Event: EventTag, Ref: "refs/tags/moved", Before: a, After: c},
		{Event: EventTag, Ref: "refs/tags/v2", Before: z, After: c},
	}
	if got := DiffRefs(old, new); !reflect.DeepEqual(got, want) {
		t.Errorf("DiffRefs =\n%v\nwant\n%v", got, want)
	}
	if got := DiffRefs(new, new); len(got) != 0 {
		t.Errorf("DiffRefs of equal listings = %v, want nothing", got)
	}
	if got := DiffRefs(nil, map[string]string{"refs/heads/main": a}); len(got) != 1 || got[0].Before != z {
		t.Errorf("DiffRefs from nothing = %v, want main as new", got)
	}

	h := want[0].Hook(Repo{Slug: "o/r"}, &Commit{Message: "msg", Author: Signature{Name: "Ada", Email: "ada@example.com"}})
	if h.Event != EventPush || h.Branch != "main" || h.SourceBranch != "main" || h.SHA != b || h.Before != a ||
		h.Message != "msg" || h.Author.Email != "ada@example.com" || h.Repo.Slug != "o/r" {
		t.Errorf("RefChange.Hook = %+v", h)
	}
	if h := want[4].Hook(Repo{}, nil); h.Event != EventTag || h.Branch != "" || h.Ref != "refs/tags/v2" {
		t.Errorf("tag RefChange.Hook = %+v", h)
	}
}

func TestReadFileAt(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, o *origin, url string) {
		first, second := o.seed()
		ctx := context.Background()
		// An old commit no branch points at, and a tip.
		for sha, want := range map[string]string{first: "kind: pipeline\nname: v1\n", second: "kind: pipeline\nname: v2\n"} {
			got, err := ReadFileAt(ctx, url, sha, ".drone.yml")
			if err != nil {
				t.Fatalf("ReadFileAt(%s): %v", sha[:7], err)
			}
			if string(got) != want {
				t.Errorf("ReadFileAt(%s) = %q, want %q", sha[:7], got, want)
			}
		}
		_, err := ReadFileAt(ctx, url, second, ".ferry.yml")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
		}
		if _, err := ReadFileAt(ctx, url, second, "/"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("empty path: err = %v", err)
		}
		o.commit("Add a directory", map[string]string{"ci/x.yml": "x\n"})
		o.push("main")
		tip := o.refs()["refs/heads/main"]
		if _, err := ReadFileAt(ctx, url, tip, "ci"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("directory: err = %v, want an error that is not ErrNotExist", err)
		}
		unknown := strings.Repeat("ab", 20)
		if _, err := ReadFileAt(ctx, url, unknown, ".drone.yml"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unknown commit: err = %v, want an error that is not ErrNotExist", err)
		}
	})
}

// TestReadFileAtFallsBackToFullFetch reads an old commit from a server
// that refuses to hand out a commit by id: git protocol v0 over HTTP.
func TestReadFileAtFallsBackToFullFetch(t *testing.T) {
	o := newOrigin(t)
	first, _ := o.seed()
	o.run(o.work, "branch", "--delete", "--force", "feature")
	o.run(o.work, "push", "--quiet", "origin", "--delete", "feature", "v1.0.0")
	// first is now reachable from main only, not a tip.
	url := o.serveHTTP(nil)
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "protocol.version")
	t.Setenv("GIT_CONFIG_VALUE_0", "0")

	// The precondition: a fetch by id is refused.
	probe := t.TempDir()
	o.run(probe, "init", "--quiet", "--bare")
	cmd := exec.Command("git", "fetch", "--depth=1", url, first)
	cmd.Dir = probe
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the server handed out an unadvertised commit; the fallback is not exercised:\n%s", out)
	}

	got, err := ReadFileAt(context.Background(), url, first, ".drone.yml")
	if err != nil {
		t.Fatalf("ReadFileAt: %v", err)
	}
	if string(got) != "kind: pipeline\nname: v1\n" {
		t.Errorf("ReadFileAt = %q", got)
	}
}

// TestReadFileAtSHA256 reads from a repository using SHA-256 object names.
func TestReadFileAtSHA256(t *testing.T) {
	t.Parallel()
	requireGit(t)
	o := &origin{t: t, work: filepath.Join(t.TempDir(), "work")}
	o.run("", "init", "--quiet", "--object-format=sha256", "--initial-branch=main", o.work)
	sha := o.commit("Add the pipeline", map[string]string{".drone.yml": "kind: pipeline\n"})
	if len(sha) != 64 {
		t.Fatalf("commit %s is not a SHA-256 name", sha)
	}
	url := "file://" + o.work
	refs, err := LsRemote(context.Background(), url)
	if err != nil || refs["refs/heads/main"] != sha {
		t.Fatalf("LsRemote = %v, %v", refs, err)
	}
	data, err := ReadFileAt(context.Background(), url, sha, ".drone.yml")
	if err != nil || string(data) != "kind: pipeline\n" {
		t.Fatalf("ReadFileAt = %q, %v", data, err)
	}
}

// TestGitRefusesRemoteHelpers is part of finding 6 of issue 7: the ext::
// transport runs a command. ferry refuses such URLs, and the git it runs
// refuses them too, even where git's configuration allows every protocol.
func TestGitRefusesRemoteHelpers(t *testing.T) {
	requireGit(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "protocol.allow")
	t.Setenv("GIT_CONFIG_VALUE_0", "always")
	ext := "ext::touch " + marker
	if _, err := LsRemote(context.Background(), ext); err == nil || !strings.Contains(err.Error(), "remote helper") {
		t.Errorf("LsRemote(%q) = %v; want a refusal naming the remote helper", ext, err)
	}
	// Past that check, git itself refuses.
	if out, err := newGitOptions(nil).git(context.Background(), "", "", nil, "ls-remote", ext); err == nil {
		t.Errorf("git ls-remote %q succeeded: %s", ext, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("git ran the ext:: command")
	}
}
