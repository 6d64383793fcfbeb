package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// pidIn reads a pid a step wrote to path, waiting for the file.
func pidIn(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		data, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false, fmt.Sprintf("the step has not written %s yet", path)
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 1, fmt.Sprintf("%s holds %q", path, data)
	})
	return pid
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// waitGone waits for pid to exit: the test's point is that it does, so
// the timeout only guards against it never happening.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	eventually(t, 30*time.Second, 10*time.Millisecond, func() (bool, string) {
		return processGone(pid), fmt.Sprintf("%s (pid %d) still runs", what, pid)
	})
}

// TestKilledAgentStepStops is finding 5 of issue 7, the second half: an
// agent killed with SIGKILL while its local step appends DEPLOYED lines to
// a file in a loop. The step's shell dies with the agent (parent-death
// signal), so the file stops growing; what the shell started in the
// background is killed when an agent starts again on the same work
// directory; and the re-queued attempt runs after the first one stopped,
// never beside it.
func TestKilledAgentStepStops(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Cleanup(func() { killGroupFromFile(t, filepath.Join(dir, "shell")) })
	deployed := filepath.Join(dir, "deployed")
	config := fmt.Sprintf(`kind: pipeline
type: exec
name: deploy
clone:
  disable: true
steps:
- name: deploy
  commands:
  - if [ -e %[1]s/attempted ]; then for i in 1 2 3; do echo "DEPLOYED by attempt 2" >> %[2]s; done; exit 0; fi
  - touch %[1]s/attempted
  - sleep 300 &
  - echo $$! > %[1]s/child
  - echo $$$$ > %[1]s/shell
  - while true; do echo "DEPLOYED by attempt 1" >> %[2]s; sleep 0.05; done
`, dir, deployed)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "deployer", map[string]string{".drone.yml": config})
	srv := startServer(t, serverOptions{Args: []string{"--lease-ttl", leaseTTL.String(), "--max-attempts", "2"}})
	c := adminAPI(t, srv)
	const slug = "acme/deployer"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	token := c.agentToken("agents")
	workdir := t.TempDir()
	doomed := startAgent(t, srv.URL, token, agentOptions{Name: "doomed", WorkDir: workdir})
	b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))

	shell, child := pidIn(t, filepath.Join(dir, "shell")), pidIn(t, filepath.Join(dir, "child"))
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		data, _ := os.ReadFile(deployed)
		return strings.Count(string(data), "\n") >= 3, "the step has not deployed yet"
	})
	doomed.kill9()
	waitGone(t, shell, "the step's shell, after its agent was killed")
	after, err := os.ReadFile(deployed)
	if err != nil {
		t.Fatal(err)
	}
	if processGone(child) {
		t.Logf("the step's background child %d went with the shell", child)
	}

	// A new agent on the same work dir first kills what the dead one
	// left, then runs the re-queued job.
	startAgent(t, srv.URL, token, agentOptions{Name: "rescuer", WorkDir: workdir})
	waitGone(t, child, "the step's background child, after an agent started on the same work dir")
	b = c.waitBuild(slug, b.Number, time.Minute, nil)
	p := b.Pipelines[0]
	if b.Status != "success" || p.Job.Attempts != 2 || p.Agent != "rescuer" {
		t.Fatalf("build %s after %d attempts on %q; want success in attempt 2 on rescuer: %s",
			b.Status, p.Job.Attempts, p.Agent, describe(b))
	}
	final, err := os.ReadFile(deployed)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(string(final))
	first := lines(string(after))
	if !slices.Equal(got[:len(first)], first) {
		t.Fatalf("the file changed under the lines written before the kill")
	}
	rest := got[len(first):]
	if want := []string{"DEPLOYED by attempt 2", "DEPLOYED by attempt 2", "DEPLOYED by attempt 2"}; !slices.Equal(rest, want) {
		t.Fatalf("after attempt 1's shell was gone the file got %q; want only attempt 2's three lines (no overlap)", rest)
	}
	for _, l := range first {
		if l != "DEPLOYED by attempt 1" {
			t.Fatalf("attempt 2 wrote %q before attempt 1 stopped", l)
		}
	}
}

// outageTTL is the lease TTL of the outage tests. Short, so that an outage
// outlasts it in seconds, yet long enough that a live agent's heartbeat
// (every third of it) never misses a whole TTL and its margin on a busy
// machine: with 2 s, a CI run beside a CPU hog lost a lease ten seconds
// after the outage had ended.
const outageTTL = 6 * time.Second

// longBuild is a build whose one step prints a line every 100 ms until
// the test opens its gate (succeedsFirstTime), running on agent
// "survivor": it is still running when an outage ends, however long the
// outage took on a busy machine.
type longBuild struct {
	c    *api
	slug string
	b    *buildJSON
	gate string
}

// startLongBuild starts a server with opts (and a short lease TTL), an
// agent and a long build, and waits until the API shows the step's first
// lines: it runs, and its lease is held.
func startLongBuild(t *testing.T, opts serverOptions) (*ferryServer, *longBuild) {
	t.Helper()
	opts.Args = append(opts.Args, "--lease-ttl", outageTTL.String(), "--max-attempts", "3")
	gate := filepath.Join(t.TempDir(), "gate")
	// The cap (6000 lines, ten minutes) only ends a test that never opens
	// the gate.
	config := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: count
  commands:
  - i=1; while [ ! -e %q ] && [ $i -le 6000 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done
`, gate)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "long", map[string]string{".drone.yml": config})
	srv := startServer(t, opts)
	lb := &longBuild{c: adminAPI(t, srv), slug: "acme/long", gate: gate}
	lb.c.createRepo(map[string]any{"git_url": repo.URL(), "slug": lb.slug, "poll_interval": "0s"})
	startAgent(t, srv.URL, lb.c.agentToken("survivor"), agentOptions{Name: "survivor"})
	lb.b = lb.c.manualBuild(lb.slug, "main", repo.Git("rev-parse", "HEAD"))
	logPath := fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/1/steps/1/logs", lb.slug, lb.b.Number)
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		n := len(lines(lb.c.text(logPath)))
		return n >= 5, fmt.Sprintf("the API shows %d log lines", n)
	})
	return srv, lb
}

// succeedsFirstTime opens the step's gate, waits for the build and fails
// the test unless it succeeded in its first attempt.
func (lb *longBuild) succeedsFirstTime(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(lb.gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := lb.c.waitBuild(lb.slug, lb.b.Number, time.Minute, nil)
	if p := b.Pipelines[0]; b.Status != "success" || p.Job.Attempts != 1 {
		t.Fatalf("build %s after %d attempts; want success in attempt 1: %s", b.Status, p.Job.Attempts, describe(b))
	}
}

// TestServerOutageKeepsAttempt is finding 5 of issue 7, the first half: the
// server is killed while a step runs and comes back after more than the
// lease TTL. Every lease now looks expired, but the agent is alive: the
// restarted server waits a grace period for its heartbeat instead of
// re-queueing the job, which finishes in its first attempt. On SQLite and
// on PostgreSQL.
func TestServerOutageKeepsAttempt(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			var opts serverOptions
			if driver == "postgres" {
				opts.Database = postgresDatabase(t)
			}
			srv, lb := startLongBuild(t, opts)
			srv.kill9()
			// The outage: longer than the lease TTL, so that every lease
			// has expired when the server comes back.
			time.Sleep(2 * outageTTL)
			srv = srv.restart(t)
			lb.c = lb.c.on(srv)
			lb.succeedsFirstTime(t)
		})
	}
}
