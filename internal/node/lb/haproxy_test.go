package lb_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/node/lb/lbtest"
)

// listenOn serves HTTP on addr until the test ends.
func listenOn(t *testing.T, addr string, h http.Handler) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
}

func TestHAProxyDrainWaitsForRequestsInFlightAndReadyWaitsForUp(t *testing.T) {
	a1, a2 := lbtest.FreePort(t), lbtest.FreePort(t)
	slow := make(chan struct{})
	inSlow := make(chan struct{}, 1)
	listenOn(t, a1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inSlow <- struct{}{}
			<-slow
		}
	}))
	listenOn(t, a2, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Server", "s2") }))
	hp := lbtest.Start(t, map[string]string{"s1": a1, "s2": a2})
	release := sync.OnceFunc(func() { close(slow) })
	t.Cleanup(release) // before the servers close, which waits for their requests
	d, err := lb.New(lb.Config{Driver: "haproxy", Socket: hp.Socket, Backend: "be", Server: "s1", DrainTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := d.(*lb.HAProxy)
	ctx := context.Background()
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	// A request in flight on s1 holds the drain until it ends. Requests
	// go round-robin: send them until one is held by s1.
	done := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				done <- errors.New("the test ended")
				return
			default:
			}
			res, err := http.Get("http://" + hp.Frontend + "/slow")
			if err != nil {
				done <- err
				return
			}
			res.Body.Close()
			if res.Header.Get("X-Server") != "s2" {
				done <- nil
				return
			}
		}
	}()
	select {
	case <-inSlow:
	case <-time.After(time.Minute):
		st, err := h.State(ctx)
		t.Fatalf("no request reached s1 in a minute; s1: %+v %v", st, err)
	}
	err = h.Drain(ctx)
	if !errors.Is(err, lb.ErrDrainTimeout) || !strings.Contains(err.Error(), "1 sessions") {
		t.Fatalf("drain with a request in flight: %v, want ErrDrainTimeout naming 1 session", err)
	}
	st, err := h.State(ctx)
	if err != nil || !st.Drained() {
		t.Fatalf("state after drain: %+v %v", st, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.Drain(ctx); err != nil {
		t.Fatalf("drain with nothing in flight: %v", err)
	}
	// Drained: new requests all go to s2.
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.State(ctx); st.Drained() || st.Op != 2 {
		t.Fatalf("state after ready: %+v", st)
	}

	// The same runtime API over TCP.
	tcp, err := lb.New(lb.Config{Driver: "haproxy", Socket: hp.AdminAddr, Backend: "be", Server: "s2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tcp.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := tcp.(*lb.HAProxy).State(ctx); err != nil || !st.Drained() {
		t.Fatalf("s2 over tcp: %+v, %v", st, err)
	}
	if err := tcp.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	bad, _ := lb.New(lb.Config{Driver: "haproxy", Socket: hp.Socket, Backend: "be", Server: "nope"}, nil)
	if err := bad.Drain(ctx); err == nil || !strings.Contains(err.Error(), "No such server") {
		t.Fatalf("an unknown server: %v", err)
	}
}
