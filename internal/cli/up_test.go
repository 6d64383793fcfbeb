package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/database"
	"github.com/ferryci/ferry/internal/testimage"
)

// TestUpBuildsLocalRepo runs `ferry up --once` in-process against a real git
// checkout: the embedded server and agent build it and print its log.
func TestUpBuildsLocalRepo(t *testing.T) {
	repo := t.TempDir()
	yml := "kind: pipeline\ntype: exec\nname: hello\nsteps:\n- name: greet\n  commands: [echo hello from $DRONE_REPO]\n- name: fail-if-asked\n  commands: [test ! -f fail]\n- name: who\n  commands: [id -u]\n"
	if err := os.WriteFile(filepath.Join(repo, ".ferry.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Up(ctx, cli.UpOptions{Server: cfg, Repos: []string{repo}, PollInterval: time.Hour, Once: true, Stdout: &out,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if code != 0 {
		t.Fatalf("exit code %d, output:\n%s", code, out.String())
	}
	want := "[hello/greet] hello from local/" + strings.ToLower(filepath.Base(repo))
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "build #1: success") {
		t.Fatalf("output lacks %q or the final status:\n%s", want, out.String())
	}
	// Run by root, ferry up runs host steps as nobody (docs/security.md).
	who := fmt.Sprintf("[hello/who] %d\n", os.Geteuid())
	if os.Geteuid() == 0 {
		who = "[hello/who] 65534\n"
	}
	if !strings.Contains(out.String(), who) {
		t.Errorf("output lacks %q:\n%s", who, out.String())
	}
}

// TestUpRefusesSharedDataDir checks that ferry up neither closes a shared
// directory given as its data dir nor runs steps inside its data dir.
func TestUpRefusesSharedDataDir(t *testing.T) {
	// A checkout to build, so that up gets as far as the data dir.
	repo := gitRepo(t, map[string]string{".ferry.yml": "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo hi]\n"})
	for _, dir := range []string{os.TempDir(), "/"} {
		before, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := server.DefaultConfig()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = dir
		code := cli.Up(context.Background(), cli.UpOptions{Server: cfg, Repos: []string{repo}, Once: true, Stdout: io.Discard, Stderr: io.Discard,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if code == 0 {
			t.Errorf("ferry up --data-dir %s: exit 0", dir)
		}
		if after, err := os.Stat(dir); err != nil || after.Mode() != before.Mode() {
			t.Errorf("ferry up --data-dir %s changed its mode from %s: %v %v", dir, before.Mode(), after.Mode(), err)
		}
	}
}

// gitRepo makes a git checkout in a new temporary directory holding the
// given files, committed on branch main.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q", "-b", "main")
	commitAll(t, repo, "init")
	return repo
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitAll(t *testing.T, dir, msg string) string {
	t.Helper()
	git(t, dir, "add", ".")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "--allow-empty", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// upOnce runs `ferry up --once` in-process on repo with its state in
// dataDir, and returns the exit code, stdout and stderr.
func upOnce(t *testing.T, dataDir string, repos ...string) (int, string, string) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Up(ctx, cli.UpOptions{Server: cfg, Repos: repos, PollInterval: time.Hour, Once: true, Stdout: &out, Stderr: &errb,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return code, out.String(), errb.String()
}

// pushOnly is a pipeline that, as Drone's usual pattern, builds pushes only.
const pushOnly = "kind: pipeline\ntype: exec\nname: ci\ntrigger:\n  event: [push]\nsteps:\n- name: show\n  commands: [echo event=$DRONE_BUILD_EVENT, exit 3]\n"

// TestUpBuildsHeadAsPushOnce checks that `ferry up` builds the checkout's
// head as a push of its branch (so `trigger: event: [push]` matches), with
// the summary's exit-code column, that a restart does not build the same
// commit again, and that the poller's baseline moves to the commit built,
// so the poller does not build it a second time either.
func TestUpBuildsHeadAsPushOnce(t *testing.T) {
	repo := gitRepo(t, map[string]string{".ferry.yml": pushOnly})
	data := t.TempDir()
	code, out, errs := upOnce(t, data, repo)
	if code != cli.ExitFailed {
		t.Fatalf("exit code %d, want 1 (the step exits 3); stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"building commit ", " of main as a push (build #1)", "[ci/show] event=push",
		"PIPELINE  STEP  STATUS   EXIT  DURATION", "ci        show  failure  3"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "[ci/show] event=push"), strings.Index(out, "build #1: failure"); j < i {
		t.Fatalf("the final status comes before the log:\n%s", out)
	}

	// The poller has seen the first commit (as its first poll would
	// record); a second commit is made while ferry is down.
	st, err := database.Open(context.Background(), filepath.Join(data, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Repos.GetBySlug(context.Background(), "local/"+strings.ToLower(filepath.Base(repo)))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	first := git(t, repo, "rev-parse", "HEAD")
	if err := st.Repos.SavePollRefs(context.Background(), r.ID, map[string]string{"refs/heads/main": first}); err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.Close()
	second := commitAll(t, repo, "second")

	// The poller may see the commit first, at its first poll of this
	// start; either way the commit is built once, as build #2, and
	// followed.
	if code, out, errs = upOnce(t, data, repo); code != cli.ExitFailed || !strings.Contains(out, "as a push (build #2)") ||
		!strings.Contains(out, "build #2: failure") {
		t.Fatalf("restart after a commit: exit code %d, want build #2; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if code, out, errs = upOnce(t, data, repo); code != cli.ExitFailed ||
		!strings.Contains(out, "was built already (build #2, failure); not building it again") || strings.Contains(out, "build #3") {
		t.Fatalf("restart without a commit: exit code %d, want build #2 reported again; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	st, err = database.Open(context.Background(), filepath.Join(data, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	refs, err := st.Repos.PollRefs(context.Background(), r.ID)
	if err != nil || refs["refs/heads/main"] != second {
		t.Fatalf("the poller's baseline is %v (%v), want main at %s: the poller would build it again", refs, err, second)
	}
	builds, err := st.Builds.List(context.Background(), r.ID, store.BuildFilter{})
	if err != nil || len(builds) != 2 {
		t.Fatalf("%d builds (%v), want 2", len(builds), err)
	}
	for _, b := range builds {
		if b.Event != store.EventPush {
			t.Errorf("build #%d has event %q, want push", b.Number, b.Event)
		}
	}
}

// TestUpSaysWhatItBuilds checks the refusals and warnings of `ferry up`: a
// directory that is not a git checkout, or has no pipeline file, is
// refused with exit code 2 before anything starts; uncommitted edits to
// the pipeline file are named as not built.
func TestUpSaysWhatItBuilds(t *testing.T) {
	plain := t.TempDir()
	// Even when the temporary directory lies inside a git checkout.
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(plain))
	if code, out, errs := upOnce(t, t.TempDir(), plain); code != cli.ExitInvalid || !strings.Contains(errs, "is not a git repository") {
		t.Fatalf("not a checkout: exit code %d, want 2 and the reason; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	empty := gitRepo(t, map[string]string{"README": "x"})
	if code, out, errs := upOnce(t, t.TempDir(), empty); code != cli.ExitInvalid || !strings.Contains(errs, "has no pipeline file") {
		t.Fatalf("no pipeline file: exit code %d, want 2 and the reason; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	repo := gitRepo(t, map[string]string{".ferry.yml": "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo committed]\n"})
	if err := os.WriteFile(filepath.Join(repo, ".ferry.yml"), []byte("kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo edited]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := upOnce(t, t.TempDir(), repo)
	if code != 0 || !strings.Contains(out, "uncommitted changes to .ferry.yml are not built") || !strings.Contains(out, "[ci/a] committed") {
		t.Fatalf("edited config: exit code %d; want the committed file built and the edit named; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestUpKeepsStateOutsideTheCheckout checks that with no --data-dir the
// state goes to $XDG_STATE_HOME/ferry/NAME-HASH, that the checkout is left
// clean (git status shows nothing), and that the admin token is the last
// thing printed and can be minted again from the data directory.
func TestUpKeepsStateOutsideTheCheckout(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	repo := gitRepo(t, map[string]string{".ferry.yml": "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo hi]\n"})
	code, out, errs := upOnce(t, "", repo)
	if code != 0 {
		t.Fatalf("exit code %d; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if st := git(t, repo, "status", "--porcelain", "--ignored"); st != "" {
		t.Fatalf("ferry up left files in the checkout:\n%s", st)
	}
	want, err := cli.DefaultUpDataDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, filepath.Join(state, "ferry", filepath.Base(repo)+"-")) || !strings.Contains(out, "(data in "+want+")") {
		t.Fatalf("data dir %s is not under $XDG_STATE_HOME/ferry, or not the one used:\n%s", want, out)
	}
	for _, f := range []string{"ferry.db", "secret.key"} {
		if _, err := os.Stat(filepath.Join(want, f)); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-3], "admin API token (shown once; keep it): ferry_") ||
		!strings.Contains(lines[len(lines)-1], "ferry server admin-token --data-dir "+want) {
		t.Fatalf("the admin token is not the last thing printed:\n%s", out)
	}

	cfg := server.DefaultConfig()
	cfg.DataDir = want
	tok, err := server.MintAdminToken(context.Background(), cfg, "again")
	if err != nil {
		t.Fatal(err)
	}
	st, err := database.Open(context.Background(), filepath.Join(want, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tk, err := st.Tokens.FindByHash(context.Background(), store.HashToken(tok))
	if err != nil {
		t.Fatalf("the minted token is not stored: %v", err)
	}
	if u, err := st.Users.Get(context.Background(), tk.UserID); err != nil || !u.Admin {
		t.Fatalf("the minted token belongs to %+v (%v), want an administrator", u, err)
	}
}

// TestDemoLeavesNothingBehind runs scripts/demo.sh (what `make run` runs)
// with its own TMPDIR: the build succeeds, and the temporary directory is
// empty afterwards.
func TestDemoLeavesNothingBehind(t *testing.T) {
	bin := buildFerry(t)
	tmp := enterableTempDir(t)
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "FERRY_BIN="+bin, "FERRY_ADDR=127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "build #1: success") {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	// The server and its data dir are gone when the demo ends: no token
	// to keep, no data dir to make another in.
	if strings.Contains(string(out), "admin API token") || strings.Contains(string(out), "admin-token --data-dir") {
		t.Errorf("demo.sh prints an admin token for a server it removes:\n%s", out)
	}
	checkEmpty(t, tmp, "demo.sh")
}

// TestUpLeavesNoWorkDir checks that a clean `ferry up --once` removes the
// agent's work dir it made in TMPDIR ($TMPDIR/ferry-agent), so that running
// it (or the tests that run it) leaves nothing behind there.
func TestUpLeavesNoWorkDir(t *testing.T) {
	tmp := enterableTempDir(t)
	t.Setenv("TMPDIR", tmp)
	repo := gitRepo(t, map[string]string{".ferry.yml": "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo hi]\n"})
	if code, out, errs := upOnce(t, t.TempDir(), repo); code != cli.ExitOK || !strings.Contains(out, "[ci/a] hi") {
		t.Fatalf("exit code %d; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkEmpty(t, tmp, "ferry up")
}

// enterableTempDir returns a new temporary directory that host steps,
// which may run as nobody (under root), can enter.
func enterableTempDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

// checkEmpty reports each entry that who left behind in dir.
func checkEmpty(t *testing.T, dir, who string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("%s left %s behind", who, filepath.Join(dir, e.Name()))
	}
}

// TestUpSaysWhyAStepFailedToStart runs `ferry up --once` on a docker
// pipeline whose image cannot be pulled (there is no such image, and no
// registry is reachable or has it): the output names the image and the
// answer, and the summary shows the step in error without an exit code,
// since its command never ran.
func TestUpSaysWhyAStepFailedToStart(t *testing.T) {
	testimage.Client(t) // skips without a Docker Engine (fails under CI=true)
	const img = "ferry-test/no-such-image:never"
	repo := gitRepo(t, map[string]string{".ferry.yml": "kind: pipeline\ntype: docker\nname: ci\nsteps:\n- name: pull\n  image: " + img + "\n  commands: [echo hi]\n"})
	code, out, errs := upOnce(t, t.TempDir(), repo)
	if code != cli.ExitFailed {
		t.Fatalf("exit code %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if want := "[ci/pull] error: image " + img + " could not be pulled: "; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !regexp.MustCompile(`(?m)^ci +pull +error +- `).MatchString(out) {
		t.Errorf("the summary does not show step pull in error without an exit code:\n%s", out)
	}
}
