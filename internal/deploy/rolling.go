package deploy

import "github.com/ferryci/ferry/internal/deploy/spec"

func init() { RegisterStrategy("rolling", rolling{}) }

// rolling updates max_parallel nodes at a time (a count or a percentage of
// the environment's nodes, default 1), in name order.
type rolling struct{}

func (rolling) Plan(ts []Target, env *spec.Environment, _ string) ([]Batch, error) {
	size := 1
	if env.Strategy.MaxParallel.N > 0 {
		size = env.Strategy.MaxParallel.Of(len(ts))
	}
	var out []Batch
	for i := 0; i < len(ts); i += size {
		out = append(out, Batch{Nodes: ids(ts[i:min(i+size, len(ts))])})
	}
	return out, nil
}
