package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/node/lb/lbtest"
	"github.com/ferryci/ferry/internal/testimage"
)

// Blue-green at the load balancer (issue 10): four target hosts (Docker
// containers running `ferry node`, as in
// TestDeployContainersBehindHAProxyUnderLoad), two in slot blue and two
// in slot green, behind one HAProxy backend, under continuous HTTP load:
//   - v1 goes to blue (the first deployment), which then serves alone;
//   - v2 goes to green out of rotation, then the switch: afterwards
//     HAProxy sends every request to green (v2) and has blue drained,
//     and blue still runs v1;
//   - a v3 whose health check fails goes to blue (idle now) and never
//     answers a request; the deployment ends rolled_back with the reason,
//     green still serves v2 and blue is back on v1, drained;
//   - `ferry rollback` switches back to blue's v1 without downloading it;
//   - no request fails, first to last.
func TestDeployBlueGreenSwitchesAtHAProxyUnderLoad(t *testing.T) {
	t.Parallel()
	cli := testimage.Client(t)
	ref, err := testimage.Node(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	slots := map[string]string{"blue-1": "blue", "blue-2": "blue", "green-1": "green", "green-2": "green"}
	addrs := map[string]string{}
	for name := range slots {
		addrs[name] = lbtest.FreePort(t)
	}
	hp := lbtest.Start(t, addrs)
	f := newFleet(t, 0, `  - name: prod
    nodes: {role: web}
    strategy: blue-green
    hooks: {before: ["sleep 0.3"]}
    health: {type: command, command: 'test ! -e broken && wget -q -O /dev/null "http://$ADDR/health"', interval: 50ms, healthy_deadline: 10s, progress_deadline: 5m}
`, serverOptions{})
	for name, slot := range slots {
		f.startContainerNode(t, cli, ref, name, "{role: web, slot: "+slot+"}", addrs[name], hp.Socket)
	}
	f.waitNodes(len(slots))

	ctx := context.Background()
	drivers := haproxyDrivers(t, hp, addrs)
	// serving waits until HAProxy sends requests to the slot's servers,
	// and has the other slot's drained (or, when they run nothing yet,
	// down).
	serving := func(slot string, otherRuns bool) {
		t.Helper()
		for name, drv := range drivers {
			eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
				st, err := drv.State(ctx)
				ok := err == nil && st.Op == 2 && !st.Drained()
				if slots[name] != slot {
					ok = err == nil && (st.Drained() || !otherRuns && st.Op != 2)
				}
				return ok, fmt.Sprintf("%s (%s) in haproxy while %s serves: %+v %v", name, slots[name], slot, st, err)
			})
		}
	}
	runs := func(slot, release string) {
		t.Helper()
		got := f.running()
		for name, s := range slots {
			if s == slot && got[name] != release {
				t.Fatalf("%s runs %q, want %s (all: %v)", name, got[name], release, got)
			}
		}
	}
	// only checks that the next requests through HAProxy all get body,
	// but for those in flight already (one per client at most).
	const clients = 4
	var traffic *lbtest.Load
	only := func(body string) {
		t.Helper()
		before := traffic.Answers()
		waitServed(t, traffic, traffic.OK.Load()+50)
		other := 0
		for b, n := range traffic.Answers() {
			if b != body {
				other += n - before[b]
			}
		}
		if other > clients {
			t.Fatalf("%d of the last requests were not answered %q (all: %v -> %v)", other, body, before, traffic.Answers())
		}
	}

	v1 := f.webRelease("v1", false)
	if d := f.wait(f.deploy("prod", v1).ID); d.State != "succeeded" || d.Batches != 2 {
		t.Fatalf("v1: %+v", d)
	}
	serving("blue", false)
	runs("blue", v1)
	runs("green", "")
	traffic = lbtest.StartLoad(t, "http://"+hp.Frontend+"/", clients)
	waitServed(t, traffic, 50)

	v2 := f.webRelease("v2", false)
	if d := f.wait(f.deploy("prod", v2).ID); d.State != "succeeded" {
		t.Fatalf("v2: %+v", d)
	}
	serving("green", true)
	runs("green", v2)
	runs("blue", v1)
	only("v2\n")
	eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
		code, out, _ := f.ferryCLI("node", "ls")
		return code == 0 && strings.Count(out, "app="+v1+" running drained") == 2 && strings.Count(out, "app="+v2+" running serving") == 2, out
	})

	v3 := f.webRelease("v3", true)
	d := f.wait(f.deploy("prod", v3).ID)
	if d.State != "rolled_back" || !strings.Contains(d.Reason, "batch 1 of 2 failed: node blue-") || !strings.Contains(d.Reason, "health check") {
		t.Fatalf("v3: %s %q", d.State, d.Reason)
	}
	serving("green", true)
	runs("green", v2)
	runs("blue", v1)
	only("v2\n")

	// The rollback is a switch back: blue runs v1 still.
	downloads := f.art.downloads("v1-web")
	f.rollback("prod", v1)
	serving("blue", true)
	runs("blue", v1)
	runs("green", v2)
	only("v1\n")
	if n := f.art.downloads("v1-web"); n != downloads {
		t.Fatalf("v1 downloaded %d more times; the switch back needs no download", n-downloads)
	}

	traffic.Stop()
	ok, failed, bodies, failures := traffic.OK.Load(), traffic.Failed.Load(), traffic.Answers(), traffic.Failures()
	if failed > 0 {
		t.Fatalf("%d of %d requests failed: %s", failed, failed+ok, strings.Join(failures, "; "))
	}
	if bodies["v3\n"] != 0 {
		t.Fatalf("v3 answered %d requests through haproxy (all: %v)", bodies["v3\n"], bodies)
	}
	t.Logf("%d requests through haproxy, none failed: %v", ok, bodies)
}
