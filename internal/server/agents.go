package server

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
)

// connectedWindow is how recently an agent must have been seen to count as
// connected: leasing (also while a lease request waits for a job), or
// extending a lease, refreshes it.
const connectedWindow = 30 * time.Second

// touchAgentEvery limits how often an agent's LastSeen is written. It must
// stay well below connectedWindow, or an agent that is there would show as
// disconnected between two writes.
const touchAgentEvery = 5 * time.Second

// agentCache remembers the agents this server registered and the owners
// of the leases it handed out, to spare the database a write per request.
// It is only an optimisation: every entry can be rebuilt from the store.
type agentCache struct {
	mu     sync.Mutex
	byName map[string]*agentEntry
	names  map[int64]string
	// owners maps a job to the agent holding its lease, with when it was
	// last used.
	owners map[int64]jobOwner
	// touched is when each agent's LastSeen was last written.
	touched map[int64]time.Time
}

type agentEntry struct {
	id  int64
	key string
	at  time.Time
}

type jobOwner struct {
	agent int64
	used  time.Time
}

// reregisterEvery refreshes a cached registration, so that an agent whose
// row an administrator deleted comes back.
const reregisterEvery = time.Minute

func newAgentCache() *agentCache {
	return &agentCache{byName: map[string]*agentEntry{}, names: map[int64]string{}, owners: map[int64]jobOwner{},
		touched: map[int64]time.Time{}}
}

// register returns the ID of the named agent, registering it (or updating
// its labels, capacity and version) when this server has not done so
// recently with the same values.
func (c *agentCache) register(ctx context.Context, st store.AgentStore, a *store.Agent) (int64, error) {
	kb, err := json.Marshal([]any{a.Labels, a.Capacity, a.Version})
	if err != nil {
		return 0, err
	}
	key := string(kb)
	now := time.Now()
	c.mu.Lock()
	e := c.byName[a.Name]
	c.mu.Unlock()
	if e != nil && e.key == key && now.Sub(e.at) < reregisterEvery {
		// Registered recently: only LastSeen needs refreshing.
		return e.id, c.alive(ctx, st, e.id)
	}
	a.LastSeen = now
	if err := st.Register(ctx, a); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.byName[a.Name] = &agentEntry{id: a.ID, key: key, at: now}
	c.names[a.ID] = a.Name
	c.touched[a.ID] = now
	c.mu.Unlock()
	return a.ID, nil
}

// forget drops the cached registration of an agent.
func (c *agentCache) forget(name string) {
	c.mu.Lock()
	delete(c.byName, name)
	c.mu.Unlock()
}

// name returns the name of the agent with the given ID, or "" when it is
// unknown.
func (c *agentCache) name(ctx context.Context, st store.AgentStore, id int64) string {
	if id == 0 {
		return ""
	}
	c.mu.Lock()
	n, ok := c.names[id]
	c.mu.Unlock()
	if ok {
		return n
	}
	a, err := st.Get(ctx, id)
	if err != nil {
		return ""
	}
	c.mu.Lock()
	c.names[id] = a.Name
	c.mu.Unlock()
	return a.Name
}

// leased records that agent holds the lease of job.
func (c *agentCache) leased(job, agent int64) {
	c.mu.Lock()
	c.owners[job] = jobOwner{agent: agent, used: time.Now()}
	c.mu.Unlock()
}

// done forgets the owner of a finished job.
func (c *agentCache) done(job int64) {
	c.mu.Lock()
	delete(c.owners, job)
	c.mu.Unlock()
}

// seen records that the agent holding job's lease is alive, writing its
// LastSeen at most every touchAgentEvery. The owner is looked up in the
// store when this server did not hand out the lease.
func (c *agentCache) seen(ctx context.Context, st *store.Store, job int64) error {
	now := time.Now()
	c.mu.Lock()
	o, ok := c.owners[job]
	if ok {
		o.used = now
		c.owners[job] = o
	}
	c.mu.Unlock()
	if !ok {
		j, err := st.Jobs.Get(ctx, job)
		if err != nil {
			return err
		}
		o = jobOwner{agent: j.LeaseOwner, used: now}
		c.mu.Lock()
		c.owners[job] = o
		c.mu.Unlock()
	}
	if o.agent == 0 {
		return nil
	}
	return c.alive(ctx, st.Agents, o.agent)
}

// alive records that agent is there now, writing its LastSeen at most
// every touchAgentEvery.
func (c *agentCache) alive(ctx context.Context, st store.AgentStore, agent int64) error {
	now := time.Now()
	c.mu.Lock()
	due := now.Sub(c.touched[agent]) >= touchAgentEvery
	if due {
		c.touched[agent] = now
	}
	c.mu.Unlock()
	if !due {
		return nil
	}
	err := st.Touch(ctx, agent, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// prune drops cache entries unused for an hour.
func (c *agentCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, o := range c.owners {
		if now.Sub(o.used) > time.Hour {
			delete(c.owners, id)
		}
	}
	for id, t := range c.touched {
		if now.Sub(t) > time.Hour {
			delete(c.touched, id)
		}
	}
}

type agentJSON = api.Agent

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	agents, err := s.store.Agents.List(ctx)
	if err != nil {
		return err
	}
	running, err := s.store.Jobs.List(ctx, store.JobFilter{Status: store.StatusRunning})
	if err != nil {
		return err
	}
	byAgent := map[int64][]int64{}
	for _, j := range running {
		byAgent[j.LeaseOwner] = append(byAgent[j.LeaseOwner], j.ID)
	}
	now := time.Now()
	out := make([]*agentJSON, 0, len(agents))
	for _, a := range agents {
		labels := a.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		jobs := byAgent[a.ID]
		if jobs == nil {
			jobs = []int64{}
		}
		out = append(out, &agentJSON{ID: a.ID, Name: a.Name, Labels: labels, Capacity: a.Capacity,
			Version: a.Version, LastSeen: a.LastSeen, Connected: now.Sub(a.LastSeen) < connectedWindow,
			RunningJobs: jobs, Created: a.Created})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("agent")
	a, err := s.store.Agents.GetByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("agent %q not found", name)
	}
	if err != nil {
		return err
	}
	if err := s.store.Agents.Delete(r.Context(), a.ID); err != nil {
		return err
	}
	s.agents.forget(name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// waitingReason explains why a pending job with the given labels has not
// been leased, from the agents connected now and the jobs they run.
func waitingReason(labels map[string]string, agents []*store.Agent, running map[int64]int, now time.Time) string {
	want := formatLabels(labels)
	var connected, matching, free int
	for _, a := range agents {
		if now.Sub(a.LastSeen) >= connectedWindow {
			continue
		}
		connected++
		if !hasLabels(a.Labels, labels) {
			continue
		}
		matching++
		if running[a.ID] < max(a.Capacity, 1) {
			free++
		}
	}
	switch {
	case connected == 0:
		return "no agent is connected"
	case matching == 0 && want == "":
		return "no agent is connected"
	case matching == 0:
		return "no agent with labels " + want + " is connected"
	case free == 0:
		if want == "" {
			return "waiting for a free agent: every connected agent is busy"
		}
		return "waiting for a free agent with labels " + want + ": all are busy"
	}
	return "waiting for an agent to take it"
}

// hasLabels reports whether have includes every label of want.
func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// formatLabels writes labels as "k=v,k=v", sorted by key.
func formatLabels(labels map[string]string) string {
	keys := slices.Collect(maps.Keys(labels))
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
