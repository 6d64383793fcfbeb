package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// countLines is how many numbered lines the crash test's step prints, one
// every 100 ms.
const countLines = 50

// TestServerKilledMidBuild is acceptance test 4: the server is killed with
// SIGKILL while a step is printing, and restarted on the same data
// directory and port. The agent reconnects, the build completes in its
// first attempt, every log line the API showed before the crash is still
// there, and the whole log is the complete sequence with no gap and no
// duplicate.
func TestServerKilledMidBuild(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			opts := serverOptions{}
			if driver == "postgres" {
				opts.Database = postgresDatabase(t)
			}
			pipeline := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: count
  commands:
  - i=1; while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done
`, countLines)
			repo := gittest.NewWithOrigin(t, t.TempDir(), "counter", map[string]string{".drone.yml": pipeline})
			srv := startServer(t, opts)
			c := adminAPI(t, srv)
			const slug = "acme/counter"
			c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
			agent := startAgent(t, srv.URL, c.agentToken("survivor"), agentOptions{Name: "survivor"})
			b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
			logPath := fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/1/steps/1/logs", slug, b.Number)

			// Wait until the API shows some of the lines: those are
			// acknowledged and stored.
			var before []string
			eventually(t, 20*time.Second, 20*time.Millisecond, func() (bool, string) {
				before = lines(c.text(logPath))
				return len(before) >= 12, fmt.Sprintf("the API shows %d log lines", len(before))
			})
			srv.kill9()
			// The agent keeps running the step while the server is away.
			time.Sleep(time.Second)
			srv = srv.restart(t)
			c = c.on(srv)

			b = c.waitBuild(slug, b.Number, 30*time.Second, nil)
			p := b.Pipelines[0]
			if b.Status != "success" || p.Job.Attempts != 1 || p.Agent != "survivor" {
				t.Fatalf("build %s after %d attempts on %q; want success in the first attempt on survivor: %s",
					b.Status, p.Job.Attempts, p.Agent, describe(b))
			}
			if agent.exited() {
				t.Fatalf("the agent exited: %v", agent.err)
			}
			after := lines(c.text(logPath))
			if len(after) < len(before) || !slices.Equal(after[:len(before)], before) {
				t.Fatalf("lines shown before the crash are not all kept:\nbefore: %q\nafter:  %q", before, after)
			}
			want := []string{fmt.Sprintf(`+ i=1; while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done`, countLines)}
			for i := 1; i <= countLines; i++ {
				want = append(want, fmt.Sprintf("line %d", i))
			}
			if !slices.Equal(after, want) {
				t.Fatalf("log after the restart has %d lines, want the %d of 1..%d exactly once:\n%s",
					len(after), len(want), countLines, strings.Join(after, "\n"))
			}
			t.Logf("%d of %d lines were stored before the crash", len(before), len(want))
		})
	}
}
