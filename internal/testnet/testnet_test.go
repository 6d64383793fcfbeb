package testnet

import (
	"net"
	"testing"
)

// The ports are outside the ephemeral range, distinct, and free.
func TestFreePort(t *testing.T) {
	lo, hi := portRange()
	if lo >= hi {
		t.Skipf("no room under the ephemeral range here ([%d, %d))", lo, hi)
	}
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if p < lo || p >= hi {
			t.Fatalf("port %d is outside [%d, %d)", p, lo, hi)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("listening on a free address: %v", err)
	}
	ln.Close()
}
