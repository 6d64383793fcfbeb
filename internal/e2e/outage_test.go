package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards a loopback port to a TCP address, and can be taken
// down (refusing and cutting every connection) and up again on the same
// port: a database outage that the test controls without stopping the
// shared PostgreSQL server.
type tcpProxy struct {
	t      testing.TB
	addr   string // the proxy's address
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy starts a proxy to target; it is closed when the test ends.
func startProxy(t testing.TB, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
				}()
			}
		}
	}()
}

// down closes the listener and every connection, and waits for the
// proxy's goroutines to end.
func (p *tcpProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// up listens again on the same address.
func (p *tcpProxy) up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestDatabaseOutage is finding 5 (first half) and the 503 of finding 6 of
// issue 7, on PostgreSQL: while a step runs, the database becomes
// unreachable for longer than the lease TTL. Meanwhile the API answers 503
// with a JSON error (not 500); when the database is back, the live agent's
// job is not re-queued, and it finishes in its first attempt.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	dsn := postgresDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	const ttl = 2 * time.Second
	srv := startServer(t, serverOptions{Database: u.String(), Args: []string{"--lease-ttl", ttl.String(), "--max-attempts", "3"}})
	c := adminAPI(t, srv)
	config := `kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: count
  commands:
  - i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done
`
	repo := newGitRepo(t, t.TempDir(), "long", map[string]string{".drone.yml": config})
	const slug = "acme/long"
	c.createRepo(map[string]any{"git_url": repo.fileURL(), "slug": slug, "poll_interval": "0s"})
	startAgent(t, srv.URL, c.agentToken("survivor"), agentOptions{Name: "survivor"})
	b := c.manualBuild(slug, "main", repo.git(repo.work, "rev-parse", "HEAD"))
	logPath := fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/1/steps/1/logs", slug, b.Number)
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		n := len(lines(c.text(logPath)))
		return n >= 5, fmt.Sprintf("the API shows %d log lines", n)
	})

	proxy.down()
	outage := time.Now()
	for _, path := range []string{"/api/repos", "/api/repos/" + slug + "/builds/1", "/api/user"} {
		status, body, err := c.call("GET", path, nil)
		if err != nil {
			t.Fatalf("GET %s during the outage: %v", path, err)
		}
		var e struct {
			Error string `json:"error"`
		}
		if status != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "database") {
			t.Errorf("GET %s during the outage: %d %s; want 503 and a JSON error about the database", path, status, body)
		}
	}
	// Longer than the lease TTL, so that every lease has expired when the
	// database comes back.
	time.Sleep(2*ttl - time.Since(outage))
	proxy.up()

	b = c.waitBuild(slug, b.Number, time.Minute, nil)
	p := b.Pipelines[0]
	if b.Status != "success" || p.Job.Attempts != 1 {
		t.Fatalf("build %s after %d attempts; want success in attempt 1: %s", b.Status, p.Job.Attempts, describe(b))
	}
}
