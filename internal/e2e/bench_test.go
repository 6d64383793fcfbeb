package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryci/ferry/internal/gittest"
)

// noopPipeline is the minimal job: one pipeline, no checkout, one step
// running `true` on the local backend.
const noopPipeline = `kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: noop
  commands: [true]
`

// benchStores are the stores the benchmarks run on; PostgreSQL only when
// FERRY_TEST_POSTGRES is set (postgresDatabase skips otherwise).
var benchStores = []string{"sqlite", "postgres"}

// benchServer starts a server on the given store with a repo holding
// pipeline, and returns it with an admin client, the repo's slug and the
// commit to build.
func benchServer(b testing.TB, store, pipeline string, repoFields map[string]any) (*ferryServer, *api, string, string) {
	b.Helper()
	opts := serverOptions{}
	if store == "postgres" {
		opts.Database = postgresDatabase(b)
	}
	repo := gittest.NewWithOrigin(b, b.TempDir(), "bench", map[string]string{".drone.yml": pipeline})
	srv := startServer(b, opts)
	c := adminAPI(b, srv)
	const slug = "acme/bench"
	fields := map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"}
	for k, v := range repoFields {
		fields[k] = v
	}
	c.createRepo(fields)
	return srv, c, slug, repo.Git("rev-parse", "HEAD")
}

// BenchmarkDispatch measures dispatch throughput: how fast agents drain a
// backlog of no-op jobs (noopPipeline: lease, run `true` on the local
// backend, report the step's two states, its log line and the result).
// Each iteration is one job. The backlog of b.N manual builds is created
// first with the timer stopped and no agent connected; the timer runs
// from the start of the agent processes (each with --capacity 1, so
// agents=16 is 16 processes) until the queue is empty, as the server's
// /metrics reports it. It reports jobs/s, the server's VmRSS when idle
// (started, repo added, nothing queued) and its VmHWM (peak RSS) at the
// end, which covers creating the backlog and draining it.
//
// To show where the time goes it also reports, per job, the CPU time of
// the server, of the agents (with their steps' processes), and on
// PostgreSQL of the database's backends and the transactions they
// committed (pg_stat_database.xact_commit, which counts every statement
// run outside a transaction); machine-cpu-ms/job and machine-busy-% are
// for the whole machine, other processes included.
//
// Run it with a fixed backlog for stable numbers:
//
//	go test -run '^$' -bench Dispatch -benchtime 1000x ./internal/e2e/
func BenchmarkDispatch(b *testing.B) {
	for _, store := range benchStores {
		for _, agents := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("store=%s/agents=%d", store, agents), func(b *testing.B) {
				srv, c, slug, sha := benchServer(b, store, noopPipeline, nil)
				var pg *pgStats
				if store == "postgres" {
					pg = newPGStats(b, srv.opts.Database)
				}
				token := c.agentToken("bench")
				time.Sleep(time.Second)
				idle := srv.vmKiB(b, "VmRSS")

				createBuilds(b, c, slug, sha, b.N)
				serverCPU, _ := srv.cpuTime(b)
				busy, total := machineCPU(b)
				if pg != nil {
					pg.start()
				}
				b.ResetTimer()
				procs := make([]*proc, agents)
				for i := range procs {
					procs[i] = startAgent(b, srv.URL, token, agentOptions{Name: fmt.Sprintf("bench-%d", i)})
				}
				waitQueueEmpty(b, c, 5*time.Minute)
				b.StopTimer()
				elapsed := b.Elapsed()
				busy2, total2 := machineCPU(b)
				if pg != nil {
					commits, cpu := pg.stop()
					b.ReportMetric(float64(commits)/float64(b.N), "pg-commits/job")
					b.ReportMetric(ms(cpu)/float64(b.N), "pg-cpu-ms/job")
				}
				serverCPU2, _ := srv.cpuTime(b)
				var agentCPU time.Duration
				for _, p := range procs {
					self, children := p.cpuTime(b)
					agentCPU += self + children
				}

				if ok := countBuilds(b, c, slug, "success"); ok != b.N {
					b.Fatalf("%d builds succeeded, want %d", ok, b.N)
				}
				perJob := func(d time.Duration) float64 { return ms(d) / float64(b.N) }
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
				b.ReportMetric(float64(idle)/1024, "idle-rss-MiB")
				b.ReportMetric(float64(srv.vmKiB(b, "VmHWM"))/1024, "peak-rss-MiB")
				b.ReportMetric(perJob(serverCPU2-serverCPU), "server-cpu-ms/job")
				b.ReportMetric(perJob(agentCPU), "agents-cpu-ms/job")
				b.ReportMetric(perJob(busy2-busy), "machine-cpu-ms/job")
				b.ReportMetric(100*float64(busy2-busy)/float64(total2-total), "machine-busy-%")
			})
		}
	}
}

// BenchmarkWebhookToStep measures the latency from sending a signed GitHub
// push webhook to the start of the build's first step, with one warm agent
// waiting for work (local backend, SQLite). The start is the step's
// "started" time as the API reports it (the agent's clock, the same
// machine's), so the measurement includes the webhook's verification, the
// config read from the server's git mirror, the build's creation, the
// agent's lease and, with clone=on, the agent's git checkout. Each
// iteration is one build, waited for until it finishes, so the agent is
// idle when the next webhook arrives. It reports p50 and p99 in
// milliseconds, and the p50 of the webhook request alone (until the server
// answers that the build was created); run enough iterations for p99 to
// mean something:
//
//	go test -run '^$' -bench WebhookToStep -benchtime 200x ./internal/e2e/
func BenchmarkWebhookToStep(b *testing.B) {
	for _, clone := range []bool{false, true} {
		name := "clone=off"
		pipeline := noopPipeline
		if clone {
			name = "clone=on"
			pipeline = strings.Replace(noopPipeline, "clone:\n  disable: true\n", "", 1)
		}
		b.Run(name, func(b *testing.B) {
			const secret = "bench-webhook-secret"
			srv, c, slug, sha := benchServer(b, "sqlite", pipeline, map[string]any{"forge": "github", "webhook_secret": secret})
			startAgent(b, srv.URL, c.agentToken("bench"), agentOptions{Name: "warm"})
			payload := githubPush(slug, "https://github.com/"+slug+".git", "main", strings.Repeat("0", 40), sha, "Initial commit")
			hookURL := srv.URL + "/hook/" + slug
			var answered []time.Duration
			send := func() (int64, time.Time) {
				sent := time.Now()
				status, body := sendHook(b, c.hc, hookURL, "push", payload, secret)
				answered = append(answered, time.Since(sent))
				if status != http.StatusOK {
					b.Fatalf("webhook: %d %s", status, body)
				}
				var out struct {
					Build int64 `json:"build"`
				}
				if _, err := fmt.Sscanf(body, `{"build":%d}`, &out.Build); err != nil {
					b.Fatalf("webhook answer %q: %v", body, err)
				}
				return out.Build, sent
			}
			// Warm up: the agent's first job, the server's mirror.
			for range 3 {
				n, _ := send()
				if bb := waitBuildFast(b, c, slug, n); bb.Status != "success" {
					b.Fatalf("warm-up build %s: %s", bb.Status, describe(bb))
				}
			}

			samples := make([]time.Duration, 0, b.N)
			answered = answered[:0]
			b.ResetTimer()
			for range b.N {
				n, sent := send()
				bb := waitBuildFast(b, c, slug, n)
				if bb.Status != "success" {
					b.Fatalf("build %d %s: %s", n, bb.Status, describe(bb))
				}
				samples = append(samples, bb.Pipelines[0].Steps[0].Started.Sub(sent))
			}
			b.StopTimer()
			slices.Sort(samples)
			b.ReportMetric(ms(percentile(samples, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(samples, 99)), "p99-ms")
			// How much of it is the webhook request itself: verifying it,
			// reading the config at the commit, storing the build.
			slices.Sort(answered)
			b.ReportMetric(ms(percentile(answered, 50)), "hook-p50-ms")
		})
	}
}

// BenchmarkServerIdleRSS reports the resident memory of an idle server:
// started, with a repo and one agent long-polling it, left alone for three
// seconds. Each iteration waits 10 ms and samples the server's VmRSS; it
// reports the largest sample, and VmHWM, the peak since the server
// started.
//
//	go test -run '^$' -bench ServerIdleRSS ./internal/e2e/
func BenchmarkServerIdleRSS(b *testing.B) {
	for _, store := range benchStores {
		b.Run("store="+store, func(b *testing.B) {
			srv, c, _, _ := benchServer(b, store, noopPipeline, nil)
			startAgent(b, srv.URL, c.agentToken("idle"), agentOptions{Name: "idle"})
			time.Sleep(3 * time.Second)
			var rss int64
			b.ResetTimer()
			for range b.N {
				time.Sleep(10 * time.Millisecond)
				rss = max(rss, srv.vmKiB(b, "VmRSS"))
			}
			b.StopTimer()
			b.ReportMetric(float64(rss)/1024, "idle-rss-MiB")
			b.ReportMetric(float64(srv.vmKiB(b, "VmHWM"))/1024, "peak-rss-MiB")
		})
	}
}

// pgStats measures what a database's PostgreSQL backends do: the
// transactions they commit and the CPU time they use.
type pgStats struct {
	t       testing.TB
	conn    *pgx.Conn
	db      string
	commits int64
	cpu     map[int]time.Duration
}

// newPGStats connects to dsn to watch its database.
func newPGStats(t testing.TB, dsn string) *pgStats {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &pgStats{t: t, conn: conn, db: conn.Config().Database}
}

// sample returns the database's committed transactions and the CPU time
// of each of its backends, by pid.
func (s *pgStats) sample() (int64, map[int]time.Duration) {
	ctx := context.Background()
	var commits int64
	// The statistics are those of the current transaction's snapshot;
	// clear it so that they are fresh.
	if _, err := s.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		s.t.Fatal(err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", s.db).Scan(&commits); err != nil {
		s.t.Fatal(err)
	}
	rows, err := s.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", s.db)
	if err != nil {
		s.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		s.t.Fatal(err)
	}
	cpu := map[int]time.Duration{}
	for _, pid := range pids {
		self, _, err := cpuTimeOf(int(pid))
		if err != nil {
			continue // the backend ended meanwhile
		}
		cpu[int(pid)] = self
	}
	return commits, cpu
}

// start records the counters that stop compares with.
func (s *pgStats) start() { s.commits, s.cpu = s.sample() }

// stop returns the transactions committed and the CPU time the backends
// used since start. Backends that ended meanwhile are not counted.
func (s *pgStats) stop() (int64, time.Duration) {
	commits, cpu := s.sample()
	var used time.Duration
	for pid, d := range cpu {
		used += d - s.cpu[pid]
	}
	return commits - s.commits, used
}

// machineCPU returns the machine's busy and total CPU time so far, from
// the first line of /proc/stat.
func machineCPU(t testing.TB) (busy, total time.Duration) {
	t.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(first) // cpu user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("parsing /proc/stat: %v", err)
		}
		d := time.Duration(n) * time.Second / clockTicks
		total += d
		if i != 3 && i != 4 { // idle, iowait
			busy += d
		}
	}
	return busy, total
}

// createBuilds starts n manual builds of sha through the API, eight at a
// time.
func createBuilds(b testing.TB, c *api, slug, sha string, n int) {
	b.Helper()
	err := parallelDo(n, 8, func(int) error {
		return c.try("POST", "/api/repos/"+slug+"/builds", map[string]string{"branch": "main", "sha": sha}, http.StatusCreated, nil)
	})
	if err != nil {
		b.Fatalf("creating builds: %v", err)
	}
}

// waitQueueEmpty waits until the server's /metrics shows no blocked,
// pending or running job.
func waitQueueEmpty(b *testing.B, c *api, timeout time.Duration) {
	b.Helper()
	eventually(b, timeout, 50*time.Millisecond, func() (bool, string) {
		m := metrics(b, c)
		left := m["ferry_jobs_pending"] + m["ferry_jobs_running"] + m["ferry_jobs_blocked"]
		return left == 0, fmt.Sprintf("%v jobs are left in the queue", left)
	})
}

// waitBuildFast polls build n every 2 ms until it is final.
func waitBuildFast(b *testing.B, c *api, slug string, n int64) *buildJSON {
	b.Helper()
	var bb *buildJSON
	eventually(b, 30*time.Second, 2*time.Millisecond, func() (bool, string) {
		bb = c.build(slug, n)
		return done(bb.Status), "build still " + bb.Status
	})
	return bb
}

// metrics scrapes /metrics and returns the samples by name (with labels,
// as written).
func metrics(t testing.TB, c *api) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.SplitSeq(c.text("/metrics"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// countBuilds counts the builds of repo slug with the given status, a
// page of 100 at a time.
func countBuilds(t testing.TB, c *api, slug, status string) int {
	t.Helper()
	n := 0
	before := int64(0)
	for {
		q := "status=" + status + "&limit=100"
		if before > 0 {
			q += "&before=" + strconv.FormatInt(before, 10)
		}
		page := c.builds(slug, q)
		n += len(page)
		if len(page) < 100 {
			return n
		}
		before = page[len(page)-1].Number
	}
}

// percentile returns the p-th percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// ms converts d to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
