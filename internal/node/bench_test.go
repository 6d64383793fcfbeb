package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/nodeproto"
)

// BenchmarkRollbackToKeptRelease measures acceptance 7's per-node figure:
// switching between two releases kept on disk, with the whole apply
// sequence (state written with fsync, atomic switch, an after hook, a tcp
// health check that passes at once). docs/benchmarks.md has the numbers.
func BenchmarkRollbackToKeptRelease(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dir := b.TempDir()
	cfg, err := ParseConfig(fmt.Appendf(nil, `
root: %s
services:
  app:
    watch: {url: file:///unused}
    hooks: {after: ["true"]}
    health: {type: tcp, address: %q}
`, filepath.Join(dir, "root"), l.Addr().String()))
	if err != nil {
		b.Fatal(err)
	}
	n, err := New(cfg, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	s := n.services["app"]
	ctx := context.Background()
	if err := s.open(ctx); err != nil {
		b.Fatal(err)
	}
	var rels []nodeproto.Release
	for _, v := range []string{"v1", "v2"} {
		body := appRelease(b, v)
		p := filepath.Join(dir, v+".tar.gz")
		if err := os.WriteFile(p, body, 0o644); err != nil {
			b.Fatal(err)
		}
		rel := nodeproto.Release{ID: v, Artifact: &nodeproto.Artifact{URL: "file://" + p, SHA256: sha(body)}}
		if err := s.apply(ctx, rel); err != nil {
			b.Fatal(err)
		}
		rels = append(rels, rel)
		if err := os.Remove(p); err != nil { // from now on, no download is possible
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.apply(ctx, rels[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFleetConvergence measures the node side of acceptance 10's
// first figure: N `ferry node` processes on loopback (FERRY_BENCH_NODES,
// default 50) long-polling a test implementation of the protocol's server
// side; one iteration sets a new release (a new artifact, so every node
// downloads, verifies, unpacks and switches) as the desired state of all
// of them and waits until every node has reported it running, with a tcp
// health check that passes at once. The server's own share (persisting the
// deployment, batching) comes on top. Reported: p50 and max of the
// iterations, in ms.
func BenchmarkFleetConvergence(b *testing.B) {
	nodes := 50
	if v := os.Getenv("FERRY_BENCH_NODES"); v != "" {
		if _, err := fmt.Sscan(v, &nodes); err != nil {
			b.Fatalf("FERRY_BENCH_NODES=%q: %v", v, err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var tokens []string
	for i := range nodes {
		tokens = append(tokens, fmt.Sprintf("tok-%d", i))
	}
	ps := newProtoServer(b, tokens...)
	art := newArtifactServer(b)
	dir := sharedDir(b)
	for i, tok := range tokens {
		root := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(root, 0o755); err != nil {
			b.Fatal(err)
		}
		writeFile(b, filepath.Join(root, "token"), tok)
		cfg := filepath.Join(root, "node.yml")
		writeFile(b, cfg, fmt.Sprintf("root: %s\nname: n%d\nuser: %q\nserver: {url: %q, token_file: %q}\nservices:\n  app: {}\n",
			filepath.Join(root, "data"), i, hookUser(), ps.URL, filepath.Join(root, "token")))
		startNode(b, cfg)
	}
	health := &nodeproto.HealthCheck{Type: "tcp", Address: l.Addr().String()}
	// deploy sets release id as everyone's desired state and waits until
	// every node reports it running.
	deploy := func(id string) time.Duration {
		body := appRelease(b, id)
		art.publish("/"+id+".tar.gz", body)
		start := time.Now()
		ps.setDesired("app", nodeproto.Release{ID: id, Artifact: &nodeproto.Artifact{URL: art.URL + "/" + id + ".tar.gz", SHA256: sha(body)}, Health: health})
		deadline := time.After(5 * time.Minute)
		for {
			ps.mu.Lock()
			done := 0
			for _, r := range ps.byToken {
				for _, s := range r.Services {
					if s.Service == "app" && s.Release == id && s.State == nodeproto.StateRunning {
						done++
					}
				}
			}
			ch := ps.reportCh
			ps.mu.Unlock()
			if done == nodes {
				return time.Since(start)
			}
			select {
			case <-ch:
			case <-deadline:
				b.Fatalf("%d of %d nodes run %s after 5 minutes", done, nodes, id)
			}
		}
	}
	deploy("warmup")
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		took = append(took, deploy(fmt.Sprintf("r%d", i)))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(nodes), "nodes")
}
