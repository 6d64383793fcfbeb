package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// TestTwoServersOnePostgres is acceptance test 5: two servers share one
// PostgreSQL database, three agents lease from them (two from the first,
// one from the second), and 200 builds are started through both servers'
// APIs at once. Every build reaches a final state, and every job runs
// exactly once: each run appends its build number to a shared file, which
// must list every build exactly once, and the API reports one attempt per
// job.
func TestTwoServersOnePostgres(t *testing.T) {
	const builds = 200
	dsn := postgresDatabase(t)
	markers := filepath.Join(t.TempDir(), "markers")
	pipeline := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: mark
  commands:
  - echo "$DRONE_BUILD_NUMBER" >> %s
`, markers)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "shared", map[string]string{".drone.yml": pipeline})
	sha := repo.Git("rev-parse", "HEAD")

	key := randomHex(t, 32)
	s1 := startServer(t, serverOptions{Database: dsn, SecretKey: key})
	s2 := startServer(t, serverOptions{Database: dsn, SecretKey: key})
	c1 := adminAPI(t, s1)
	c2 := c1.on(s2)
	const slug = "acme/shared"
	c1.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	token := c2.agentToken("fleet")
	agents := map[string]*ferryServer{"a1": s1, "a2": s2, "a3": s1}
	for name, s := range agents {
		startAgent(t, s.URL, token, agentOptions{Name: name, Capacity: 2})
	}

	start := time.Now()
	clients := []*api{c1, c2}
	err := parallelDo(builds, 8, func(i int) error {
		return clients[i%2].try("POST", "/api/repos/"+slug+"/builds", map[string]string{"branch": "main", "sha": sha}, 201, nil)
	})
	if err != nil {
		t.Fatalf("starting builds: %v", err)
	}
	eventually(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		for _, st := range []string{"blocked", "pending", "running"} {
			if bs := c1.builds(slug, "status="+st+"&limit=1"); len(bs) > 0 {
				return false, fmt.Sprintf("build %d is still %s", bs[0].Number, st)
			}
		}
		return true, ""
	})
	t.Logf("%d builds through 2 servers and 3 agents took %s", builds, time.Since(start).Round(time.Millisecond))

	// Every build, read back through both servers: final, successful,
	// one attempt, on one of the agents.
	var mu sync.Mutex
	ran := map[string]int{}
	err = parallelDo(builds, 8, func(i int) error {
		var b buildJSON
		if err := clients[i%2].try("GET", fmt.Sprintf("/api/repos/%s/builds/%d", slug, i+1), nil, 200, &b); err != nil {
			return err
		}
		p := b.Pipelines[0]
		if b.Status != "success" || p.Job == nil || p.Job.Attempts != 1 || agents[p.Agent] == nil {
			return fmt.Errorf("build %d: %s on %q, job %+v; want success in one attempt on a1, a2 or a3", b.Number, b.Status, p.Agent, p.Job)
		}
		mu.Lock()
		ran[p.Agent]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("jobs per agent: %v", ran)
	// Both servers handed out jobs from the shared queue.
	if ran["a2"] == 0 || ran["a1"]+ran["a3"] == 0 {
		t.Errorf("jobs per agent = %v; want jobs leased through both servers", ran)
	}
	if bs := c1.builds(slug, ""); len(bs) == 0 || bs[0].Number != builds {
		t.Fatalf("the newest build is not number %d", builds)
	}

	// Each job's step ran exactly once.
	data, err := os.ReadFile(markers)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(string(data))
	var nums []int
	for _, l := range got {
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("marker line %q is not a build number", l)
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for i, n := range nums {
		if n != i+1 || len(nums) != builds {
			t.Fatalf("the steps ran %d times for %d builds; sorted build numbers: %v", len(nums), builds, nums)
		}
	}
}
