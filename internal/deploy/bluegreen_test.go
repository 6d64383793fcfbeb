package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// bgFleet is four registered nodes in slots blue and green, whose reports
// the test writes, as ferry node would, to drive the orchestrator step by
// step.
type bgFleet struct {
	t   *testing.T
	o   *Orchestrator
	st  *store.Store
	ids map[string]int64
	now *time.Time
}

func newBGFleet(t *testing.T) *bgFleet {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f := &bgFleet{t: t, ids: map[string]int64{}, now: &now}
	f.o, f.st = newTestOrchestrator(t, `  - name: prod
    nodes: {role: web}
    strategy: blue-green
    health: {healthy_deadline: 1m}
`, func() time.Time { return *f.now })
	for _, n := range []struct{ name, slot string }{{"b1", "blue"}, {"b2", "blue"}, {"g1", "green"}, {"g2", "green"}} {
		tok := &store.Token{Kind: store.TokenNode, Name: n.name, Hash: []byte("hash-" + n.name)}
		if err := f.st.Tokens.Create(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		node := &store.Node{TokenID: tok.ID, Name: n.name, Labels: map[string]string{"role": "web", "slot": n.slot}}
		if err := f.st.Nodes.Register(context.Background(), node); err != nil {
			t.Fatal(err)
		}
		f.ids[n.name] = node.ID
	}
	return f
}

func (f *bgFleet) release(c string) string {
	f.t.Helper()
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat(c, 64)}
	if _, err := f.o.CreateRelease(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
	return r.ID
}

// report records what the named nodes run: release, state and whether
// they serve; a failed state desires want.
func (f *bgFleet) report(release, state string, serving bool, names ...string) {
	f.t.Helper()
	for _, n := range names {
		a := store.NodeService{Service: "app", Release: release, Desired: release, State: state, Healthy: state == "running",
			LB: "haproxy", Serving: &serving}
		if err := f.st.Nodes.Report(context.Background(), f.ids[n], []store.NodeService{a}, *f.now); err != nil {
			f.t.Fatal(err)
		}
	}
}

// desired returns what the named node should run: "release serving",
// "release drained", "release" (the node in charge) or "".
func (f *bgFleet) desired(name string) string {
	f.t.Helper()
	ds, _, err := f.st.Nodes.Desired(context.Background(), f.ids[name])
	if err != nil {
		f.t.Fatal(err)
	}
	if len(ds) == 0 {
		return ""
	}
	switch s := ds[0].Serving; {
	case s == nil:
		return ds[0].ReleaseID
	case *s:
		return ds[0].ReleaseID + " serving"
	default:
		return ds[0].ReleaseID + " drained"
	}
}

// want checks each node's desired state, "b1=r drained g1=" style.
func (f *bgFleet) want(what, spec string) {
	f.t.Helper()
	var got []string
	for _, n := range []string{"b1", "b2", "g1", "g2"} {
		got = append(got, n+"="+f.desired(n))
	}
	if strings.Join(got, " ") != spec {
		f.t.Fatalf("%s: desired\n  %s\nwant\n  %s", what, strings.Join(got, " "), spec)
	}
}

// step steps the orchestrator and returns the deployment.
func (f *bgFleet) step(id int64) *store.Deployment {
	f.t.Helper()
	if err := f.o.Step(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	d, err := f.st.Deployments.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *bgFleet) deploy(release string) int64 {
	f.t.Helper()
	d, err := f.o.Deploy(context.Background(), Request{Service: "app", Environment: "prod", Release: release, Actor: Actor{Name: "alice", Admin: true}})
	if err != nil {
		f.t.Fatal(err)
	}
	return d.ID
}

func wantState(t *testing.T, d *store.Deployment, state store.DeployState, batch int, reason string) {
	t.Helper()
	if d.State != state || d.Batch != batch || !strings.Contains(d.Reason, reason) {
		t.Fatalf("deployment %d: %s batch %d/%d %q; want %s batch %d, reason with %q", d.ID, d.State, d.Batch, d.Batches, d.Reason, state, batch, reason)
	}
}

// Blue-green, step by step against the store: the idle slot installs out
// of rotation; the switch enters it, and only once it serves takes the
// live slot out, keeping its release; a failing release on the idle slot
// goes back there without the live slot being touched; a failed switch
// puts the old slot back into rotation before the new one leaves it.
func TestBlueGreenSwitchAndRollback(t *testing.T) {
	f := newBGFleet(t)
	r0, r1, r2, r3, r4 := f.release("0"), f.release("1"), f.release("2"), f.release("3"), f.release("4")
	// Green serves r1; blue holds r0, drained.
	f.report(r1, "running", true, "g1", "g2")
	f.report(r0, "running", false, "b1", "b2")

	id := f.deploy(r2)
	d := f.step(id)
	wantState(t, d, store.DeployRunning, 1, "out of the load balancer's rotation")
	if d.Batches != 2 {
		t.Fatalf("%d batches, want 2", d.Batches)
	}
	f.want("batch 1", fmt.Sprintf("b1=%s drained b2=%s drained g1= g2=", r2, r2))
	// A stale report of the old release does not count.
	f.report(r2, "running", false, "b1")
	wantState(t, f.step(id), store.DeployRunning, 1, "waiting for 1 nodes to run "+r2+" out of the load balancer's rotation")
	f.report(r2, "running", false, "b2")
	d = f.step(id)
	wantState(t, d, store.DeployRunning, 2, "waiting for 2 nodes running "+r2+" to enter the load balancer's rotation")
	f.want("switch: blue enters", fmt.Sprintf("b1=%s serving b2=%s serving g1= g2=", r2, r2))
	f.report(r2, "running", true, "b1")
	f.step(id)
	f.want("switch: green waits for all of blue", fmt.Sprintf("b1=%s serving b2=%s serving g1= g2=", r2, r2))
	f.report(r2, "running", true, "b2")
	wantState(t, f.step(id), store.DeployRunning, 2, "waiting for 2 nodes of the previous slot to leave the load balancer's rotation")
	f.want("switch: green leaves, keeping r1", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s drained g2=%s drained", r2, r2, r1, r1))
	f.report(r1, "running", false, "g1", "g2")
	wantState(t, f.step(id), store.DeploySucceeded, 2, "")
	nodes, err := f.st.Deployments.Nodes(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, dn := range nodes {
		if dn.State != "succeeded" {
			t.Fatalf("node %s: %+v", dn.Node, dn)
		}
	}

	// r3 fails its health check on green (idle now); green goes back to
	// r1, out of rotation, and blue is never touched.
	id = f.deploy(r3)
	f.step(id)
	f.want("r3 on green", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s drained g2=%s drained", r2, r2, r3, r3))
	if err := f.st.Nodes.Report(context.Background(), f.ids["g1"], []store.NodeService{{Service: "app", Release: r1, Desired: r3,
		State: "failed", Error: "service app: release " + r3 + ": health check: exit status 1", LB: "haproxy", Serving: new(false)}}, *f.now); err != nil {
		t.Fatal(err)
	}
	d = f.step(id)
	if d.State != store.DeployRollingBack || !strings.Contains(d.Reason, "batch 1 of 2 failed: node g1: service app: release "+r3+": health check") {
		t.Fatalf("%s %q", d.State, d.Reason)
	}
	f.want("r3 rolled back", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s drained g2=%s drained", r2, r2, r1, r1))
	f.report(r1, "running", false, "g1", "g2")
	wantState(t, f.step(id), store.DeployRolledBack, 1, "health check")

	// r4 passes on green, blue does not leave the rotation in time: the
	// switch rolls back, blue first.
	id = f.deploy(r4)
	f.step(id)
	f.report(r4, "running", false, "g1", "g2")
	f.step(id)
	f.report(r4, "running", true, "g1", "g2")
	f.step(id)
	f.want("r4 switch", fmt.Sprintf("b1=%s drained b2=%s drained g1=%s serving g2=%s serving", r2, r2, r4, r4))
	f.report(r2, "running", false, "b1") // b2 never drains
	*f.now = f.now.Add(2 * time.Minute)
	d = f.step(id)
	if d.State != store.DeployRollingBack || !strings.Contains(d.Reason, "batch 2 of 2 failed: taking the previous slot out of the load balancer's rotation: node b2: not healthy on "+r2+" out of the load balancer's rotation within healthy_deadline 1m0s") {
		t.Fatalf("%s %q", d.State, d.Reason)
	}
	// b2 still serves, so it is back at once; b1 must re-enter before
	// green leaves.
	f.want("blue re-enters first", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s serving g2=%s serving", r2, r2, r4, r4))
	f.report(r2, "running", true, "b1")
	f.step(id)
	f.want("then green leaves, back to r1", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s drained g2=%s drained", r2, r2, r1, r1))
	f.report(r1, "running", false, "g1", "g2")
	wantState(t, f.step(id), store.DeployRolledBack, 2, "node b2")

	// r4 again, good this time, while every node has just restarted and
	// not said yet whether it serves: the server's desired state says blue
	// is live, and green gets r4 (the releases alone would pick blue).
	for _, n := range []string{"b1", "b2", "g1", "g2"} {
		rel := map[bool]string{true: r2, false: r1}[n[0] == 'b']
		a := store.NodeService{Service: "app", Release: rel, State: "running", Healthy: true, LB: "haproxy"}
		if err := f.st.Nodes.Report(context.Background(), f.ids[n], []store.NodeService{a}, *f.now); err != nil {
			t.Fatal(err)
		}
	}
	id = f.deploy(r4)
	f.step(id)
	f.want("r4 on green again", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s drained g2=%s drained", r2, r2, r4, r4))
	// Then a rollback of the environment is a switch back to blue, which
	// still runs r2, drained: its batch 1 is done at once, and the switch
	// follows.
	f.report(r4, "running", false, "g1", "g2")
	f.step(id)
	f.report(r4, "running", true, "g1", "g2")
	f.step(id)
	f.report(r2, "running", false, "b1", "b2")
	wantState(t, f.step(id), store.DeploySucceeded, 2, "")
	f.want("r4 live on green", fmt.Sprintf("b1=%s drained b2=%s drained g1=%s serving g2=%s serving", r2, r2, r4, r4))
	rb, err := f.o.Rollback(context.Background(), Request{Service: "app", Environment: "prod", Actor: Actor{Name: "alice", Admin: true}})
	if err != nil || rb.ReleaseID != r2 || rb.Trigger != "rollback" {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	wantState(t, f.step(rb.ID), store.DeployRunning, 2, "waiting for 2 nodes running "+r2+" to enter the load balancer's rotation")
	f.want("switching back", fmt.Sprintf("b1=%s serving b2=%s serving g1=%s serving g2=%s serving", r2, r2, r4, r4))
}
