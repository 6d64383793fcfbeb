package deploy

import "github.com/ferryci/ferry/internal/deploy/spec"

func init() { RegisterStrategy("canary", canary{}) }

// canary grows the set of nodes running the release step by step: each
// step names how many nodes (a count or a percentage, cumulative) run it
// once the step is done, and pauses for a time or for an approval after
// it. The nodes left after the last step follow in a final batch.
type canary struct{}

func (canary) Plan(ts []Target, env *spec.Environment, _ string) ([]Batch, error) {
	var out []Batch
	done := 0
	for _, st := range env.Strategy.Steps {
		upto := st.Nodes.Of(len(ts))
		if upto <= done {
			continue
		}
		out = append(out, Batch{Nodes: ids(ts[done:upto]), Pause: st.Pause, Manual: st.Manual, Timeout: st.Timeout})
		done = upto
	}
	if done < len(ts) {
		out = append(out, Batch{Nodes: ids(ts[done:])})
	}
	// No pause after the last batch: the deployment is done then.
	out[len(out)-1].Pause, out[len(out)-1].Manual = 0, false
	return out, nil
}
