package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/cli"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// apiEnv is a cli.API on a real server, with its output captured.
type apiEnv struct {
	t   *testing.T
	api *cli.API
	out *syncBuffer
	err *syncBuffer
}

func newAPIEnv(t *testing.T, srv *apitest.Server, token string) *apiEnv {
	t.Helper()
	e := &apiEnv{t: t, out: &syncBuffer{}, err: &syncBuffer{}}
	e.api = &cli.API{Client: srv.Client(t, token), Stdout: e.out, Stderr: e.err}
	return e
}

// run runs a command, fails the test when it returns an error, and returns
// its output, which it then clears.
func (e *apiEnv) run(what string, err error) string {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v\nstderr: %s", what, err, e.err.String())
	}
	out := e.out.String()
	e.out.Reset()
	return out
}

// fail runs a command that must fail with exit code want, and returns
// what it printed on stderr, which it then clears.
func (e *apiEnv) fail(what string, want int, err error) string {
	e.t.Helper()
	if err == nil {
		e.t.Fatalf("%s succeeded; want exit code %d; stdout:\n%s", what, want, e.out.String())
	}
	if code := e.api.ExitCode(err); code != want {
		e.t.Fatalf("%s: exit code %d, want %d (error: %v)", what, code, want, err)
	}
	msg := e.err.String()
	e.err.Reset()
	e.out.Reset()
	return msg
}

// jsonOf runs a command with --json and decodes its output into v.
func (e *apiEnv) jsonOf(what string, v any, cmd func() error) {
	e.t.Helper()
	e.api.JSON = true
	defer func() { e.api.JSON = false }()
	out := e.run(what, cmd())
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("%s --json: %v\n%s", what, err, out)
	}
}

var ctx = context.Background()

// pipelineYAML is a pipeline on the local backend that greets with the
// build's GREETING parameter, checks the api_key secret, prints it (which
// the log masks) and fails when the FAIL parameter is set.
const pipelineYAML = `kind: pipeline
type: exec
name: hello
steps:
- name: greet
  environment:
    API_KEY:
      from_secret: api_key
  commands:
  - 'echo "greeting: $GREETING"'
  - test "$API_KEY" = "s3cr3t-value"
  - echo "key=$API_KEY"
- name: maybe-fail
  commands:
  - echo checking
  - test -z "$FAIL"
`

// slowYAML is a pipeline whose step prints a line, waits until the file
// named by the GATE parameter exists, then prints five more.
const slowYAML = `kind: pipeline
type: exec
name: slow
steps:
- name: wait
  commands:
  - echo before
  - while [ ! -f "$GATE" ]; do sleep 0.02; done
  - for i in 1 2 3 4 5; do echo "after $i"; done
`

// TestAPIBuildCommands drives a build end to end through the commands: a
// repo added by its file:// URL, a secret read from standard input, a
// build started with parameters and run by a real agent, its info, its
// logs, and `build wait` on a passing and on a failing build.
func TestAPIBuildCommands(t *testing.T) {
	srv := apitest.NewServer(t)
	srv.StartAgent(t)
	url := apitest.GitRepo(t, "acme", "app", map[string]string{".ferry.yml": pipelineYAML})
	e := newAPIEnv(t, srv, apitest.AdminToken)

	out := e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, PollInterval: new(apiclient.Duration(0)), Trusted: new(true)}))
	if !strings.Contains(out, "added acme/app") || !strings.Contains(out, "polling:         off") {
		t.Fatalf("repo add output:\n%s", out)
	}

	// The value comes from standard input, less its trailing newline, and
	// is never printed back, with or without --json.
	e.api.Stdin = strings.NewReader("s3cr3t-value\n")
	out = e.run("secret add", e.api.SecretAdd(ctx, "acme/app", "api_key", cli.SecretOptions{Events: []string{"custom", "push"}}))
	if !strings.Contains(out, "added secret api_key of acme/app (events: custom,push; pull requests from forks: no)") {
		t.Fatalf("secret add output:\n%s", out)
	}
	var secrets []apiclient.Secret
	e.jsonOf("secret ls", &secrets, func() error { return e.api.SecretList(ctx, "acme/app") })
	if len(secrets) != 1 || secrets[0].Name != "api_key" || strings.Join(secrets[0].Events, ",") != "custom,push" {
		t.Fatalf("secret ls --json = %+v", secrets)
	}
	out = e.run("secret ls", e.api.SecretList(ctx, "acme/app"))
	if !regexp.MustCompile(`(?m)^api_key\s+custom,push\s+no\s`).MatchString(out) {
		t.Fatalf("secret ls output:\n%s", out)
	}

	// A parameter's value keeps its comma.
	out = e.run("build start", e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{Params: []string{"GREETING=hi, there"}}))
	if !strings.Contains(out, "started build #1 of acme/app") || !strings.Contains(out, "1.1  ") {
		t.Fatalf("build start output:\n%s", out)
	}
	out = e.run("build wait", e.api.BuildWait(ctx, "acme/app", 1, cli.BuildWaitOptions{Interval: 50 * time.Millisecond, Timeout: time.Minute}))
	if !strings.HasPrefix(out, "build #1 of acme/app: success\n") || !strings.Contains(out, "params:    GREETING=hi, there") {
		t.Fatalf("build wait output:\n%s", out)
	}
	for _, step := range []string{`1\.1\s+greet\s+success\s+0\s`, `1\.2\s+maybe-fail\s+success\s+0\s`} {
		if !regexp.MustCompile(step).MatchString(out) {
			t.Fatalf("build wait output lacks %s:\n%s", step, out)
		}
	}

	var b apiclient.Build
	e.jsonOf("build info", &b, func() error { return e.api.BuildInfo(ctx, "acme/app", 1) })
	if b.Status != apiclient.StatusSuccess || b.Params["GREETING"] != "hi, there" || b.Event != "custom" || b.Sender != "admin" ||
		len(b.Pipelines) != 1 || len(b.Pipelines[0].Steps) != 2 || b.Pipelines[0].Job == nil {
		t.Fatalf("build info --json = %+v", b)
	}

	// Logs by name and by number; the secret is masked.
	log := e.run("logs", e.api.Logs(ctx, "acme/app", 1, "hello", "greet", cli.LogsOptions{Tail: -1}))
	if !strings.Contains(log, "greeting: hi, there\n") || !strings.Contains(log, "key=") || strings.Contains(log, "s3cr3t-value") {
		t.Fatalf("logs of hello/greet:\n%s", log)
	}
	if byNumber := e.run("logs 1 1", e.api.Logs(ctx, "acme/app", 1, "1", "1", cli.LogsOptions{Tail: -1})); byNumber != log {
		t.Fatalf("logs by number differ from logs by name:\n%s\n---\n%s", byNumber, log)
	}
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	if tail := e.run("logs --tail 2", e.api.Logs(ctx, "acme/app", 1, "1", "1", cli.LogsOptions{Tail: 2})); tail != strings.Join(lines[len(lines)-2:], "\n")+"\n" {
		t.Fatalf("logs --tail 2 = %q; the whole log is:\n%s", tail, log)
	}
	if msg := e.fail("logs of a missing step", cli.ExitFailed, e.api.Logs(ctx, "acme/app", 1, "hello", "nope", cli.LogsOptions{Tail: -1})); !strings.Contains(msg, `has no step "nope"`) {
		t.Fatalf("logs of a missing step: stderr %q", msg)
	}
	if msg := e.fail("logs of a missing step number", cli.ExitFailed, e.api.Logs(ctx, "acme/app", 1, "1", "9", cli.LogsOptions{Tail: -1})); !strings.Contains(msg, "pipeline 1 of build 1 has no step 9 (HTTP 404)") {
		t.Fatalf("logs of a missing step number: stderr %q", msg)
	}

	// A failing build: wait exits 1, after printing the build.
	e.run("build start", e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{Branch: "main", Params: []string{"FAIL=1"}}))
	e.api.JSON = true
	err := e.api.BuildWait(ctx, "acme/app", 2, cli.BuildWaitOptions{Interval: 50 * time.Millisecond, Timeout: time.Minute})
	e.api.JSON = false
	var ee *cli.ExitError
	if !errors.As(err, &ee) || e.api.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("build wait on a failing build: %v, want exit code 1", err)
	}
	if err := json.Unmarshal([]byte(e.out.String()), &b); err != nil || b.Status != apiclient.StatusFailure ||
		b.Pipelines[0].Steps[1].Status != apiclient.StatusFailure || b.Pipelines[0].Steps[1].ExitCode != 1 {
		t.Fatalf("build wait --json on a failing build printed %s (%v)", e.out.String(), err)
	}
	if e.err.String() != "" {
		t.Fatalf("build wait on a failing build wrote to stderr: %q", e.err.String())
	}
	e.out.Reset()

	// Restart only what failed: a new build whose first pipeline... is
	// the only one, so it runs again, and fails again.
	out = e.run("build restart", e.api.BuildRestart(ctx, "acme/app", 2, true))
	if !strings.Contains(out, "restarted build #2 of acme/app as #3") {
		t.Fatalf("build restart output:\n%s", out)
	}
	if err := e.api.BuildWait(ctx, "acme/app", 3, cli.BuildWaitOptions{Interval: 50 * time.Millisecond, Timeout: time.Minute}); e.api.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("build wait on the restarted build: %v", err)
	}
	e.out.Reset()

	out = e.run("build ls", e.api.BuildList(ctx, "acme/app", cli.BuildListOptions{Limit: 25}))
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 || !strings.HasPrefix(rows[0], "BUILD") ||
		!regexp.MustCompile(`^3\s+failure\s+custom\s+main\s`).MatchString(rows[1]) ||
		!regexp.MustCompile(`^1\s+success\s+custom\s+main\s`).MatchString(rows[3]) {
		t.Fatalf("build ls output:\n%s", out)
	}
	// Filters, and a limit smaller than what matches.
	var bs []apiclient.Build
	e.jsonOf("build ls --status failure --limit 1", &bs, func() error {
		return e.api.BuildList(ctx, "acme/app", cli.BuildListOptions{Status: "failure", Limit: 1})
	})
	if len(bs) != 1 || bs[0].Number != 3 {
		t.Fatalf("build ls --status failure --limit 1 = %+v", bs)
	}
	e.jsonOf("build ls --status success", &bs, func() error {
		return e.api.BuildList(ctx, "acme/app", cli.BuildListOptions{Status: "success", Limit: 10})
	})
	if len(bs) != 1 || bs[0].Number != 1 {
		t.Fatalf("build ls --status success = %+v", bs)
	}
	if msg := e.fail("build ls --status bogus", cli.ExitFailed, e.api.BuildList(ctx, "acme/app", cli.BuildListOptions{Status: "bogus", Limit: 10})); !strings.Contains(msg, `status "bogus" is not one of`) || !strings.Contains(msg, "(HTTP 400)") {
		t.Fatalf("build ls --status bogus: stderr %q", msg)
	}

	// Approving a build that waits for nothing is refused by the server.
	if msg := e.fail("build approve", cli.ExitFailed, e.api.BuildApprove(ctx, "acme/app", 1)); !strings.Contains(msg, "build 1 is not waiting for approval (HTTP 409)") {
		t.Fatalf("build approve: stderr %q", msg)
	}
	if msg := e.fail("build decline", cli.ExitFailed, e.api.BuildDecline(ctx, "acme/app", 1)); !strings.Contains(msg, "build 1 is not waiting for approval (HTTP 409)") {
		t.Fatalf("build decline: stderr %q", msg)
	}
	if msg := e.fail("build start --branch --ref", cli.ExitInvalid, e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{Branch: "a", Ref: "b"})); !strings.Contains(msg, "not both") {
		t.Fatalf("build start --branch --ref: stderr %q", msg)
	}
	if msg := e.fail("build start --param", cli.ExitInvalid, e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{Params: []string{"NOVALUE"}})); !strings.Contains(msg, `--param "NOVALUE" must be K=V`) {
		t.Fatalf("build start --param NOVALUE: stderr %q", msg)
	}
	if msg := e.fail("build start unknown branch", cli.ExitFailed, e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{Branch: "nope"})); !strings.Contains(msg, "(HTTP 400)") || !strings.Contains(msg, "nope") {
		t.Fatalf("build start --branch nope: stderr %q", msg)
	}
}

// TestAPIFollowLogs follows a running step's log over the server's event
// stream: lines arrive while the step runs, every line exactly once and in
// order, and the command returns when the step ends. It then cancels a
// waiting build and checks that `build wait` exits 1.
func TestAPIFollowLogs(t *testing.T) {
	srv := apitest.NewServer(t)
	srv.StartAgent(t)
	url := apitest.GitRepo(t, "acme", "slow", map[string]string{".ferry.yml": slowYAML})
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Trusted: new(true)}))
	gate := filepath.Join(t.TempDir(), "go")
	e.run("build start", e.api.BuildStart(ctx, "acme/slow", cli.BuildStartOptions{Params: []string{"GATE=" + gate}}))

	// One follower from the start, one that only wants the last line of
	// what is already logged and then the live lines.
	follow := func(tail int) (*syncBuffer, chan error) {
		out := &syncBuffer{}
		api := &cli.API{Client: srv.Client(t, apitest.AdminToken), Stdout: out, Stderr: e.err}
		done := make(chan error, 1)
		go func() {
			done <- api.Logs(ctx, "acme/slow", 1, "slow", "wait", cli.LogsOptions{Tail: tail, Follow: true})
		}()
		return out, done
	}
	all, allDone := follow(-1)
	waitFor(t, "the first line, while the step runs", func() bool { return strings.Contains(all.String(), "\nbefore\n") })
	// Wait until the step blocks: its backlog is then three lines, the
	// last being the trace of the loop that waits.
	waitFor(t, "the loop's trace", func() bool { return strings.Contains(all.String(), "\n+ while") })
	tailed, tailDone := follow(1)
	waitFor(t, "the tailed backlog", func() bool { return strings.Contains(tailed.String(), "while") })
	if b, err := e.api.Client.Build(ctx, "acme/slow", 1); err != nil || b.Pipelines[0].Steps[0].Status != apiclient.StatusRunning {
		t.Fatalf("the step should still run while its log is followed: %+v, %v", b, err)
	}
	select {
	case err := <-allDone:
		t.Fatalf("logs --follow returned before the step ended: %v", err)
	default:
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, done := range map[string]chan error{"logs --follow": allDone, "logs --follow --tail 1": tailDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return within 30s of the step's end", name)
		}
	}
	var after []string
	for i := 1; i <= 5; i++ {
		after = append(after, fmt.Sprintf("after %d", i))
	}
	whole := e.run("logs", e.api.Logs(ctx, "acme/slow", 1, "1", "1", cli.LogsOptions{Tail: -1}))
	if all.String() != whole {
		t.Fatalf("followed log differs from the stored log:\n%s\n---\n%s", all.String(), whole)
	}
	if !strings.Contains(whole, "before\n") || !strings.HasSuffix(whole, strings.Join(after, "\n")+"\n") {
		t.Fatalf("log:\n%s", whole)
	}
	lines := strings.Split(strings.TrimSuffix(whole, "\n"), "\n")
	wantTail := strings.Join(lines[2:], "\n") + "\n" // from the loop's trace on
	if !strings.HasPrefix(lines[2], "+ while") || tailed.String() != wantTail {
		t.Fatalf("logs --follow --tail 1 = %q, want %q", tailed.String(), wantTail)
	}

	// A build that waits for ever, cancelled: the follower of its step
	// returns, noting how the step ended, and build wait exits 1.
	e.run("build start", e.api.BuildStart(ctx, "acme/slow", cli.BuildStartOptions{Params: []string{"GATE=/nonexistent/gate"}}))
	stuck, stuckDone := func() (*syncBuffer, chan error) {
		out := &syncBuffer{}
		api := &cli.API{Client: srv.Client(t, apitest.AdminToken), Stdout: out, Stderr: e.err}
		done := make(chan error, 1)
		go func() { done <- api.Logs(ctx, "acme/slow", 2, "1", "1", cli.LogsOptions{Tail: -1, Follow: true}) }()
		return out, done
	}()
	waitFor(t, "the second build's first line", func() bool { return strings.Contains(stuck.String(), "\nbefore\n") })
	// The step runs: its agent stops it when it learns of the cancellation.
	// The answer says the build is being cancelled: its agent may have
	// stopped the step already (then no pipeline is left running) or not
	// yet, depending on how fast it heard of it; or the build may be over.
	out := e.run("build cancel", e.api.BuildCancel(ctx, "acme/slow", 2))
	if !strings.HasPrefix(out, "build #2 of acme/slow: cancelling; the agents are stopping 1 running pipeline(s)") &&
		!strings.HasPrefix(out, "build #2 of acme/slow: cancelling; its pipelines have stopped") &&
		!strings.HasPrefix(out, "build #2 of acme/slow: cancelled (killed)") {
		t.Fatalf("build cancel output: %q", out)
	}
	select {
	case err := <-stuckDone:
		if err != nil {
			t.Fatalf("logs --follow of a cancelled step: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logs --follow did not return within 30s of the build's cancellation")
	}
	if msg := e.err.String(); !strings.Contains(msg, "step 1.1 ended: killed") {
		t.Fatalf("logs --follow of a cancelled step: stderr %q", msg)
	}
	e.err.Reset()
	err := e.api.BuildWait(ctx, "acme/slow", 2, cli.BuildWaitOptions{Interval: 50 * time.Millisecond, Timeout: time.Minute})
	if e.api.ExitCode(err) != cli.ExitFailed || !strings.HasPrefix(e.out.String(), "build #2 of acme/slow: killed") {
		t.Fatalf("build wait on a cancelled build: %v; output:\n%s", err, e.out.String())
	}
	e.out.Reset()
	if msg := e.fail("build cancel of a finished build", cli.ExitFailed, e.api.BuildCancel(ctx, "acme/slow", 2)); !strings.Contains(msg, "build 2 already finished (killed) (HTTP 409)") {
		t.Fatalf("build cancel of a finished build: stderr %q", msg)
	}
	// Waiting with a timeout on a build that does not finish in time.
	e.run("build start", e.api.BuildStart(ctx, "acme/slow", cli.BuildStartOptions{Params: []string{"GATE=/nonexistent/gate"}}))
	if msg := e.fail("build wait --timeout", cli.ExitFailed, e.api.BuildWait(ctx, "acme/slow", 3, cli.BuildWaitOptions{Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond})); !strings.Contains(msg, "build 3 of acme/slow is not finished after 200ms") {
		t.Fatalf("build wait --timeout: stderr %q", msg)
	}
	if out := e.run("build cancel", e.api.BuildCancel(ctx, "acme/slow", 3)); !strings.HasPrefix(out, "build #3 of acme/slow: cancel") {
		t.Fatalf("build cancel output: %q", out)
	}
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAPIRepoCommands adds, lists, shows, changes and removes repos.
func TestAPIRepoCommands(t *testing.T) {
	srv := apitest.NewServer(t)
	url := apitest.GitRepo(t, "acme", "app", map[string]string{"README": "hi\n"})
	e := newAPIEnv(t, srv, apitest.AdminToken)

	var r apiclient.Repo
	e.jsonOf("repo add", &r, func() error {
		return e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Slug: new("team/web"), Forge: new("gitea"),
			ConfigPath: new(".drone.yml"), Timeout: new(apiclient.Duration(90 * time.Minute)), Trusted: new(true)})
	})
	if r.Slug != "team/web" || r.Forge != "gitea" || r.ConfigPath != ".drone.yml" || r.Timeout != apiclient.Duration(90*time.Minute) ||
		!r.Trusted || r.WebhookSecret == "" || r.WebhookURL != srv.URL+"/hook/team/web" || r.DefaultBranch != "main" {
		t.Fatalf("repo add --json = %+v", r)
	}
	// The secret is shown once: not by info.
	out := e.run("repo info", e.api.RepoInfo(ctx, "team/web"))
	if strings.Contains(out, r.WebhookSecret) || !strings.Contains(out, "timeout:         1h30m0s") || !strings.Contains(out, "trusted:         yes") {
		t.Fatalf("repo info output:\n%s", out)
	}
	out = e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, WebhookSecret: new("hush")}))
	if !strings.Contains(out, "added acme/app") || !strings.Contains(out, "webhook secret:  hush") {
		t.Fatalf("repo add output:\n%s", out)
	}
	if msg := e.fail("repo add twice", cli.ExitFailed, e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Trusted: new(true)})); !strings.Contains(msg, `a repo with slug "acme/app" exists (HTTP 409)`) {
		t.Fatalf("repo add twice: stderr %q", msg)
	}

	out = e.run("repo ls", e.api.RepoList(ctx))
	if !regexp.MustCompile(`(?m)^acme/app\s+none\s+main\s+every 1m0s\s+yes\s+admin\s+0\s+file://`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^team/web\s+gitea\s+main\s+off\s+yes\s+admin\s+0\s+file://`).MatchString(out) {
		t.Fatalf("repo ls output:\n%s", out)
	}

	// Only the fields given change.
	e.jsonOf("repo update", &r, func() error {
		return e.api.RepoUpdate(ctx, "team/web", &apiclient.RepoRequest{Trusted: new(false), Active: new(false),
			PollInterval: new(apiclient.Duration(5 * time.Minute))})
	})
	if r.Trusted || r.Active || r.PollInterval != apiclient.Duration(5*time.Minute) || r.ConfigPath != ".drone.yml" || r.Forge != "gitea" {
		t.Fatalf("repo update --json = %+v", r)
	}
	if msg := e.fail("repo update with nothing", cli.ExitInvalid, e.api.RepoUpdate(ctx, "team/web", &apiclient.RepoRequest{})); !strings.Contains(msg, "nothing to change") {
		t.Fatalf("repo update with nothing: stderr %q", msg)
	}
	if msg := e.fail("repo update --poll-interval 10ms", cli.ExitFailed, e.api.RepoUpdate(ctx, "team/web", &apiclient.RepoRequest{PollInterval: new(apiclient.Duration(10 * time.Millisecond))})); !strings.Contains(msg, "poll_interval must be 0 (no polling) or at least 1s (HTTP 400)") {
		t.Fatalf("repo update --poll-interval 10ms: stderr %q", msg)
	}

	out = e.run("repo rm", e.api.RepoRemove(ctx, "team/web"))
	if out != "removed team/web\n" {
		t.Fatalf("repo rm output: %q", out)
	}
	if msg := e.fail("repo info of a removed repo", cli.ExitFailed, e.api.RepoInfo(ctx, "team/web")); !strings.Contains(msg, "(HTTP 404)") {
		t.Fatalf("repo info of a removed repo: stderr %q", msg)
	}
	var rs []apiclient.Repo
	e.jsonOf("repo ls", &rs, func() error { return e.api.RepoList(ctx) })
	if len(rs) != 1 || rs[0].Slug != "acme/app" {
		t.Fatalf("repo ls --json after rm = %+v", rs)
	}
}

// TestAPIErrors checks what the commands print and how they exit when
// the server refuses a request (401, 403, 404, 400) or the arguments are
// wrong (exit 2, nothing sent).
func TestAPIErrors(t *testing.T) {
	srv := apitest.NewServer(t)
	admin := newAPIEnv(t, srv, apitest.AdminToken)

	anon := newAPIEnv(t, srv, "not-a-token")
	msg := anon.fail("repo ls with a bad token", cli.ExitFailed, anon.api.RepoList(ctx))
	if !strings.Contains(msg, "ferry: listing repos: missing or invalid token; send Authorization: Bearer TOKEN (HTTP 401)\n") ||
		!strings.Contains(msg, "FERRY_TOKEN") {
		t.Fatalf("401: stderr %q", msg)
	}

	msg = admin.fail("repo info of a missing repo", cli.ExitFailed, admin.api.RepoInfo(ctx, "acme/missing"))
	if !strings.HasPrefix(msg, "ferry: getting acme/missing: ") || !strings.Contains(msg, "(HTTP 404)") {
		t.Fatalf("404: stderr %q", msg)
	}
	var ae *apiclient.Error
	if err := admin.api.RepoInfo(ctx, "acme/missing"); !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		t.Fatalf("404: error %v is not an *apiclient.Error with status 404", err)
	}
	admin.err.Reset()

	msg = admin.fail("repo add with a bad forge", cli.ExitFailed, admin.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: new("https://example.com/a/b.git"), Forge: new("bitbucket")}))
	if !strings.Contains(msg, `forge "bitbucket" is not one of github, gitea, gitlab, none (HTTP 400)`) {
		t.Fatalf("400: stderr %q", msg)
	}
	err := admin.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: new("ftp://example.com/a/b")})
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.Field != "git_url" {
		t.Fatalf("400: error %v should name the field git_url", err)
	}
	admin.err.Reset()

	// A path is not a URL: the file:// URL is suggested, before asking the
	// server. A URL git cannot read is refused when added, with git's reason.
	dir := t.TempDir()
	msg = admin.fail("repo add a path", cli.ExitInvalid, admin.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &dir}))
	if !strings.Contains(msg, "is a path, not a URL; did you mean file://"+dir+" ?") {
		t.Fatalf("repo add PATH: stderr %q", msg)
	}
	msg = admin.fail("repo add an unreadable URL", cli.ExitFailed, admin.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: new("file:///does/not/exist")}))
	if !strings.Contains(msg, "cannot read the git repository at file:///does/not/exist: there is no git repository there") ||
		strings.Contains(msg, "Please make sure") || strings.Contains(msg, "exit status") {
		t.Fatalf("repo add file:///does/not/exist: stderr %q", msg)
	}
	admin.err.Reset()

	// A user who is no administrator.
	admin.run("user add", admin.api.UserAdd(ctx, "bob", "", false))
	tok, err := admin.api.Client.CreateUserToken(ctx, "bob", &apiclient.TokenRequest{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	bob := newAPIEnv(t, srv, tok.Token)
	if msg := bob.fail("user ls as a user", cli.ExitFailed, bob.api.UserList(ctx)); !strings.Contains(msg, "this endpoint is for administrators (HTTP 403)") {
		t.Fatalf("403: stderr %q", msg)
	}
	if msg := bob.fail("secret ls --global as a user", cli.ExitFailed, bob.api.SecretList(ctx, "")); !strings.Contains(msg, "(HTTP 403)") {
		t.Fatalf("403: stderr %q", msg)
	}

	// Usage errors: exit 2, with a message, before any request.
	for name, err := range map[string]error{
		"repo info without a slash": admin.api.RepoInfo(ctx, "acme"),
		"build ls --limit 0":        admin.api.BuildList(ctx, "acme/app", cli.BuildListOptions{Limit: 0}),
		"secret add with two sources": admin.api.SecretAdd(ctx, "acme/app", "x",
			cli.SecretOptions{Value: new("a"), FromFile: "/etc/hostname"}),
		"secret add with an empty value": admin.api.SecretAdd(ctx, "acme/app", "x", cli.SecretOptions{Value: new("")}),
		"logs with step 0":               admin.api.Logs(ctx, "acme/app", 1, "1", "0", cli.LogsOptions{Tail: -1}),
	} {
		if msg := admin.fail(name, cli.ExitInvalid, err); !strings.HasPrefix(msg, "ferry: ") {
			t.Errorf("%s: stderr %q", name, msg)
		}
	}

	// An unreachable server.
	srv.HTTP.Close()
	if msg := admin.fail("repo ls on a closed server", cli.ExitFailed, admin.api.RepoList(ctx)); !strings.Contains(msg, "cannot reach the server at "+srv.URL) {
		t.Fatalf("unreachable server: stderr %q", msg)
	}
}

// TestAPISecretCommands covers repo and global secrets: values from a
// flag, a file and standard input, never printed, and update and rm.
func TestAPISecretCommands(t *testing.T) {
	srv := apitest.NewServer(t)
	url := apitest.GitRepo(t, "acme", "app", map[string]string{"README": "hi\n"})
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Trusted: new(true)}))

	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("file-value-42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.run("secret add --value", e.api.SecretAdd(ctx, "acme/app", "one", cli.SecretOptions{Value: new("flag-value-17")}))
	var s apiclient.Secret
	e.jsonOf("secret add --from-file", &s, func() error {
		return e.api.SecretAdd(ctx, "acme/app", "two", cli.SecretOptions{FromFile: file, AllowPullRequest: new(true)})
	})
	if s.Name != "two" || !s.AllowPullRequest || s.Repo != "acme/app" || len(s.Events) != 0 {
		t.Fatalf("secret add --json = %+v", s)
	}
	e.api.Stdin = strings.NewReader("global-value-99")
	out := e.run("secret add --global", e.api.SecretAdd(ctx, "", "shared", cli.SecretOptions{}))
	if out != "added global secret shared (events: all; pull requests from forks: no)\n" {
		t.Fatalf("secret add --global output: %q", out)
	}
	if msg := e.fail("secret add twice", cli.ExitFailed, e.api.SecretAdd(ctx, "acme/app", "one", cli.SecretOptions{Value: new("v")})); !strings.Contains(msg, `a secret named "one" exists (HTTP 409)`) {
		t.Fatalf("secret add twice: stderr %q", msg)
	}
	if msg := e.fail("secret add --event bogus", cli.ExitFailed, e.api.SecretAdd(ctx, "acme/app", "three", cli.SecretOptions{Value: new("v"), Events: []string{"bogus"}})); !strings.Contains(msg, `event "bogus" is not one of`) {
		t.Fatalf("secret add --event bogus: stderr %q", msg)
	}

	out = e.run("secret update", e.api.SecretUpdate(ctx, "acme/app", "one", cli.SecretOptions{Events: []string{"tag"}}))
	if out != "updated secret one of acme/app (events: tag; pull requests from forks: no)\n" {
		t.Fatalf("secret update output: %q", out)
	}
	if msg := e.fail("secret update with nothing", cli.ExitInvalid, e.api.SecretUpdate(ctx, "acme/app", "one", cli.SecretOptions{})); !strings.Contains(msg, "nothing to change") {
		t.Fatalf("secret update with nothing: stderr %q", msg)
	}

	out = e.run("secret ls", e.api.SecretList(ctx, "acme/app"))
	if !regexp.MustCompile(`(?m)^one\s+tag\s+no\s`).MatchString(out) || !regexp.MustCompile(`(?m)^two\s+all\s+yes\s`).MatchString(out) ||
		strings.Contains(out, "shared") {
		t.Fatalf("secret ls output:\n%s", out)
	}
	var global []apiclient.Secret
	e.jsonOf("secret ls --global", &global, func() error { return e.api.SecretList(ctx, "") })
	if len(global) != 1 || global[0].Name != "shared" || global[0].Repo != "" {
		t.Fatalf("secret ls --global --json = %+v", global)
	}
	out = e.run("secret rm", e.api.SecretRemove(ctx, "acme/app", "one"))
	if out != "removed secret one of acme/app\n" {
		t.Fatalf("secret rm output: %q", out)
	}
	if msg := e.fail("secret rm twice", cli.ExitFailed, e.api.SecretRemove(ctx, "acme/app", "one")); !strings.Contains(msg, `secret "one" not found (HTTP 404)`) {
		t.Fatalf("secret rm twice: stderr %q", msg)
	}
	e.run("secret rm --global", e.api.SecretRemove(ctx, "", "shared"))
	e.jsonOf("secret ls --global", &global, func() error { return e.api.SecretList(ctx, "") })
	if len(global) != 0 {
		t.Fatalf("global secrets after rm: %+v", global)
	}
	// No command printed a value.
	for _, v := range []string{"flag-value-17", "file-value-42", "global-value-99"} {
		if strings.Contains(e.out.String()+e.err.String(), v) {
			t.Fatalf("a secret's value was printed: %s", v)
		}
	}
}

// TestAPIUsersAndTokens adds users and creates personal and agent tokens,
// then uses the tokens.
func TestAPIUsersAndTokens(t *testing.T) {
	srv := apitest.NewServer(t)
	e := newAPIEnv(t, srv, apitest.AdminToken)

	out := e.run("user add", e.api.UserAdd(ctx, "carol", "carol@example.com", true))
	if !strings.Contains(out, "added administrator carol") {
		t.Fatalf("user add output: %q", out)
	}
	e.run("user add", e.api.UserAdd(ctx, "dave", "", false))
	if msg := e.fail("user add twice", cli.ExitFailed, e.api.UserAdd(ctx, "dave", "", false)); !strings.Contains(msg, `a user with login "dave" exists (HTTP 409)`) {
		t.Fatalf("user add twice: stderr %q", msg)
	}
	out = e.run("user ls", e.api.UserList(ctx))
	for _, re := range []string{`(?m)^admin\s+-\s+yes\s`, `(?m)^carol\s+carol@example.com\s+yes\s`, `(?m)^dave\s+-\s+no\s`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("user ls output lacks %s:\n%s", re, out)
		}
	}

	// A token for dave, printed alone on stdout, works as dave's.
	tok := strings.TrimSpace(e.run("token create --user dave", e.api.TokenCreate(ctx, "laptop", "dave", 0)))
	if strings.Contains(tok, " ") || tok == "" {
		t.Fatalf("token create printed %q, want the token alone", tok)
	}
	if note := e.err.String(); !strings.Contains(note, "personal token laptop of dave") || !strings.Contains(note, "shown this once") {
		t.Fatalf("token create note: %q", note)
	}
	e.err.Reset()
	dave := newAPIEnv(t, srv, tok)
	if u, err := dave.api.Client.Self(ctx); err != nil || u.Login != "dave" || u.Admin {
		t.Fatalf("the new token's user: %+v, %v", u, err)
	}
	// Dave's own token, with an expiry, as JSON.
	var t2 apiclient.Token
	dave.jsonOf("token create --expires-in", &t2, func() error { return dave.api.TokenCreate(ctx, "", "", time.Hour) })
	if t2.Name != cli.DefaultTokenName || t2.User != "dave" || t2.Token == "" || t2.Expires.Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("token create --json = %+v", t2)
	}
	if msg := dave.fail("agent-token create as a user", cli.ExitFailed, dave.api.AgentTokenCreate(ctx, "builder", 0)); !strings.Contains(msg, "(HTTP 403)") {
		t.Fatalf("agent-token create as a user: stderr %q", msg)
	}

	// An agent token leases jobs, and nothing else.
	agentTok := strings.TrimSpace(e.run("agent-token create", e.api.AgentTokenCreate(ctx, "builder", 0)))
	agent := newAPIEnv(t, srv, agentTok)
	if msg := agent.fail("repo ls with an agent token", cli.ExitFailed, agent.api.RepoList(ctx)); !strings.Contains(msg, "agent tokens may only lease and report jobs (HTTP 403)") {
		t.Fatalf("agent token on the user API: stderr %q", msg)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/agent/lease", strings.NewReader(`{"name":"x","labels":{},"capacity":1,"wait":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+agentTok)
	res, err := srv.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("lease with the agent token: %s, want 204 (no job)", res.Status)
	}
}

// TestAPIBuildInfoShowsWarnings checks that `ferry build info` lists the
// pipeline file's warnings (issue 11), one per line.
func TestAPIBuildInfoShowsWarnings(t *testing.T) {
	srv := apitest.NewServer(t)
	warned := "kind: pipeline\ntype: exec\nname: hello\nsteps:\n- name: greet\n  secrets: [api_key]\n  commands: [echo hi]\n  comands: [oops]\n"
	url := apitest.GitRepo(t, "acme", "app", map[string]string{".drone.yml": warned})
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, PollInterval: new(apiclient.Duration(0)), Trusted: new(true)}))
	e.run("build start", e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{}))
	out := e.run("build info", e.api.BuildInfo(ctx, "acme/app", 1))
	for _, want := range []string{
		`warnings:  .drone.yml:6:3: warning: "secrets" on a step is Drone 0.8's form`,
		`.drone.yml:8:3: warning: unknown key "comands" in step is ignored`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("build info lacks %q:\n%s", want, out)
		}
	}
}

// TestAPIBuildCancelQueued cancels a build no agent has taken: it ends at
// once, and the command says so ("cancelled"), not "running".
func TestAPIBuildCancelQueued(t *testing.T) {
	srv := apitest.NewServer(t) // no agent: the build stays queued
	url := apitest.GitRepo(t, "acme", "app", map[string]string{".ferry.yml": pipelineYAML})
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, PollInterval: new(apiclient.Duration(0)), Trusted: new(true)}))
	e.run("build start", e.api.BuildStart(ctx, "acme/app", cli.BuildStartOptions{}))
	if out := e.run("build cancel", e.api.BuildCancel(ctx, "acme/app", 1)); out != "build #1 of acme/app: cancelled (killed)\n" {
		t.Fatalf("build cancel output: %q", out)
	}
}
