package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkDeployFiftyNodes measures the time from "release created" to
// all of 50 `ferry node` processes on loopback running it and reporting it
// healthy (health checks pass at once; one batch of all nodes), and
// reports the median and the worst of b.N deployments.
//
//	go test -run '^$' -bench DeployFiftyNodes -benchtime 10x ./internal/e2e/
func BenchmarkDeployFiftyNodes(b *testing.B) {
	const n = 50
	f := newFleet(b, n, `  - name: prod
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 100%}
    health: {type: command, command: "true", interval: 50ms, healthy_deadline: 1m, progress_deadline: 5m}
`, serverOptions{})
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		url, sum := f.art.release(b, fmt.Sprintf("v%d", i), 0)
		b.StartTimer()
		start := time.Now()
		rel := f.releaseOf(fmt.Sprintf("v%d", i), url, sum)
		d := f.deploy("prod", rel)
		for {
			got := f.running()
			all := len(got) == n
			for _, r := range got {
				all = all && r == rel
			}
			if all {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		if dd := f.wait(d.ID); dd.State != "succeeded" {
			b.Fatalf("deployment %d: %+v", i, dd)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "s-p50/deploy")
	b.ReportMetric(took[len(took)-1].Seconds(), "s-max/deploy")
}

// BenchmarkDeployBatchOverhead measures what the orchestrator adds to
// each batch of a rolling deployment (max_parallel 1, 5 nodes, health
// checks that pass at once, a tiny artifact, no hooks): "gap" is from the
// server judging a batch done to it setting the next batch's desired
// state, and "batch" the whole time per batch, from setting a node's
// desired release to judging it healthy, which includes the node's own
// long-poll answer, download, unpack, switch, check and report.
//
//	go test -run '^$' -bench DeployBatchOverhead -benchtime 5x ./internal/e2e/
func BenchmarkDeployBatchOverhead(b *testing.B) {
	const n = 5
	f := newFleet(b, n, `  - name: prod
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 1}
    health: {type: command, command: "true", interval: 50ms, healthy_deadline: 1m, progress_deadline: 5m}
`, serverOptions{})
	var gaps, batches []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		url, sum := f.art.release(b, fmt.Sprintf("v%d", i), 0)
		rel := f.releaseOf(fmt.Sprintf("v%d", i), url, sum)
		b.StartTimer()
		d := f.wait(f.deploy("prod", rel).ID)
		b.StopTimer()
		if d.State != "succeeded" {
			b.Fatalf("deployment %d: %+v", i, d)
		}
		for k, dn := range d.Nodes {
			batches = append(batches, dn.Finished.Sub(dn.Started))
			if k > 0 {
				gaps = append(gaps, dn.Started.Sub(d.Nodes[k-1].Finished))
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(gaps)
	slices.Sort(batches)
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "ms-p50-gap/batch")
	b.ReportMetric(float64(gaps[len(gaps)-1].Microseconds())/1000, "ms-max-gap/batch")
	b.ReportMetric(float64(batches[len(batches)/2].Microseconds())/1000, "ms-p50/batch")
}
