package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/store"
)

// stepSwitch moves a switch batch (blue-green's last): first the standby
// nodes (b.SwitchIn) enter the load balancer's rotation; once each of
// them reports serving, the batch's own nodes (the live slot) leave it,
// keeping the release they run; the batch succeeds when each of those
// reports drained. Like every step it reads the nodes' reports and sets
// the desired states again (SetDesired changes nothing that is set
// already), so a restarted server resumes the switch where it was.
func (o *Orchestrator) stepSwitch(ctx context.Context, d *store.Deployment, env *spec.Environment, b Batch, nodes []*store.DeploymentNode) (bool, error) {
	now := o.cfg.Now()
	deadline := env.Health.HealthyDeadline.Std()
	byID := map[int64]*store.DeploymentNode{}
	for _, dn := range nodes {
		byID[dn.NodeID] = dn
	}
	pending := 0
	var failures []string
	for _, id := range b.SwitchIn {
		dn := byID[id]
		if dn == nil {
			return true, o.finish(ctx, d, store.DeployFailed, fmt.Sprintf("the plan switches to node %d, which is not part of the deployment", id))
		}
		// The switch's deadline runs from its start.
		in := *dn
		in.Started = d.BatchStarted
		state, why, err := o.judge(ctx, d.Service, d.ReleaseID, new(true), &in, now, deadline)
		if err != nil {
			return false, err
		}
		switch state {
		case "":
			pending++
		case "failed":
			failures = append(failures, fmt.Sprintf("node %s: %s", dn.Node, why))
		}
	}
	if len(failures) > 0 {
		return true, o.fail(ctx, d, env, fmt.Sprintf("batch %d of %d failed: switching the load balancer to %s: %s", d.Batch, d.Batches, d.ReleaseID, joinMax(failures, 3)))
	}
	if pending > 0 {
		return o.wait(ctx, d, fmt.Sprintf("batch %d of %d: switching: waiting for %d nodes running %s to enter the load balancer's rotation", d.Batch, d.Batches, pending, d.ReleaseID))
	}

	// Every standby node serves: the live slot leaves the rotation.
	var ds []*store.Desired
	for _, dn := range nodes {
		if dn.Batch != d.Batch || dn.State == "succeeded" {
			continue
		}
		if dn.Previous == "" {
			// It runs nothing: nothing to take out.
			dn.State, dn.Finished = "succeeded", now
			if err := o.st.Deployments.PutNode(ctx, dn); err != nil {
				return false, err
			}
			continue
		}
		ds = append(ds, &store.Desired{NodeID: dn.NodeID, Service: d.Service, Environment: d.Environment, ReleaseID: dn.Previous, Serving: new(false)})
	}
	if err := o.st.Nodes.SetDesired(ctx, ds); err != nil {
		return false, err
	}
	o.desiredChanged(changedIDs(ds))
	pending, failures, err := o.judgeBatch(ctx, d, env, nodes, new(false), func(dn *store.DeploymentNode) string { return dn.Previous })
	if err != nil {
		return false, err
	}
	if len(failures) > 0 {
		return true, o.fail(ctx, d, env, fmt.Sprintf("batch %d of %d failed: taking the previous slot out of the load balancer's rotation: %s", d.Batch, d.Batches, joinMax(failures, 3)))
	}
	if pending > 0 {
		return o.wait(ctx, d, fmt.Sprintf("batch %d of %d: switching: waiting for %d nodes of the previous slot to leave the load balancer's rotation", d.Batch, d.Batches, pending))
	}
	return true, o.batchSucceeded(ctx, d, b)
}

// restore is a node's way back in a rollback: its part in the deployment
// and the desired state that undoes it.
type restore struct {
	dn   *store.DeploymentNode
	want *store.Desired
}

// rollbackSteps returns how to undo what d did to its nodes, in steps set
// one after the other: each node the deployment touched goes back to its
// previous release. For blue-green, once the switch began, the previous
// slot first goes back into the load balancer's rotation, and only then
// does the new slot leave it, so that the balancer always has a slot to
// send requests to; the new slot's nodes go back to their previous
// release out of rotation.
func rollbackSteps(d *store.Deployment, p *plan, nodes []*store.DeploymentNode) [][]restore {
	switched := false
	for _, dn := range nodes {
		if b := p.batch(dn.Batch); len(b.SwitchIn) > 0 && dn.State != "pending" {
			switched = true
		}
	}
	var back, rest []restore
	for _, dn := range nodes {
		if dn.State == "pending" {
			continue
		}
		b := p.batch(dn.Batch)
		want := &store.Desired{NodeID: dn.NodeID, Service: d.Service, Environment: d.Environment, ReleaseID: dn.Previous}
		switch {
		case len(b.SwitchIn) > 0:
			if dn.Previous == "" {
				continue
			}
			want.Serving = new(true)
			back = append(back, restore{dn, want})
			continue
		case b.Standby:
			want.Serving = new(false)
			if dn.Previous == "" {
				if !switched {
					continue
				}
				// Nothing to go back to, and it may serve: it stays on
				// the release, out of rotation.
				want.ReleaseID = d.ReleaseID
			}
		case dn.Previous == "" || dn.Previous == d.ReleaseID:
			continue
		}
		rest = append(rest, restore{dn, want})
	}
	if len(back) == 0 {
		return [][]restore{rest}
	}
	return [][]restore{back, rest}
}

// batch returns batch k (from 1) of the plan, or a zero batch.
func (p *plan) batch(k int) Batch {
	if k < 1 || k > len(p.Batches) {
		return Batch{}
	}
	return p.Batches[k-1]
}

// isBack reports whether a node runs the release want names, in the
// load-balancer state it asks for (when it asks).
func (o *Orchestrator) isBack(ctx context.Context, want *store.Desired) (bool, error) {
	n, err := o.st.Nodes.Get(ctx, want.NodeID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a := n.Service(want.Service)
	return a != nil && a.Release == want.ReleaseID && a.State == "running" && servingIs(a, want.Serving), nil
}
