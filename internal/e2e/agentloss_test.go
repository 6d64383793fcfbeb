package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// leaseTTL is the short lease TTL of the agent-loss tests.
const leaseTTL = 3 * time.Second

// sleeperPipeline returns a pipeline whose step sleeps on the first
// attempt only: the first attempt creates dir/attempted, a later one finds
// it and succeeds. The first attempt writes its shell's pid to dir/pid, so
// that the test can end the step that an agent killed with SIGKILL leaves
// behind.
func sleeperPipeline(dir string) string {
	return fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: work
  commands:
  - if [ -e %[1]s/attempted ]; then echo "second attempt"; exit 0; fi
  - echo $$$$ > %[1]s/pid
  - touch %[1]s/attempted
  - echo "first attempt, sleeping"
  - sleep 60
`, dir)
}

// TestAgentKilledMidStep is acceptance test 3: an agent killed with
// SIGKILL in the middle of a step stops extending its lease, and the job
// reaches a definite state within the lease TTL: with one attempt allowed
// it fails with "agent lost"; with two it is re-queued, and another agent
// runs it to success.
func TestAgentKilledMidStep(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxAttempts int
	}{
		{"agent lost", 1},
		{"requeued", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stepDir := t.TempDir()
			t.Cleanup(func() { killGroupFromFile(t, filepath.Join(stepDir, "pid")) })
			repo := gittest.NewWithOrigin(t, t.TempDir(), "svc", map[string]string{".drone.yml": sleeperPipeline(stepDir)})
			srv := startServer(t, serverOptions{Args: []string{
				"--lease-ttl", leaseTTL.String(), "--max-attempts", fmt.Sprint(tc.maxAttempts)}})
			c := adminAPI(t, srv)
			const slug = "acme/svc"
			c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
			token := c.agentToken("agents")
			first := startAgent(t, srv.URL, token, agentOptions{Name: "doomed"})

			b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
			// Wait until the step really runs on the first agent.
			eventually(t, 20*time.Second, 20*time.Millisecond, func() (bool, string) {
				b = c.build(slug, b.Number)
				p := b.Pipelines[0]
				if p.Steps[0].Status != "running" {
					return false, "step not running yet: " + describe(b)
				}
				log := c.stepLog(slug, b.Number, p.Number, p.Steps[0].Number)
				return strings.Contains(log, "first attempt, sleeping"), "step log so far: " + log
			})
			if a := b.Pipelines[0].Agent; a != "doomed" {
				t.Fatalf("the job runs on %q, want doomed", a)
			}
			first.kill9()
			killed := time.Now()

			// Once the lease expires the job is no longer running. The
			// limit is a guard, not a requirement (a lost lease would
			// leave the job running forever); the time is logged.
			limit := 2 * time.Minute
			var job *jobJSON
			eventually(t, limit, 20*time.Millisecond, func() (bool, string) {
				b = c.build(slug, b.Number)
				job = b.Pipelines[0].Job
				return job.Status != "running", "job still running: " + describe(b)
			})
			took := time.Since(killed)
			t.Logf("the job left running %s after the agent was killed (lease TTL %s)", took.Round(time.Millisecond), leaseTTL)

			if tc.maxAttempts == 1 {
				if job.Status != "error" || job.Error != "agent lost" || job.Attempts != 1 {
					t.Fatalf("job = %s %q after %d attempts, want error \"agent lost\" after 1", job.Status, job.Error, job.Attempts)
				}
				b = c.waitBuild(slug, b.Number, 5*time.Second, nil)
				p := b.Pipelines[0]
				if b.Status != "error" || p.Status != "error" || p.Error != "agent lost" {
					t.Fatalf("build %s, pipeline %s %q; want both error \"agent lost\"", b.Status, p.Status, p.Error)
				}
				if s := p.Steps[0]; !done(s.Status) {
					t.Errorf("step %s is left %s; want a final state", s.Name, s.Status)
				}
				return
			}

			// Re-queued: pending again, with the first attempt counted.
			if job.Status != "pending" || job.Attempts != 1 {
				t.Fatalf("job = %s after %d attempts; want pending after 1", job.Status, job.Attempts)
			}
			startAgent(t, srv.URL, token, agentOptions{Name: "rescuer"})
			b = c.waitBuild(slug, b.Number, 20*time.Second, nil)
			p := b.Pipelines[0]
			if b.Status != "success" || p.Agent != "rescuer" || p.Job.Attempts != 2 {
				t.Fatalf("build %s on %q after %d attempts; want success on rescuer after 2: %s", b.Status, p.Agent, p.Job.Attempts, describe(b))
			}
			log := lines(c.stepLog(slug, b.Number, p.Number, p.Steps[0].Number))
			if !slices.Contains(log, "first attempt, sleeping") || !slices.Contains(log, "second attempt") {
				t.Errorf("step log = %q; want the lines of both attempts", log)
			}
			if _, err := os.Stat(filepath.Join(stepDir, "attempted")); err != nil {
				t.Errorf("the first attempt did not run: %v", err)
			}
		})
	}
}
