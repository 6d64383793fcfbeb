package deploy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/sqlite"
)

func targets(n int, slot func(i int) string) []Target {
	var ts []Target
	for i := range n {
		t := Target{ID: int64(i + 1), Name: fmt.Sprintf("web-%02d", i+1), Labels: map[string]string{}}
		if slot != nil {
			t.Labels["slot"] = slot(i)
		}
		ts = append(ts, t)
	}
	return ts
}

func sizes(bs []Batch) string {
	var out []string
	for _, b := range bs {
		s := fmt.Sprint(len(b.Nodes))
		if b.Manual {
			s += "m"
		} else if b.Pause > 0 {
			s += "p"
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func TestStrategiesPlan(t *testing.T) {
	if got := StrategyNames(); !slices.Equal(got, []string{"blue-green", "canary", "rolling"}) || len(spec.Strategies) != len(got) {
		t.Fatalf("registered strategies %v; the spec knows %v", got, spec.Strategies)
	}
	for _, tc := range []struct {
		name string
		env  spec.Environment
		n    int
		want string
	}{
		{"rolling default", spec.Environment{Strategy: spec.Strategy{Type: "rolling"}}, 3, "1,1,1"},
		{"rolling 2", spec.Environment{Strategy: spec.Strategy{Type: "rolling", MaxParallel: spec.Amount{N: 2}}}, 5, "2,2,1"},
		{"rolling 25%", spec.Environment{Strategy: spec.Strategy{Type: "rolling", MaxParallel: spec.Amount{N: 25, Percent: true}}}, 10, "3,3,3,1"},
		{"canary", spec.Environment{Strategy: spec.Strategy{Type: "canary", Steps: []spec.CanaryStep{
			{Nodes: spec.Amount{N: 1}, Pause: time.Minute}, {Nodes: spec.Amount{N: 50, Percent: true}, Manual: true}}}}, 10, "1p,4m,5"},
		{"canary covering all", spec.Environment{Strategy: spec.Strategy{Type: "canary", Steps: []spec.CanaryStep{
			{Nodes: spec.Amount{N: 1}, Pause: time.Minute}, {Nodes: spec.Amount{N: 100, Percent: true}, Manual: true}}}}, 3, "1p,2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := lookupStrategy(tc.env.Strategy.Type)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := s.Plan(targets(tc.n, nil), &tc.env, "r2")
			if err != nil {
				t.Fatal(err)
			}
			if got := sizes(bs); got != tc.want {
				t.Fatalf("batches %s, want %s", got, tc.want)
			}
		})
	}
}

// slotted returns 4 nodes, web-01 and web-03 in slot blue, web-02 and
// web-04 in green, each with a load balancer; set sets each one's release
// and load-balancer state.
func slotted(set func(t *Target)) []Target {
	ts := targets(4, func(i int) string { return []string{"blue", "green"}[i%2] })
	for i := range ts {
		ts[i].LB = "haproxy"
		if set != nil {
			set(&ts[i])
		}
	}
	return ts
}

func TestBlueGreenPlan(t *testing.T) {
	env := &spec.Environment{Strategy: spec.Strategy{Type: "blue-green", SlotLabel: "slot"}}
	blue, green := []int64{1, 3}, []int64{2, 4}
	isBlue := func(t *Target) bool { return t.Labels["slot"] == "blue" }
	for _, tc := range []struct {
		name       string
		set        func(t *Target)
		idle, live []int64
	}{
		{"first deployment: blue is idle", nil, blue, green},
		{"green runs a release: blue is idle", func(t *Target) {
			if !isBlue(t) {
				t.Current = "r1"
			}
		}, blue, green},
		{"blue runs a release: green is idle", func(t *Target) {
			if isBlue(t) {
				t.Current = "r1"
			}
		}, green, blue},
		// Both slots run a release; blue serves, though green runs it on
		// more nodes: what serves is live.
		{"blue serves: green is idle", func(t *Target) {
			t.Current = "r1"
			t.Serving = new(isBlue(t))
			if t.ID == 1 {
				t.Current = ""
			}
		}, green, blue},
		{"green serves: blue is idle", func(t *Target) {
			t.Current, t.Serving = "r1", new(!isBlue(t))
		}, blue, green},
		// Both serve (after rolling deployments): by the releases.
		{"both serve: by releases", func(t *Target) {
			t.Serving = new(true)
			if isBlue(t) {
				t.Current = "r1"
			}
		}, green, blue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := blueGreen{}.Plan(slotted(tc.set), env, "r2")
			if err != nil {
				t.Fatal(err)
			}
			want := []Batch{{Nodes: tc.idle, Standby: true}, {Nodes: tc.live, SwitchIn: tc.idle}}
			if fmt.Sprintf("%+v", bs) != fmt.Sprintf("%+v", want) {
				t.Fatalf("plan %+v, want %+v", bs, want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		set  func(t *Target)
		want string
	}{
		{"unlabelled node", func(t *Target) {
			if t.ID == 1 {
				t.Labels = map[string]string{}
			}
		}, `blue-green: node web-01 has no "slot" label; label each node slot=blue or slot=green`},
		{"no load balancer", func(t *Target) {
			if t.ID == 2 {
				t.LB = ""
			}
		}, "blue-green: node web-02 reports no load balancer for the service; blue-green switches slots at each node's load balancer: configure the service's lb"},
		{"three slots", func(t *Target) {
			if t.ID == 4 {
				t.Labels["slot"] = "red"
			}
		}, `blue-green: want nodes in two slots by label "slot", found 3 (blue, green, red)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := (blueGreen{}).Plan(slotted(tc.set), env, "r2"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

// newTestOrchestrator opens a real SQLite store with service app declared
// from yaml (the environments list).
func newTestOrchestrator(t *testing.T, envs string, now func() time.Time) (*Orchestrator, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, svcs := newTestStore(t, envs)
	// The tests' endpoints listen on loopback, which a repository's
	// endpoints may reach only when the server allows it.
	d := notify.NewDispatcher(nil, notify.Options{AllowNets: loopback})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	o := New(Config{Store: st, Now: now, Notifications: d})
	if err := o.SyncServices(ctx, 0, svcs); err != nil {
		t.Fatal(err)
	}
	return o, st
}

// newTestStore opens a real SQLite store and parses service app with the
// environments list envs.
func newTestStore(t *testing.T, envs string) (*store.Store, []*spec.Service) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svcs, err := spec.Parse("f.yml", []byte("kind: pipeline\nname: b\nsteps: [{name: s, image: busybox}]\n---\nkind: service\nname: app\nenvironments:\n"+envs))
	if err != nil {
		t.Fatal(err)
	}
	return st, svcs
}

func TestDeployGates(t *testing.T) {
	ctx := context.Background()
	// Sunday 2026-12-06 12:00 UTC.
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	hook := newListener(t)
	o, _ := newTestOrchestrator(t, `  - name: staging
    nodes: {role: web}
  - name: prod
    nodes: {role: web}
    allow: {branches: [main], role: admin, users: [carol]}
    gates:
      requires: [staging]
      windows: [{days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}]
  - name: frozen
    nodes: {role: web}
    gates: {freeze: [{from: 2026-12-01, to: 2027-01-01, reason: year end}]}
    notify: [{type: webhook, url: "`+hook.URL+`/hook"}]
`, func() time.Time { return now })
	mk := func(branch, sha string) string {
		r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat(sha, 64), Branch: branch, Creator: "alice"}
		if _, err := o.CreateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	main, feature := mk("main", "a"), mk("feature/x", "b")
	writer := Actor{Name: "bob", Role: "write"}
	for _, tc := range []struct {
		env, release string
		actor        Actor
		want         string
	}{
		{"prod", main, writer, "environment prod allows deployments by the admin role or by users [carol]; bob has \"write\""},
		{"prod", feature, Actor{Name: "carol"}, "refused by allow.branches of environment prod: release " + feature + " was built from branch feature/x; allowed: main"},
		{"prod", main, Actor{Name: "carol"}, "environment prod: outside the deploy windows"},
		{"frozen", main, writer, "environment frozen is frozen from 2026-12-01T00:00:00Z until 2027-01-01T00:00:00Z: year end"},
	} {
		_, err := o.Deploy(ctx, Request{Service: "app", Environment: tc.env, Release: tc.release, Actor: tc.actor})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy %s to %s as %s: %v\nwant: %s", tc.release, tc.env, tc.actor.Name, err, tc.want)
		}
	}
	// Monday 10:00: in the window, but staging does not run the release.
	now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	_, err := o.Deploy(ctx, Request{Service: "app", Environment: "prod", Release: main, Actor: Actor{Name: "carol"}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "staging must run "+main+" first; it runs nothing yet") {
		t.Fatalf("requires: %v", err)
	}
	// A rollback goes through a freeze; no node matches, so it fails at
	// once, naming the selector.
	d, err := o.Deploy(ctx, Request{Service: "app", Environment: "frozen", Release: main, Actor: writer, Trigger: "rollback"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := o.st.Deployments.Get(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.DeployFailed || !strings.Contains(got.Reason, "no registered node matches the selector map[role:web]") {
		t.Fatalf("%s %q", got.State, got.Reason)
	}
	if h := hook.wait(t, "/hook", 1); len(h) != 1 || !strings.Contains(h[0], `"status":"failed"`) {
		t.Fatalf("the environment's webhook got %q", h)
	}

	// A server that died between finishing a deployment and releasing its
	// lock leaves a stale lock: the next deployment takes it over.
	if _, err := o.st.Locks.Acquire(ctx, &store.Lock{Service: "app", Environment: "frozen", DeploymentID: d.ID, Holder: "deployment 1"}); err != nil {
		t.Fatal(err)
	}
	d2, err := o.Deploy(ctx, Request{Service: "app", Environment: "frozen", Release: main, Actor: writer, Trigger: "rollback"})
	if err != nil {
		t.Fatalf("a stale lock refused the deployment: %v", err)
	}
	if _, err := o.st.Locks.Get(ctx, "app", "frozen"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the stale lock is still there: %v", err)
	}
	_ = d2
}

// A deployment waiting for its approval gate ends cancelled once the
// gate's timeout passes, audited, with its lock free. The deadline comes
// from what is stored: a new orchestrator on the same database (a
// restarted server) ends it.
func TestApprovalTimeout(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	o, st := newTestOrchestrator(t, `  - name: prod
    nodes: {role: web}
    gates: {approval: {role: admin, timeout: 2h}}
  - name: default
    nodes: {role: web}
    gates: {approval: admin}
`, func() time.Time { return now })
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat("a", 64), Creator: "alice"}
	if _, err := o.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	deploy := func(env string) *store.Deployment {
		d, err := o.Deploy(ctx, Request{Service: "app", Environment: env, Release: r.ID, Actor: Actor{Name: "bob", Role: "write"}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	get := func(o *Orchestrator, id int64) *store.Deployment {
		if err := o.Step(ctx); err != nil {
			t.Fatal(err)
		}
		d, err := st.Deployments.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	prod, def := deploy("prod"), deploy("default")
	if d := get(o, prod.ID); d.State != store.DeployPending || !strings.Contains(d.Reason, "waiting for approval by a user with the admin role") ||
		!strings.Contains(d.Reason, "until 2026-12-07T12:00:00Z") {
		t.Fatalf("before the deadline: %s %q", d.State, d.Reason)
	}
	if d := get(o, def.ID); !strings.Contains(d.Reason, "until 2026-12-08T10:00:00Z") {
		t.Fatalf("the default timeout is not 24h: %q", d.Reason)
	}
	// A lock taken meanwhile by hand is not the deployment's to release.
	if _, err := o.Lock(ctx, "app", "default", Actor{Name: "carol", Admin: true}, "maintenance"); err != nil {
		t.Fatal(err)
	}

	// Restarted: a new orchestrator, a later clock.
	later := now.Add(2*time.Hour + time.Second)
	o2 := New(Config{Store: st, Now: func() time.Time { return later }})
	t.Cleanup(o2.closeNotifications)
	d := get(o2, prod.ID)
	if d.State != store.DeployCancelled || d.Reason != "approval not given within 2h (gates.approval timeout); nothing was deployed" {
		t.Fatalf("after the deadline: %s %q", d.State, d.Reason)
	}
	if d := get(o2, def.ID); d.State != store.DeployPending {
		t.Fatalf("the 24h default ended early: %s %q", d.State, d.Reason)
	}
	audit, err := st.Audit.List(ctx, store.AuditFilter{DeploymentID: prod.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Action != "cancelled" || audit[0].Actor != "system" || !strings.Contains(audit[0].Reason, "approval not given within 2h") {
		t.Fatalf("audit: %+v", audit)
	}
	later = now.Add(24*time.Hour + time.Second)
	if d := get(o2, def.ID); d.State != store.DeployCancelled || !strings.Contains(d.Reason, "approval not given within 24h") {
		t.Fatalf("after 24h: %s %q", d.State, d.Reason)
	}
	if l, err := st.Locks.Get(ctx, "app", "default"); err != nil || l.Holder != "carol" {
		t.Fatalf("the hand lock: %+v %v", l, err)
	}
	// Approved in time, it goes on (here to fail: no node matches).
	d3 := deploy("prod")
	if _, err := o2.Act(ctx, d3.ID, ActionApprove, Actor{Name: "carol", Admin: true}, ""); err != nil {
		t.Fatal(err)
	}
	if d := get(o2, d3.ID); d.State != store.DeployFailed || !strings.Contains(d.Reason, "no registered node matches") {
		t.Fatalf("approved: %s %q", d.State, d.Reason)
	}
}

// TestLockTimeoutAfterApproval: lock_timeout counts from when the
// deployment first finds the lock taken, after its approval: hours spent
// waiting for approval do not use it up. The deadline is stored, so a
// restarted server keeps it.
func TestLockTimeoutAfterApproval(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	o, st := newTestOrchestrator(t, `  - name: prod
    nodes: {role: web}
    gates: {approval: admin}
    lock_timeout: 1h
`, func() time.Time { return now })
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat("a", 64), Creator: "alice"}
	if _, err := o.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	carol := Actor{Name: "carol", Admin: true}
	if _, err := o.Lock(ctx, "app", "prod", carol, "maintenance"); err != nil {
		t.Fatal(err)
	}
	d, err := o.Deploy(ctx, Request{Service: "app", Environment: "prod", Release: r.ID, Actor: Actor{Name: "bob", Role: "write"}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(o *Orchestrator) *store.Deployment {
		t.Helper()
		if err := o.Step(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := st.Deployments.Get(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := get(o); got.State != store.DeployPending || !strings.Contains(got.Reason, "waiting for approval") {
		t.Fatalf("before approval: %s %q", got.State, got.Reason)
	}
	// Approved three hours later: it waits for the lock for an hour more.
	now = now.Add(3 * time.Hour)
	if _, err := o.Act(ctx, d.ID, ActionApprove, carol, ""); err != nil {
		t.Fatal(err)
	}
	if got := get(o); got.State != store.DeployPending ||
		!strings.HasPrefix(got.Reason, "waiting for the lock until 2026-12-07T14:00:00Z: app/prod is locked by carol since ") ||
		!strings.HasSuffix(got.Reason, ": maintenance") {
		t.Fatalf("approved, locked: %s %q", got.State, got.Reason)
	}
	// A restarted server keeps the deadline.
	now = now.Add(59 * time.Minute)
	o2 := New(Config{Store: st, Now: func() time.Time { return now }})
	t.Cleanup(o2.closeNotifications)
	if got := get(o2); got.State != store.DeployPending || !strings.Contains(got.Reason, "until 2026-12-07T14:00:00Z") {
		t.Fatalf("restarted before the deadline: %s %q", got.State, got.Reason)
	}
	now = now.Add(time.Minute)
	if got := get(o2); got.State != store.DeployFailed || !strings.HasSuffix(got.Reason, "maintenance; waited 1h (lock_timeout)") {
		t.Fatalf("after the lock's deadline: %s %q", got.State, got.Reason)
	}
}

// TestAutoDeployOncePerBuild hands the orchestrator the same green build
// twice, as the server does when its side effects run again after a
// server died before marking them done: one deployment.
func TestAutoDeployOncePerBuild(t *testing.T) {
	ctx := context.Background()
	o, st := newTestOrchestrator(t, `  - name: staging
    nodes: {role: web}
    auto: {branches: [main]}
`, time.Now)
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat("c", 64), Branch: "main", Creator: "ci", BuildID: 7}
	if _, err := o.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	ev := BuildFinished{BuildID: 7, Number: 3, Success: true, Event: "push", Branch: "main"}
	o.OnBuildFinished(ctx, ev)
	o.OnBuildFinished(ctx, ev)
	ds, err := st.Deployments.List(ctx, store.DeploymentFilter{Service: "app", Environment: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Trigger != "auto" || ds[0].ReleaseID != r.ID {
		t.Fatalf("deployments after the same build twice: %d, want one auto deployment of %s", len(ds), r.ID)
	}
}
