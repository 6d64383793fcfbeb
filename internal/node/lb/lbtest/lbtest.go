// Package lbtest starts a real HAProxy (Debian's haproxy) for tests, with
// its runtime API on a unix socket.
package lbtest

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/testnet"
)

// HAProxy is a running haproxy.
type HAProxy struct {
	// Socket is the admin stats socket.
	Socket string
	// AdminAddr is host:port of the same runtime API over TCP, as nodes in
	// containers reach it.
	AdminAddr string
	// Frontend is host:port of the HTTP frontend.
	Frontend string
}

// FreePort returns a free loopback address for a server in another
// process (see internal/testnet).
func FreePort(t testing.TB) string {
	t.Helper()
	return testnet.FreeAddr(t)
}

// Start runs haproxy with an HTTP frontend balancing round-robin over
// servers (name → host:port) in backend "be", health-checked every 100 ms.
// It is skipped without haproxy, unless CI=true.
func Start(t testing.TB, servers map[string]string) *HAProxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		msg := "haproxy is not installed (scripts/test-deps.sh installs Debian's haproxy)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxy{Socket: filepath.Join(dir, "admin.sock"), AdminAddr: FreePort(t), Frontend: FreePort(t)}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
  stats socket %s level admin
  stats socket ipv4@%s level admin
defaults
  mode http
  timeout connect 2s
  # Without it, a check must finish within its 100 ms interval, which a
  # busy machine misses, and servers flap.
  timeout check 5s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend fe
  bind %s
  default_backend be
backend be
  balance roundrobin
  option httpchk GET /
`, h.Socket, h.AdminAddr, h.Frontend)
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		fmt.Fprintf(&cfg, "  server %s %s check inter 100ms fall 2 rise 1\n", name, servers[name])
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", h.Socket)
		if err == nil {
			c.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not open its socket: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
