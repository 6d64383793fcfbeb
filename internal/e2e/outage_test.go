package e2e

import (
	"encoding/json"
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
	_, lb := startLongBuild(t, serverOptions{Database: u.String()})

	proxy.down()
	outage := time.Now()
	for _, path := range []string{"/api/repos", "/api/repos/" + lb.slug + "/builds/1", "/api/user"} {
		status, body, err := lb.c.call("GET", path, nil)
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
	time.Sleep(2*outageTTL - time.Since(outage))
	proxy.up()
	lb.succeedsFirstTime(t)
}
