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
