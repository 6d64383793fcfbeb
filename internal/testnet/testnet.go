// Package testnet picks loopback ports for servers that tests start in
// another process (haproxy, sshd, an S3 server, a ferry server, an app's
// httpd), which must be told a port rather than handed a listener.
//
// A port that the kernel picked for a listener and that was then closed
// is in the ephemeral range, which outgoing connections draw their local
// ports from too: on a busy machine a keep-alive connection made a moment
// later can take it for as long as it lives, and the server that was to
// listen there fails to bind. FreePort therefore picks ports below that
// range, where the kernel never puts an outgoing connection.
package testnet

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// below is how many ports under the ephemeral range FreePort picks from;
// it never goes under minPort (the well-known and registered services
// the tests start, PostgreSQL's 5432 among them, are lower).
const (
	below   = 16384
	minPort = 10000
)

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports this process has handed out
)

// FreePort returns a loopback TCP port that is free now, outside the
// kernel's ephemeral range and not handed out before by this process.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := portRange()
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		var port int
		if lo < hi {
			port = lo + rand.IntN(hi-lo)
		} else {
			port = 0 // no room under the ephemeral range: let the kernel pick
		}
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatalf("testnet: found no free loopback port in [%d, %d)", lo, hi)
	return 0
}

// FreeAddr returns "127.0.0.1:port" with a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// portRange returns the ports FreePort picks from: the below ports under
// the kernel's ephemeral range (32768 when it cannot be read), an empty
// range when there is no room.
func portRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return max(minPort, hi-below), hi
}
