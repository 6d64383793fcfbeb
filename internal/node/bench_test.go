package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

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
