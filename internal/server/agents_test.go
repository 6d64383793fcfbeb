package server_test

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestIdleAgentStaysConnected is part of finding 6 of issue 7: an idle
// agent showed connected: false half the time, because its LastSeen was
// only written when its registration (cached for a minute) was refreshed,
// and "connected" means seen in the last 30 seconds. Now LastSeen moves on
// while a lease request waits, and on every lease request of an agent
// whose registration is cached. The test holds one agent in a long lease
// wait and lets another lease twice, and checks that both agents' LastSeen
// moved past the first write, which happens every five seconds at most.
func TestIdleAgentStaysConnected(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	waiter, poller := ts.agentClient("waiter"), ts.agentClient("poller")
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if job := lease(t, waiter, "waiter", nil, 7*time.Second); job != nil {
			t.Errorf("leased job %d from an empty queue", job.ID)
		}
	}()
	lease(t, poller, "poller", nil, 0)
	registered := time.Now()
	time.Sleep(6 * time.Second) // past touchAgentEvery, within the cached registration
	lease(t, poller, "poller", nil, 0)
	wg.Wait()

	var agents []struct {
		Name      string    `json:"name"`
		LastSeen  time.Time `json:"last_seen"`
		Connected bool      `json:"connected"`
	}
	ts.must(http.StatusOK, "GET", "/api/agents", adminToken, nil, &agents)
	if len(agents) != 2 {
		t.Fatalf("got %d agents, want 2", len(agents))
	}
	for _, a := range agents {
		if !a.Connected {
			t.Errorf("agent %s shows as not connected", a.Name)
		}
		if !a.LastSeen.After(registered.Add(4 * time.Second)) {
			t.Errorf("agent %s was last seen %s after the start; its LastSeen did not move on while it leased",
				a.Name, a.LastSeen.Sub(start).Round(time.Millisecond))
		}
	}
}
