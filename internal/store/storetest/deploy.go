package storetest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// deployTests are the delivery entities' tests (internal/store/deploy.go).
var deployTests = []struct {
	name string
	fn   func(t *testing.T, s *store.Store)
}{
	{"Services", testServices},
	{"Releases", testReleases},
	{"Deployments", testDeployments},
	{"DeploymentClaimConcurrent", testDeploymentClaimConcurrent},
	{"Locks", testLocks},
	{"Audit", testAudit},
	{"Nodes", testNodes},
}

func testServices(t *testing.T, s *store.Store) {
	c := ctx(t)
	repo := newRepo(t, s, "acme/app")
	svc := &store.Service{Name: "app", RepoID: repo.ID, Spec: json.RawMessage(`{"name":"app"}`)}
	must(t, s.Services.Put(c, svc, []*store.Environment{
		{Name: "staging", Spec: json.RawMessage(`{"name":"staging"}`)},
		{Name: "production", Spec: json.RawMessage(`{"name":"production"}`)},
	}))
	id := svc.ID
	// Putting again replaces the environments and keeps the identity.
	must(t, s.Services.Put(c, svc, []*store.Environment{{Name: "production"}}))
	eq(t, "id", svc.ID, id)
	got, err := s.Services.Get(c, "app")
	must(t, err)
	eq(t, "repo", got.RepoID, repo.ID)
	eq(t, "spec", string(got.Spec), `{"name":"app"}`)
	envs, err := s.Services.Environments(c, "app")
	must(t, err)
	eq(t, "environments", len(envs), 1)
	eq(t, "env", envs[0].Name, "production")
	eq(t, "env spec", string(envs[0].Spec), `{}`)
	_, err = s.Services.Get(c, "nope")
	wantErr(t, err, store.ErrNotFound)
	all, err := s.Services.List(c)
	must(t, err)
	eq(t, "services", len(all), 1)
}

func newRelease(t testing.TB, s *store.Store, id string) *store.Release {
	t.Helper()
	r := &store.Release{ID: id, Service: "app", ArtifactURL: "file:///a/" + id + ".tar.gz", SHA256: "ab", Size: 3, Format: "tar.gz", Creator: "alice"}
	_, err := s.Releases.Create(ctx(t), r)
	must(t, err)
	return r
}

func testReleases(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := &store.Release{ID: "app-111", Service: "app", Version: "1.0", ArtifactURL: "file:///a", SHA256: "aa", Branch: "main", Creator: "alice"}
	created, err := s.Releases.Create(c, r)
	must(t, err)
	eq(t, "created", created, true)
	// The same content again is the same release, unchanged.
	again := &store.Release{ID: "app-111", Service: "app", Version: "other", Creator: "bob"}
	created, err = s.Releases.Create(c, again)
	must(t, err)
	eq(t, "created again", created, false)
	eq(t, "version kept", again.Version, "1.0")
	eq(t, "creator kept", again.Creator, "alice")
	newRelease(t, s, "app-222")
	rs, err := s.Releases.List(c, "app", 10)
	must(t, err)
	eq(t, "releases", len(rs), 2)
	_, err = s.Releases.Get(c, "app-333")
	wantErr(t, err, store.ErrNotFound)
}

func testDeployments(t *testing.T, s *store.Store) {
	c := ctx(t)
	newRelease(t, s, "app-1")
	d := &store.Deployment{Service: "app", Environment: "prod", ReleaseID: "app-1", Trigger: "manual", Creator: "alice"}
	must(t, s.Deployments.Create(c, d))
	eq(t, "state", d.State, store.DeployPending)
	stale := *d
	d.State, d.Batch, d.Batches, d.Started = store.DeployRunning, 1, 3, time.Now()
	d.Plan = json.RawMessage(`{"batches":[[1],[2],[3]]}`)
	must(t, s.Deployments.Update(c, d, &store.AuditEntry{Actor: "system", Action: "start", Service: "app", Environment: "prod"}))
	// A writer holding an old version loses, and its audit entry is not
	// written.
	stale.State = store.DeployCancelled
	wantErr(t, s.Deployments.Update(c, &stale, &store.AuditEntry{Actor: "bob", Action: "cancel"}), store.ErrConflict)
	log, err := s.Audit.List(c, store.AuditFilter{DeploymentID: d.ID})
	must(t, err)
	eq(t, "audit entries", len(log), 1)
	eq(t, "audit action", log[0].Action, "start")
	got, err := s.Deployments.Get(c, d.ID)
	must(t, err)
	eq(t, "state", got.State, store.DeployRunning)
	eq(t, "batch", got.Batch, 1)
	eq(t, "plan", string(got.Plan), `{"batches":[[1],[2],[3]]}`)
	sameTime(t, "started", got.Started, d.Started)

	active, err := s.Deployments.List(c, store.DeploymentFilter{Active: true})
	must(t, err)
	eq(t, "active", len(active), 1)
	got.State, got.Finished = store.DeployRolledBack, time.Now()
	must(t, s.Deployments.Update(c, got))
	active, err = s.Deployments.List(c, store.DeploymentFilter{Active: true})
	must(t, err)
	eq(t, "active after the end", len(active), 0)
	all, err := s.Deployments.List(c, store.DeploymentFilter{Service: "app", Environment: "prod"})
	must(t, err)
	eq(t, "all", len(all), 1)

	must(t, s.Deployments.PutNode(c, &store.DeploymentNode{DeploymentID: d.ID, NodeID: 7, Node: "web-2", Batch: 2, State: "pending"}))
	must(t, s.Deployments.PutNode(c, &store.DeploymentNode{DeploymentID: d.ID, NodeID: 5, Node: "web-1", Batch: 1, State: "pending", Previous: "app-0"}))
	must(t, s.Deployments.PutNode(c, &store.DeploymentNode{DeploymentID: d.ID, NodeID: 5, Node: "web-1", Batch: 1, State: "failed", Previous: "app-0", Error: "health"}))
	ns, err := s.Deployments.Nodes(c, d.ID)
	must(t, err)
	eq(t, "nodes", len(ns), 2)
	eq(t, "first", ns[0].Node, "web-1")
	eq(t, "state", ns[0].State, "failed")
	eq(t, "previous", ns[0].Previous, "app-0")
}

func testDeploymentClaimConcurrent(t *testing.T, s *store.Store) {
	c := ctx(t)
	newRelease(t, s, "app-1")
	d := &store.Deployment{Service: "app", Environment: "prod", ReleaseID: "app-1"}
	must(t, s.Deployments.Create(c, d))
	now := time.Now()
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	for _, owner := range []string{"a", "b", "c", "d", "e", "f"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Deployments.Claim(c, d.ID, owner, now, now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, owner)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	eq(t, "winners", len(winners), 1)
	// The holder renews; another waits until the lease expires.
	ok, err := s.Deployments.Claim(c, d.ID, winners[0], now, now.Add(time.Minute))
	must(t, err)
	eq(t, "renewed", ok, true)
	ok, err = s.Deployments.Claim(c, d.ID, "z", now.Add(30*time.Second), now.Add(2*time.Minute))
	must(t, err)
	eq(t, "taken before expiry", ok, false)
	ok, err = s.Deployments.Claim(c, d.ID, "z", now.Add(2*time.Minute), now.Add(3*time.Minute))
	must(t, err)
	eq(t, "taken after expiry", ok, true)
}

func testLocks(t *testing.T, s *store.Store) {
	c := ctx(t)
	l, err := s.Locks.Acquire(c, &store.Lock{Service: "app", Environment: "prod", DeploymentID: 4, Holder: "deployment 4 (alice)", Reason: "deploying app-1"})
	must(t, err)
	eq(t, "holder", l.Holder, "deployment 4 (alice)")
	// The same deployment gets it again; another is told who holds it.
	_, err = s.Locks.Acquire(c, &store.Lock{Service: "app", Environment: "prod", DeploymentID: 4, Holder: "deployment 4 (alice)"})
	must(t, err)
	held, err := s.Locks.Acquire(c, &store.Lock{Service: "app", Environment: "prod", DeploymentID: 5, Holder: "deployment 5 (bob)"})
	wantErr(t, err, store.ErrConflict)
	eq(t, "held by", held.Holder, "deployment 4 (alice)")
	eq(t, "reason", held.Reason, "deploying app-1")
	ok, err := s.Locks.Release(c, "app", "prod", 5)
	must(t, err)
	eq(t, "released by a non-holder", ok, false)
	ok, err = s.Locks.Release(c, "app", "prod", 4)
	must(t, err)
	eq(t, "released", ok, true)
	// A lock by hand, force-released.
	_, err = s.Locks.Acquire(c, &store.Lock{Service: "app", Environment: "prod", Holder: "carol", Reason: "incident 12"})
	must(t, err)
	ls, err := s.Locks.List(c)
	must(t, err)
	eq(t, "locks", len(ls), 1)
	dropped, err := s.Locks.Force(c, "app", "prod")
	must(t, err)
	eq(t, "dropped", dropped.Holder, "carol")
	_, err = s.Locks.Get(c, "app", "prod")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Locks.Force(c, "app", "prod")
	wantErr(t, err, store.ErrNotFound)
}

func testAudit(t *testing.T, s *store.Store) {
	c := ctx(t)
	for i, a := range []string{"deploy", "approve", "unlock"} {
		must(t, s.Audit.Append(c, &store.AuditEntry{Actor: "alice", Action: a, Service: "app", Environment: "prod", DeploymentID: int64(i + 1), Reason: "why"}))
	}
	must(t, s.Audit.Append(c, &store.AuditEntry{Actor: "bob", Action: "deploy", Service: "app", Environment: "staging"}))
	es, err := s.Audit.List(c, store.AuditFilter{Service: "app", Environment: "prod"})
	must(t, err)
	eq(t, "entries", len(es), 3)
	eq(t, "newest first", es[0].Action, "unlock")
	if es[0].Time.IsZero() {
		t.Fatal("no time recorded")
	}
	one, err := s.Audit.List(c, store.AuditFilter{DeploymentID: 2})
	must(t, err)
	eq(t, "by deployment", len(one), 1)
}

func testNodes(t *testing.T, s *store.Store) {
	c := ctx(t)
	tok := &store.Token{Kind: store.TokenNode, Name: "web-1", Hash: []byte("node-web-1")}
	must(t, s.Tokens.Create(c, tok))
	n := &store.Node{TokenID: tok.ID, Name: "web-1", Labels: label("role", "web"), Version: "1.0",
		Actual: []store.NodeService{{Service: "app", Release: "app-0", State: "running", Healthy: true}}}
	must(t, s.Nodes.Register(c, n))
	id := n.ID
	// A restarted node registers again under its token: same node.
	n.Labels = label("role", "web", "dc", "par1")
	must(t, s.Nodes.Register(c, n))
	eq(t, "id", n.ID, id)
	got, err := s.Nodes.GetByToken(c, tok.ID)
	must(t, err)
	eq(t, "label", got.Labels["dc"], "par1")
	eq(t, "actual", got.Service("app").Release, "app-0")

	must(t, s.Nodes.SetDesired(c, []*store.Desired{{NodeID: id, Service: "app", Environment: "prod", ReleaseID: "app-1"}}))
	ds, v1, err := s.Nodes.Desired(c, id)
	must(t, err)
	eq(t, "desired", len(ds), 1)
	eq(t, "release", ds[0].ReleaseID, "app-1")
	// Setting the same release again does not change the version.
	must(t, s.Nodes.SetDesired(c, []*store.Desired{{NodeID: id, Service: "app", Environment: "prod", ReleaseID: "app-1"}}))
	_, v2, err := s.Nodes.Desired(c, id)
	must(t, err)
	eq(t, "version unchanged", v2, v1)
	must(t, s.Nodes.SetDesired(c, []*store.Desired{{NodeID: id, Service: "app", Environment: "prod", ReleaseID: "app-2"}}))
	_, v3, err := s.Nodes.Desired(c, id)
	must(t, err)
	if v3 == v2 {
		t.Fatal("desired version did not change with the release")
	}
	// Serving is part of the desired state: false, the same again, and
	// back to nil (the node in charge).
	serving := func(v *bool) (*store.Desired, int64) {
		t.Helper()
		d := &store.Desired{NodeID: id, Service: "app", Environment: "prod", ReleaseID: "app-2", Serving: v}
		must(t, s.Nodes.SetDesired(c, []*store.Desired{d}))
		ds, version, err := s.Nodes.Desired(c, id)
		must(t, err)
		eq(t, "desired", len(ds), 1)
		if (ds[0].Serving == nil) != (d.Serving == nil) || d.Serving != nil && *ds[0].Serving != *d.Serving {
			t.Fatalf("serving %v stored as %v", d.Serving, ds[0].Serving)
		}
		return d, version
	}
	off := false
	d, v4 := serving(&off)
	if v4 == v3 || d.Updated.IsZero() {
		t.Fatalf("desired version %d after serving false (was %d), updated %v", v4, v3, d.Updated)
	}
	d, v5 := serving(&off)
	eq(t, "version unchanged by the same serving", v5, v4)
	if !d.Updated.IsZero() {
		t.Fatal("an unchanged desired state was marked updated")
	}
	on := true
	if _, v6 := serving(&on); v6 == v5 {
		t.Fatal("desired version did not change with serving")
	}
	if _, v7 := serving(nil); v7 == v5 {
		t.Fatal("desired version did not change with serving back to nil")
	}
	at := time.Now()
	must(t, s.Nodes.Report(c, id, []store.NodeService{{Service: "app", Release: "app-2", State: "running", Healthy: true,
		LB: "haproxy", Serving: &off}}, at))
	got, err = s.Nodes.Get(c, id)
	must(t, err)
	eq(t, "reported", got.Service("app").Release, "app-2")
	eq(t, "reported lb", got.Service("app").LB, "haproxy")
	if sv := got.Service("app").Serving; sv == nil || *sv {
		t.Fatalf("reported serving %v, want false", sv)
	}
	sameTime(t, "last seen", got.LastSeen, at)
	all, err := s.Nodes.List(c)
	must(t, err)
	eq(t, "nodes", len(all), 1)
	must(t, s.Nodes.Delete(c, id))
	_, err = s.Nodes.Get(c, id)
	wantErr(t, err, store.ErrNotFound)
}
