package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/testimage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testJob is a job of pipeline "build" at sha on main.
func testJob(repo *gittest.Repo, sha, config string) rpc.Job {
	return rpc.Job{
		BuildID:    7,
		Pipeline:   "build",
		Number:     1,
		ConfigFile: ".drone.yml",
		Config:     config,
		Metadata: compiler.Metadata{
			Repo:   compiler.Repo{Slug: "acme/app", Namespace: "acme", Name: "app"},
			Build:  compiler.Build{Number: 7, Event: "push"},
			Commit: compiler.Commit{SHA: sha, Ref: "refs/heads/main", Branch: "main"},
		},
		Clone: rpc.Clone{URL: repo.URL(), Ref: "refs/heads/main", SHA: sha, Depth: 1},
		// Host execution needs a trusted repo (docs/security.md).
		Trusted: true,
	}
}

// execPipeline is a config with one exec pipeline named build.
func execPipeline(steps string) string {
	return "kind: pipeline\ntype: exec\nname: build\nsteps:\n" + steps
}

var localLabels = map[string]string{LabelBackend: BackendLocal}

type runningAgent struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs an agent against s until the test ends.
func startAgent(t *testing.T, s *testServer, mod func(*Config)) *runningAgent {
	t.Helper()
	return startAgentLog(t, s, mod, testLogger(t))
}

// startAgentLog is startAgent with the agent's logger.
func startAgentLog(t *testing.T, s *testServer, mod func(*Config), logger *slog.Logger) *runningAgent {
	t.Helper()
	cfg := Config{
		Server:    s.URL(),
		Token:     s.token,
		Name:      "test-agent",
		Backend:   BackendLocal,
		WorkDir:   t.TempDir(),
		PollWait:  2 * time.Second,
		Heartbeat: 100 * time.Millisecond,
		// Steps run as the test's user: they use the test's temporary
		// directories, which only that user may enter.
		ExecUser: strconv.Itoa(os.Geteuid()),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ra.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			ra.done <- err
		case <-time.After(patience):
			t.Errorf("agent did not stop within %s of cancelling its context", patience)
		}
	})
	return ra
}

// wait waits for Run to return.
// patience bounds every wait for an event in these tests. It is a guard
// against hanging, not a requirement: on a busy machine events take
// longer, and the tests wait for them, never for a time.
const patience = 2 * time.Minute

func (ra *runningAgent) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-ra.done:
		ra.done <- err
		return err
	case <-time.After(patience):
		t.Fatalf("Run did not return within %s", patience)
		return nil
	}
}

func hasLine(step string, line string) func(*serverJob) bool {
	return func(sj *serverJob) bool { return slices.Contains(sj.logs[step], line) }
}

func isRunning(step string) func(*serverJob) bool {
	return func(sj *serverJob) bool {
		return slices.ContainsFunc(sj.steps, func(u rpc.StepUpdate) bool { return u.Step == step && u.Status == "running" })
	}
}

func completed(sj *serverJob) bool { return sj.complete != nil }

// processGone reports whether pid no longer exists (reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs %s later", pid, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitUntil waits for cond, checking it every few milliseconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gate is a file a step waits for: the test creates it (open) when it
// has seen what it must see while the step still runs.
type gate string

func newGate(t *testing.T) gate { return gate(filepath.Join(t.TempDir(), "go")) }

// wait is a shell command that blocks until the gate is open.
func (g gate) wait() string { return fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done", g) }

func (g gate) open(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(string(g), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sleeper is a step that writes its PID to pidFile and then sleeps.
func sleeper(pidFile string) string {
	return fmt.Sprintf("- name: wait\n  environment:\n    PIDFILE: %s\n  commands:\n  - echo $$ > \"$PIDFILE\"\n  - exec sleep 60\n", pidFile)
}

func TestJobReportsStepsAndLogsInOrder(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	first := repo.Commit("commit", map[string]string{"hello.txt": "hello v1\n"})
	// main moves on: the job's commit is no longer the tip, and with
	// depth 1 the agent must fetch it by SHA.
	repo.Commit("commit", map[string]string{"hello.txt": "hello v2\n"})

	config := execPipeline(`- name: greet
  environment:
    TOKEN:
      from_secret: token
  commands:
  - cat hello.txt
  - echo "commit=$DRONE_COMMIT_SHA token=$TOKEN"
- name: count
  commands:
  - i=1; while [ $i -le 2500 ]; do echo "n $i"; i=$((i+1)); done
- name: fail
  commands:
  - GATE # until the lease was extended: the checkout alone may not outlast a heartbeat
  - exit 3
- name: never
  commands:
  - echo never
- name: notify
  when:
    status: [failure]
  commands:
  - echo notified
`)
	g := newGate(t)
	config = strings.Replace(config, "GATE", g.wait(), 1)
	s := newTestServer(t)
	job := testJob(repo, first, config)
	job.Secrets = map[string]string{"token": "s3cr3t-value"}
	id := s.enqueue(job, localLabels)
	startAgent(t, s, nil)
	s.waitFor(id, "a lease extension", func(sj *serverJob) bool { return sj.extends > 0 })
	g.open(t)
	s.waitFor(id, "completion", completed)
	sj := s.get(id)

	if sj.complete.Status != "failure" {
		t.Errorf("job status %q (%s), want failure", sj.complete.Status, sj.complete.Error)
	}
	want := map[string]string{"greet": "success", "count": "success", "fail": "failure", "never": "skipped", "notify": "success"}
	if !equalMaps(sj.final, want) {
		t.Errorf("final step statuses %v, want %v", sj.final, want)
	}
	// Every step that ran reported running before its final state, and
	// the final update carries times and exit code.
	for _, step := range []string{"greet", "count", "fail", "notify"} {
		var got []string
		for _, u := range sj.steps {
			if u.Step == step {
				got = append(got, u.Status)
			}
		}
		if len(got) != 2 || got[0] != "running" {
			t.Errorf("step %s updates %v, want running then final", step, got)
		}
	}
	for _, u := range sj.steps {
		if u.Step == "fail" && u.Status == "failure" {
			if u.ExitCode != 3 || u.Started.IsZero() || u.Finished.Before(u.Started) {
				t.Errorf("fail step's final update %+v: want exit code 3 and times", u)
			}
		}
	}
	if len(sj.logs["never"]) != 0 {
		t.Errorf("skipped step has logs %q", sj.logs["never"])
	}

	greet := sj.logs["greet"]
	wantGreet := []string{"+ cat hello.txt", "hello v1", `+ echo "commit=$DRONE_COMMIT_SHA token=$TOKEN"`, "commit=" + first + " token=********"}
	if !slices.Equal(greet, wantGreet) {
		t.Errorf("greet logs:\n%q\nwant\n%q", greet, wantGreet)
	}
	count := sj.logs["count"]
	if len(count) != 2501 {
		t.Fatalf("count step has %d lines, want 2501", len(count))
	}
	for i, l := range count[1:] {
		if l != fmt.Sprintf("n %d", i+1) {
			t.Fatalf("count line %d is %q, want %q", i+1, l, fmt.Sprintf("n %d", i+1))
		}
	}
	if len(sj.gaps) != 0 || sj.resent != 0 {
		t.Errorf("log protocol: gaps %v, %d lines re-sent without a fault", sj.gaps, sj.resent)
	}
	if !slices.Equal(sj.logs["notify"], []string{"+ echo notified", "notified"}) {
		t.Errorf("notify logs %q", sj.logs["notify"])
	}
	if sj.extends == 0 {
		t.Error("the agent never extended the lease")
	}
}

// TestShortJobReportsInOneRequest checks that the reports a job queues
// together go in one request: a short step's final state, its log lines
// and the job's completion. The reports linger until the job ends here:
// with the default 30 ms, whether a short job's reports meet in one
// request depends on how fast the machine runs it, which is a matter for
// the dispatch benchmark (docs/benchmarks.md), not for a test.
func TestShortJobReportsInOneRequest(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	id := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n")), localLabels)
	startAgent(t, s, func(c *Config) { c.reportLinger = patience })
	s.waitFor(id, "completion", completed)
	sj := s.get(id)
	if sj.complete.Status != "success" {
		t.Fatalf("job status %q (%s), want success", sj.complete.Status, sj.complete.Error)
	}
	if sj.completedWith < 2 {
		t.Errorf("Complete came with %d other reports, want at least the step's logs and final state in the same request", sj.completedWith)
	}
	var got []string
	for _, u := range sj.steps {
		got = append(got, u.Status)
	}
	if !slices.Equal(got, []string{"running", "success"}) {
		t.Errorf("step updates %v, want running then success", got)
	}
	if want := []string{"+ echo hi", "hi"}; !slices.Equal(sj.logs["hi"], want) {
		t.Errorf("logs %q, want %q", sj.logs["hi"], want)
	}
	s.mu.Lock()
	reports := s.reports
	s.mu.Unlock()
	if reports == 0 {
		t.Error("the agent never used the report endpoint")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestLogsStreamWhileStepRuns(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	g := newGate(t)
	id := s.enqueue(testJob(repo, sha, execPipeline(fmt.Sprintf("- name: slow\n  commands:\n  - echo first\n  - %s\n  - echo second\n", g.wait()))), localLabels)
	startAgent(t, s, nil)

	// The step waits for the gate: its first line must reach the server
	// while it runs, not with its end.
	s.waitFor(id, "step running", isRunning("slow"))
	s.waitFor(id, "first line", hasLine("slow", "first"))
	if sj := s.get(id); sj.final["slow"] != "" || slices.Contains(sj.logs["slow"], "second") {
		t.Fatalf("step already finished when its first line arrived: %+v", sj.steps)
	}
	g.open(t)
	s.waitFor(id, "completion", completed)
	if sj := s.get(id); sj.complete.Status != "success" || !slices.Equal(sj.logs["slow"], []string{"+ echo first", "first", "+ " + g.wait(), "+ echo second", "second"}) {
		t.Errorf("job ended %+v with logs %q", sj.complete, sj.logs["slow"])
	}
}

func TestServerOutageLosesNothing(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	const n = 200
	// The step prints half its lines slowly, waits for the gate, and
	// prints the rest.
	g := newGate(t)
	id := s.enqueue(testJob(repo, sha, execPipeline(fmt.Sprintf(
		"- name: print\n  commands:\n  - i=1; while [ $i -le %d ]; do echo \"line $i\"; sleep 0.01; i=$((i+1)); done; %s; while [ $i -le %d ]; do echo \"line $i\"; i=$((i+1)); done\n",
		n/2, g.wait(), n))), localLabels)
	startAgent(t, s, nil)

	// The server stores the next two log batches but loses its answers:
	// the agent must re-send them.
	s.ackLoss.Store(2)
	s.waitFor(id, "20 lines", func(sj *serverJob) bool { return len(sj.logs["print"]) >= 20 && s.ackLoss.Load() <= 0 })
	s.down.Store(true)
	refused := s.refused.Load()
	waitUntil(t, "the agent to retry during the outage", func() bool { return s.refused.Load() >= refused+3 })
	during := len(s.get(id).logs["print"])
	s.down.Store(false)
	g.open(t)
	s.waitFor(id, "completion", completed)

	sj := s.get(id)
	if s.refused.Load() == 0 || sj.resent == 0 {
		t.Fatalf("fault injection did not happen: %d calls refused, %d lines re-sent", s.refused.Load(), sj.resent)
	}
	if during >= n {
		t.Fatalf("all %d lines were there before the outage ended; the outage hit nothing", during)
	}
	if sj.complete.Status != "success" {
		t.Errorf("job status %q (%s), want success", sj.complete.Status, sj.complete.Error)
	}
	got := sj.logs["print"]
	if len(got) != n+1 {
		t.Fatalf("server has %d lines, want %d", len(got), n+1)
	}
	for i := 1; i <= n; i++ {
		if got[i] != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d is %q", i, got[i])
		}
	}
	if len(sj.gaps) != 0 {
		t.Errorf("batches skipped lines: %v", sj.gaps)
	}
	if sj.final["print"] != "success" {
		t.Errorf("step status %q", sj.final["print"])
	}
}

func TestLeaseRetriesUntilServerAnswers(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	s.drop.Store(true) // connections are cut: network errors, not answers
	id := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n")), localLabels)
	startAgent(t, s, nil)
	waitUntil(t, "a third attempt to lease", func() bool { return s.refused.Load() >= 3 })
	if s.get(id).leased {
		t.Fatal("job leased while the server was down")
	}
	s.drop.Store(false)
	s.waitFor(id, "completion", completed)
	if sj := s.get(id); sj.complete.Status != "success" || !slices.Equal(sj.logs["hi"], []string{"+ echo hi", "hi"}) {
		t.Errorf("job ended %+v with logs %q", sj.complete, sj.logs)
	}
}

func TestCancelStopsStep(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	id := s.enqueue(testJob(repo, sha, execPipeline(sleeper(pidFile)+"- name: after\n  commands:\n  - echo after\n")), localLabels)
	startAgent(t, s, nil)
	s.waitFor(id, "step running", isRunning("wait"))
	pid := readPID(t, pidFile)

	cancelled := time.Now()
	s.set(id, func(sj *serverJob) { sj.cancel = true })
	s.waitFor(id, "completion after cancel", completed)
	t.Logf("cancelled job completed after %s", time.Since(cancelled).Round(time.Millisecond))
	waitGone(t, pid)

	sj := s.get(id)
	if sj.complete.Status != "killed" || sj.complete.Error != errCancelled.Error() {
		t.Errorf("complete %+v, want killed: cancelled", sj.complete)
	}
	if sj.final["wait"] != "killed" || sj.final["after"] != "skipped" {
		t.Errorf("step statuses %v, want wait killed and after skipped", sj.final)
	}
}

func TestLeaseLostStopsJob(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	id := s.enqueue(testJob(repo, sha, execPipeline(sleeper(pidFile))), localLabels)
	next := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n")), localLabels)
	startAgent(t, s, nil) // capacity 1: the next job waits for the first
	s.waitFor(id, "step running", isRunning("wait"))
	pid := readPID(t, pidFile)
	if s.get(next).leased {
		t.Fatal("second job leased while the first runs on a capacity-1 agent")
	}

	s.set(id, func(sj *serverJob) { sj.lost = true })
	waitGone(t, pid)
	// The freed slot takes the next job.
	s.waitFor(next, "next job's completion", completed)
	sj := s.get(id)
	if sj.complete != nil || sj.completeAttempts != 0 {
		t.Errorf("the agent tried to complete a job whose lease it lost: %d attempts", sj.completeAttempts)
	}
}

func TestDrainFinishesRunningJob(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	g := newGate(t)
	id := s.enqueue(testJob(repo, sha, execPipeline(fmt.Sprintf("- name: work\n  commands:\n  - %s\n  - echo done\n", g.wait()))), localLabels)
	ra := startAgent(t, s, func(c *Config) { c.Capacity = 2 })
	s.waitFor(id, "step running", isRunning("work"))

	ra.a.Drain()
	// The idle worker's long poll ends.
	s.waitIdle()
	later := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n")), localLabels)
	g.open(t)
	if err := ra.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	returned := time.Now()
	sj := s.get(id)
	if sj.complete == nil || sj.complete.Status != "success" || sj.completed.After(returned) {
		t.Fatalf("Run returned before the running job completed: %+v", sj.complete)
	}
	if !slices.Contains(sj.logs["work"], "done") {
		t.Errorf("logs %q lack the step's last line", sj.logs["work"])
	}
	if s.get(later).leased {
		t.Error("a draining agent leased a new job")
	}
}

func TestStopKillsRunningJob(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	id := s.enqueue(testJob(repo, sha, execPipeline(sleeper(pidFile))), localLabels)
	ra := startAgent(t, s, nil)
	s.waitFor(id, "step running", isRunning("wait"))
	pid := readPID(t, pidFile)

	// First signal: drain. Second: stop.
	ra.a.Drain()
	time.Sleep(200 * time.Millisecond)
	if s.get(id).complete != nil {
		t.Fatal("drain ended the running job")
	}
	ra.cancel()
	if err := ra.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !processGone(pid) {
		t.Error("the step's process outlived Run")
	}
	sj := s.get(id)
	if sj.complete == nil || sj.complete.Status != "killed" || sj.complete.Error != errAgentStopped.Error() {
		t.Fatalf("complete %+v, want killed: agent stopped", sj.complete)
	}
	if sj.final["wait"] != "killed" {
		t.Errorf("step status %q, want killed", sj.final["wait"])
	}
}

func TestCapacityRunsJobsConcurrently(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	g := newGate(t)
	var ids []int64
	for range 2 {
		ids = append(ids, s.enqueue(testJob(repo, sha, execPipeline(fmt.Sprintf("- name: work\n  commands:\n  - %s\n", g.wait()))), localLabels))
	}
	startAgent(t, s, func(c *Config) { c.Capacity = 2 })
	for _, id := range ids {
		s.waitFor(id, "step running", isRunning("work"))
	}
	for _, id := range ids {
		if s.get(id).complete != nil {
			t.Fatal("a job completed before the other started: jobs ran one at a time")
		}
	}
	g.open(t)
	for _, id := range ids {
		s.waitFor(id, "completion", completed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.leases {
		if l.Name != "test-agent" || l.Capacity != 2 || l.Labels[LabelBackend] != "local" || l.Labels[LabelPlatform] == "" || l.Wait != 2*time.Second {
			t.Fatalf("lease request %+v", l)
		}
	}
}

func TestCloneFailureIsReported(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	job := testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n"))
	job.Clone.URL = "file://" + filepath.Join(t.TempDir(), "missing")
	id := s.enqueue(job, localLabels)
	startAgent(t, s, nil)
	s.waitFor(id, "completion", completed)
	sj := s.get(id)
	if sj.complete.Status != "error" || !strings.Contains(sj.complete.Error, "clone: git clone") {
		t.Errorf("complete %+v, want error from git clone", sj.complete)
	}
	if sj.final["hi"] != "skipped" {
		t.Errorf("step status %q, want skipped", sj.final["hi"])
	}
}

func TestCloneDisabledAndBadConfig(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	repo := &gittest.Repo{Dir: "/nonexistent"}
	noClone := testJob(repo, "", execPipeline("- name: ls\n  commands:\n  - ls -A | wc -l\n"))
	noClone.Clone.Disable = true
	a := s.enqueue(noClone, localLabels)
	// An unknown key is only a warning (Drone ignores it); a dependency on
	// a step that does not exist is an error.
	bad := testJob(repo, "", "kind: pipeline\ntype: exec\nname: build\nsteps:\n- name: x\n  commands: [true]\n  depends_on: [nowhere]\n")
	b := s.enqueue(bad, localLabels)
	other := testJob(repo, "", execPipeline("- name: x\n  commands: [true]\n"))
	other.Pipeline = "nope"
	c := s.enqueue(other, localLabels)
	startAgent(t, s, nil)
	for _, id := range []int64{a, b, c} {
		s.waitFor(id, "completion", completed)
	}
	if sj := s.get(a); sj.complete.Status != "success" || !slices.Equal(sj.logs["ls"], []string{"+ ls -A | wc -l", "0"}) {
		t.Errorf("clone-disabled job: %+v, logs %q (want an empty workspace)", sj.complete, sj.logs["ls"])
	}
	if sj := s.get(b); sj.complete.Status != "error" || !strings.Contains(sj.complete.Error, "nowhere") {
		t.Errorf("bad config: complete %+v", sj.complete)
	}
	if sj := s.get(c); sj.complete.Status != "error" || !strings.Contains(sj.complete.Error, `no pipeline named "nope"`) {
		t.Errorf("unknown pipeline: complete %+v", sj.complete)
	}
}

// TestUntrustedJobIsRefused checks the agent's half of the trust model: a
// job of an untrusted repo that would run on the host ends in error before
// anything runs, whatever the server let through.
func TestUntrustedJobIsRefused(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	marker := filepath.Join(t.TempDir(), "ran")
	job := testJob(&gittest.Repo{Dir: "/nonexistent"}, "", execPipeline("- name: x\n  commands: [touch "+marker+"]\n"))
	job.Clone.Disable = true
	job.Trusted = false
	id := s.enqueue(job, localLabels)
	startAgent(t, s, nil)
	s.waitFor(id, "completion", completed)
	want := `pipeline "build": type: exec runs its steps as processes on the agent's host, which needs a trusted repository`
	if sj := s.get(id); sj.complete.Status != "error" || !strings.Contains(sj.complete.Error, want) {
		t.Errorf("complete %+v, want error %q", sj.complete, want)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the step ran: %v", err)
	}
}

func TestTokenFileAndExecUser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  agent-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Server: "http://ci:8080", TokenFile: file}, nil)
	if err != nil || a.cfg.Token != "agent-token-1" {
		t.Fatalf("token from file: %v, token %q", err, a.cfg.Token)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Server: "http://ci:8080", TokenFile: empty}, nil); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := New(Config{Server: "http://ci:8080", TokenFile: filepath.Join(dir, "missing")}, nil); err == nil || !strings.Contains(err.Error(), "reading the agent token") {
		t.Errorf("missing token file: %v", err)
	}

	// Who host steps run as.
	if u, err := resolveExecUser("", 1000); u != nil || err != nil {
		t.Errorf("not root, no --exec-user: %+v, %v; want the agent's user", u, err)
	}
	if u, err := resolveExecUser("", 0); err != nil || u == nil || u.Name != DefaultExecUser {
		t.Errorf("root, no --exec-user: %+v, %v; want %s", u, err, DefaultExecUser)
	}
	if u, err := resolveExecUser("root", 0); u != nil || err != nil {
		t.Errorf("root, --exec-user root: %+v, %v; want the agent's user", u, err)
	}
	if _, err := resolveExecUser("nobody", 1000); err == nil || !strings.Contains(err.Error(), "needs the agent to run as root") {
		t.Errorf("not root, --exec-user nobody: %v", err)
	}
	if _, err := resolveExecUser("no-such-user-ferry", 0); err == nil || !strings.Contains(err.Error(), "--exec-user") {
		t.Errorf("unknown user: %v", err)
	}
}

// TestWorldReadableTokenFile: host steps run as another user so that
// they cannot read the agent's token; an agent that would run them so
// refuses a token file every user may read, which they could.
func TestWorldReadableTokenFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		msg := "running host steps as another user needs root; the test runs as uid " + strconv.Itoa(os.Geteuid())
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("agent-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	for _, backend := range []string{BackendLocal, BackendAuto, BackendDocker + "," + BackendLocal} {
		_, err := New(Config{Server: "http://ci:8080", TokenFile: file, Backend: backend, ExecUser: "nobody"}, nil)
		if err == nil || !strings.Contains(err.Error(), "readable by every user") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("--backend %s, host steps as nobody, token file mode 0644: %v; want it refused", backend, err)
		}
	}
	// Docker steps run in containers, which do not see the file.
	if _, err := New(Config{Server: "http://ci:8080", TokenFile: file, Backend: BackendDocker, ExecUser: "nobody"}, nil); err != nil {
		t.Errorf("--backend docker, token file mode 0644: %v; want a warning only", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Server: "http://ci:8080", TokenFile: file, Backend: BackendLocal, ExecUser: "nobody"}, nil); err != nil {
		t.Errorf("token file mode 0600: %v", err)
	}
}

func TestOutboxBlocksWhenFull(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.enqueue(rpc.Job{}, nil)
	s.set(id, func(sj *serverJob) { sj.leased = true })
	job := s.get(id).job
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := rpc.NewClient(s.URL(), s.token, &http.Client{Transport: tr})

	s.down.Store(true)
	ob := newOutbox(client, &job, testLogger(t))
	ob.maxBytes = 4096
	ob.flushEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- ob.run(ctx) }()

	const n = 1000
	var written atomic.Int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range n {
			ob.line("step", fmt.Appendf(nil, "line %04d", i))
			written.Add(1)
		}
	}()
	// The writer must block, and only once the outbox is full.
	waitUntil(t, "the writer to block", func() bool {
		ob.mu.Lock()
		defer ob.mu.Unlock()
		return ob.blocked > 0 || written.Load() == n
	})
	ob.mu.Lock()
	held := ob.bytes
	ob.mu.Unlock()
	if n1 := written.Load(); n1 >= n || held < ob.maxBytes || n1 < 100 {
		t.Fatalf("writer wrote %d lines of %d (%d bytes held): want it blocked after about %d bytes", n1, n, held, ob.maxBytes)
	}
	s.down.Store(false)
	select {
	case <-wrote:
	case <-time.After(patience):
		t.Fatal("writer still blocked after the server came back")
	}
	ob.finish("success", "")
	if err := <-sent; err != nil {
		t.Fatalf("run: %v", err)
	}
	sj := s.get(id)
	if len(sj.logs["step"]) != n || sj.logs["step"][n-1] != fmt.Sprintf("line %04d", n-1) || sj.complete == nil {
		t.Fatalf("server has %d lines, complete %+v", len(sj.logs["step"]), sj.complete)
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	ok := Config{Server: "http://ci:8080", Token: "t"}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no server", func(c *Config) { c.Server = "" }, "no server URL"},
		{"bad server", func(c *Config) { c.Server = "ci:8080" }, "not valid"},
		{"no token", func(c *Config) { c.Token = "" }, "no agent token"},
		{"backend label", func(c *Config) { c.Labels = map[string]string{"backend": "x"} }, "set by the agent"},
		{"bad backend", func(c *Config) { c.Backend = "podman" }, `backend "podman" is not valid`},
		{"auto combined", func(c *Config) { c.Backend = "auto,local" }, "cannot be combined"},
		{"capacity", func(c *Config) { c.Capacity = -1 }, "capacity -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	a, err := New(Config{Server: "http://ci:8080", Token: "t", Backend: "local, docker"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.kinds, []string{"local", "docker"}) || a.cfg.Capacity != DefaultCapacity || a.cfg.PollWait != DefaultPollWait || a.cfg.Name == "" {
		t.Errorf("defaults not applied: %+v, backends %v", a.cfg, a.kinds)
	}
}

// TestDockerJobCancelLeavesNothing runs a docker job on an agent that
// offers both backends, cancels it, and checks that no container or
// network is left.
func TestDockerJobCancelLeavesNothing(t *testing.T) {
	t.Parallel()
	cli := testimage.Client(t)
	img, err := testimage.Busybox(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"hello.txt": "hello from the repo\n"})
	name := fmt.Sprintf("agent-test-%d", time.Now().UnixNano())
	config := fmt.Sprintf(`kind: pipeline
type: docker
name: %s
steps:
- name: greet
  image: %[2]s
  pull: never
  commands:
  - cat hello.txt
- name: wait
  image: %[2]s
  pull: never
  commands:
  - echo waiting
  - sleep 60
`, name, img)
	s := newTestServer(t)
	job := testJob(repo, sha, config)
	job.Pipeline = name
	id := s.enqueue(job, map[string]string{LabelBackend: BackendDocker})
	// The agent offers both backends: an exec job runs beside the
	// docker one.
	localID := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo on the host\n")), localLabels)
	startAgent(t, s, func(c *Config) { c.Backend = "docker,local" })
	s.waitFor(localID, "local job's completion", completed)
	if sj := s.get(localID); sj.complete.Status != "success" || !slices.Contains(sj.logs["hi"], "on the host") {
		t.Errorf("local job: %+v, logs %q", sj.complete, sj.logs)
	}
	s.mu.Lock()
	names := map[string]string{}
	for _, l := range s.leases {
		names[l.Name] = l.Labels[LabelBackend]
	}
	s.mu.Unlock()
	if !equalMaps(names, map[string]string{"test-agent-docker": "docker", "test-agent-local": "local"}) {
		t.Errorf("lease requests came as %v, want one registration per backend", names)
	}

	s.waitFor(id, "waiting line", hasLine("wait", "waiting"))
	cancelled := time.Now()
	s.set(id, func(sj *serverJob) { sj.cancel = true })
	s.waitFor(id, "completion after cancel", completed)
	t.Logf("cancelled docker job completed after %s", time.Since(cancelled).Round(time.Millisecond))

	sj := s.get(id)
	if sj.complete.Status != "killed" || sj.final["wait"] != "killed" || sj.final["greet"] != "success" {
		t.Errorf("complete %+v, steps %v", sj.complete, sj.final)
	}
	if !slices.Equal(sj.logs["greet"], []string{"+ cat hello.txt", "hello from the repo"}) {
		t.Errorf("greet logs %q", sj.logs["greet"])
	}
	f := filters.NewArgs(filters.Arg("label", labelPipeline+"="+name))
	containers, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	networks, err := cli.NetworkList(t.Context(), network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 0 || len(networks) != 0 {
		t.Errorf("left behind %d containers and %d networks", len(containers), len(networks))
	}
}

// recorder keeps the messages of the records it handles.
type recorder struct {
	slog.Handler
	mu   *sync.Mutex
	msgs *[]string
}

func (r recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, rec.Message)
	r.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return recorder{r.Handler.WithAttrs(as), r.mu, r.msgs}
}

func (r recorder) WithGroup(name string) slog.Handler {
	return recorder{r.Handler.WithGroup(name), r.mu, r.msgs}
}

func TestCompleteAnswerLost(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	id := s.enqueue(testJob(repo, sha, execPipeline("- name: hi\n  commands:\n  - echo hi\n")), localLabels)
	// The server completes the job but its answer is lost; the re-sent
	// Complete then meets a finished job (409), which must not count as
	// a lost lease.
	s.completeAckLoss.Store(true)
	s.ackLoss.Store(1)
	var mu sync.Mutex
	var msgs []string
	ra := startAgentLog(t, s, nil, slog.New(recorder{testLogger(t).Handler(), &mu, &msgs}))
	s.waitFor(id, "completion", completed)
	ra.cancel()
	if err := ra.wait(t); err != nil {
		t.Fatal(err)
	}
	if sj := s.get(id); sj.completeAttempts != 2 || sj.complete.Status != "success" {
		t.Fatalf("%d Complete calls (want 2: the lost answer forces a re-send), complete %+v", sj.completeAttempts, sj.complete)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(msgs, "giving the job up") || !slices.Contains(msgs, "job finished") {
		t.Errorf("agent log %q: want the job finished, not given up", msgs)
	}
}

// TestReusedWorkDirStartsEmpty checks that jobs run one after another on
// one worker, whose work dir is reused, each start in an empty checkout:
// what a job leaves behind (files, read-only directories) is gone for the
// next, and nothing is left in the agent's work dir once it stops.
func TestReusedWorkDirStartsEmpty(t *testing.T) {
	t.Parallel()
	repo := gittest.New(t, t.TempDir())
	sha := repo.Commit("commit", map[string]string{"a": "a"})
	s := newTestServer(t)
	workDir := t.TempDir()
	steps := execPipeline("- name: dirty\n  commands:\n" +
		"  - test -z \"$(ls -A)\" || { ls -A; exit 3; }\n" +
		"  - echo left > leftover && mkdir -p ro/sub && touch ro/sub/f && chmod 500 ro/sub ro\n")
	ra := startAgent(t, s, func(c *Config) { c.WorkDir = workDir })
	for i := range 3 {
		job := testJob(repo, sha, steps)
		job.Clone.Disable = true
		id := s.enqueue(job, localLabels)
		s.waitFor(id, "completion", completed)
		if sj := s.get(id); sj.complete.Status != "success" {
			t.Fatalf("job %d: status %q (%s), logs %q; want success in an empty work dir", i, sj.complete.Status, sj.complete.Error, sj.logs["dirty"])
		}
	}
	ra.cancel()
	if err := ra.wait(t); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(workDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("work dir %s still holds %d entries after the agent stopped, first %s", workDir, len(entries), entries[0].Name())
	}
}
