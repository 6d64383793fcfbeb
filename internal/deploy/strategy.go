package deploy

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
)

// Target is a node a strategy plans for.
type Target struct {
	ID     int64             `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"-"`
	// Current is the release the node runs for the service ("" for none).
	Current string `json:"-"`
	// LB is the node's load-balancer driver for the service, as it
	// reports it ("" for none, or a node too old to say).
	LB string `json:"-"`
	// Serving is whether the node has the service in its load balancer's
	// rotation: as the server last asked it to (its desired state), or,
	// when the server never asked, as the node reports (nil: unknown).
	Serving *bool `json:"-"`
}

// Batch is a set of nodes updated together, and what happens after them.
type Batch struct {
	Nodes []int64 `json:"nodes"`
	// Pause waits this long after the batch succeeded.
	Pause time.Duration `json:"pause,omitempty"`
	// Manual waits for an approval (or resume) after the batch, for at
	// most Timeout (spec.DefaultApprovalTimeout when 0).
	Manual  bool          `json:"manual,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	// Standby installs the release on the batch's nodes out of their load
	// balancer's rotation (nodeproto.Release.Serving false), where it is
	// health-checked and stays: blue-green's idle slot.
	Standby bool `json:"standby,omitempty"`
	// SwitchIn makes the batch a switch at the load balancer instead of
	// an install: the nodes it lists (an earlier Standby batch, which runs
	// the release) enter the rotation; once each serves, the batch's own
	// nodes leave it, keeping the release they run for a rollback.
	SwitchIn []int64 `json:"switch_in,omitempty"`
}

// serving is the load-balancer state the batch's nodes install the
// release in: false for a Standby batch, nil (the node in charge) else.
func (b Batch) serving() *bool {
	if b.Standby {
		return new(false)
	}
	return nil
}

// Strategy turns an environment's nodes into ordered batches. Plan is
// called once per deployment, by one goroutine; targets are sorted by name
// and never empty. It must not keep targets.
type Strategy interface {
	Plan(targets []Target, env *spec.Environment, release string) ([]Batch, error)
}

var (
	strategiesMu sync.RWMutex
	strategies   = map[string]Strategy{}
)

// RegisterStrategy makes a strategy available under name, the way Caddy
// registers modules: each strategy is one file with one call in its init.
// Registering a name twice panics.
func RegisterStrategy(name string, s Strategy) {
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	if strategies[name] != nil {
		panic("deploy: strategy " + name + " registered twice")
	}
	strategies[name] = s
}

// StrategyNames returns the registered strategies' names, sorted.
func StrategyNames() []string {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	var out []string
	for n := range strategies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookupStrategy(name string) (Strategy, error) {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	s := strategies[name]
	if s == nil {
		return nil, fmt.Errorf("unknown strategy %q; registered: %v", name, StrategyNames())
	}
	return s, nil
}

// ids returns the targets' IDs.
func ids(ts []Target) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return slices.Clip(out)
}
