package lbtest

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load sends GET requests to a URL from several clients, each one after
// another, until Stop, and counts the answers by body: the traffic a
// zero-downtime test runs through a balancer. An error or a status other
// than 200 is a failure.
type Load struct {
	// OK and Failed count the requests answered and failed.
	OK, Failed atomic.Int64

	mu       sync.Mutex
	bodies   map[string]int
	failures []string // the first 5
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	tr       *http.Transport
}

// StartLoad starts clients sending requests to url; the test's end stops
// them.
func StartLoad(t testing.TB, url string, clients int) *Load {
	l := &Load{bodies: map[string]int{}, done: make(chan struct{}), tr: &http.Transport{}}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: l.tr}
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.done:
					return
				default:
				}
				res, err := hc.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", res.Status)
					}
				}
				l.mu.Lock()
				if err != nil {
					l.Failed.Add(1)
					if len(l.failures) < 5 {
						l.failures = append(l.failures, err.Error())
					}
				} else {
					l.OK.Add(1)
					l.bodies[string(body)]++
				}
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the load and waits for the requests in flight; it may be
// called more than once.
func (l *Load) Stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
	l.tr.CloseIdleConnections()
}

// Served returns how many requests were answered body.
func (l *Load) Served(body string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bodies[body]
}

// Answers returns a copy of the count of each answer so far.
func (l *Load) Answers() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.bodies)
}

// Failures returns the first failures' errors.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}
