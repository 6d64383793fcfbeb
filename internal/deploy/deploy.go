// Package deploy is ferry's delivery on the server side: services and
// environments (declared in .ferry.yml, see spec), releases, and the
// orchestrator that rolls a release out to an environment's nodes with a
// strategy, gated by the nodes' reports and health, with locks, gates,
// approvals, pauses, automatic rollback and an audit log.
//
// The orchestrator is level-triggered like the build scheduler: Step reads
// every unfinished deployment from the store and moves each one step
// (take the lock and plan; set a batch's desired release; judge a batch
// from the nodes' reports; roll back; finish). Nothing is kept in memory
// between steps, so a restarted server resumes where the last one stopped,
// and several servers sharing a PostgreSQL database each move a deployment
// only while they hold its lease (DeploymentStore.Claim).
//
// Nodes learn their desired state through internal/nodeproto; the server
// serves it from the store (DesiredState) and this package never talks to
// nodes directly. It never imports internal/server.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
)

// ReportGrace is how long after a node's healthy_deadline the server still
// waits for its report: the node's own deadline starts after its
// download and switch, and a node that failed its check says why.
const ReportGrace = 5 * time.Second

// Defaults of Config.
const (
	DefaultLeaseTTL = 10 * time.Second
	DefaultTick     = time.Second
)

// Config configures an Orchestrator.
type Config struct {
	// Store holds every deployment's state.
	Store *store.Store
	// Owner identifies this orchestrator in deployment leases (default: a
	// random name).
	Owner string
	// LeaseTTL is how long a claimed deployment stays this orchestrator's
	// without a renewal (default 10s): how long another server waits
	// before it takes over the deployments of one that died.
	LeaseTTL time.Duration
	// Tick is how often Run steps when nothing wakes it (default 1s).
	Tick time.Duration
	// DesiredChanged is called with the nodes whose desired state changed,
	// so that their long-polls answer at once; may be nil.
	DesiredChanged func(nodeIDs []int64)
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the time (default time.Now); tests of gates set it.
	Now func() time.Time
	// Notifications sends the deployment events (to the server's --notify
	// endpoints and each environment's notify: list). Nil means a
	// dispatcher of the orchestrator's own, closed when Run returns; the
	// server passes its own, which it drains at Close.
	Notifications *notify.Dispatcher
	// Finished, when set, is called with each deployment this orchestrator
	// ends (for metrics); it must return quickly.
	Finished func(d *store.Deployment)
	// Secrets returns the decrypted secrets of repo repoID (and the
	// global ones) that deployments may use, by name, for the notify:
	// values written as {from_secret: NAME}. Nil means none.
	Secrets func(ctx context.Context, repoID int64, names []string) (map[string]string, error)
}

// Orchestrator moves deployments. Its methods are safe for concurrent use.
type Orchestrator struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	wake  chan struct{}
	stepM sync.Mutex
	// ownDispatcher is set when New made cfg.Notifications.
	ownDispatcher bool
}

// New returns an orchestrator on cfg.Store.
func New(cfg Config) *Orchestrator {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Owner == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = "orchestrator-" + hex.EncodeToString(b[:])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	own := cfg.Notifications == nil
	if own {
		cfg.Notifications = notify.NewDispatcher(nil, notify.Options{Logger: cfg.Logger})
	}
	return &Orchestrator{cfg: cfg, st: cfg.Store, log: cfg.Logger, wake: make(chan struct{}, 1), ownDispatcher: own}
}

// notifyCloseTimeout bounds how long Run, ending, waits for the
// notifications of a dispatcher of the orchestrator's own.
const notifyCloseTimeout = 10 * time.Second

// closeNotifications drains the orchestrator's own dispatcher; one passed
// in Config is its owner's to close.
func (o *Orchestrator) closeNotifications() {
	if !o.ownDispatcher {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyCloseTimeout)
	defer cancel()
	if err := o.cfg.Notifications.Close(ctx); err != nil {
		o.log.Warn("deploy notifications left unsent", "err", err)
	}
}

// Wake asks Run to step soon: a node reported, or an operation changed a
// deployment. Wakes coalesce.
func (o *Orchestrator) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run steps every Tick, and whenever woken, until ctx is done.
func (o *Orchestrator) Run(ctx context.Context) error {
	t := time.NewTicker(o.cfg.Tick)
	defer t.Stop()
	defer o.closeNotifications()
	for {
		if err := o.Step(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("deploy orchestrator", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-o.wake:
		}
	}
}

// Step moves every unfinished deployment one step (or more, while each
// step changes something without waiting).
func (o *Orchestrator) Step(ctx context.Context) error {
	o.stepM.Lock()
	defer o.stepM.Unlock()
	ds, err := o.st.Deployments.List(ctx, store.DeploymentFilter{Active: true, Limit: 1000})
	if err != nil {
		return err
	}
	var errs []error
	// Oldest first: the first deployment to an environment gets its lock.
	for i := len(ds) - 1; i >= 0; i-- {
		if err := o.advance(ctx, ds[i].ID); err != nil {
			errs = append(errs, fmt.Errorf("deployment %d: %w", ds[i].ID, err))
		}
	}
	return errors.Join(errs...)
}

// advance claims a deployment and steps it until it waits.
func (o *Orchestrator) advance(ctx context.Context, id int64) error {
	now := o.cfg.Now()
	ok, err := o.st.Deployments.Claim(ctx, id, o.cfg.Owner, now, now.Add(o.cfg.LeaseTTL))
	if err != nil || !ok {
		return err // another orchestrator moves it
	}
	for range 64 {
		d, err := o.st.Deployments.Get(ctx, id)
		if err != nil {
			return err
		}
		if d.State.Done() {
			return nil
		}
		changed, err := o.step(ctx, d)
		if errors.Is(err, store.ErrConflict) {
			continue // an operation changed it meanwhile: read it again
		}
		if err != nil || !changed {
			return err
		}
	}
	return nil
}

// plan is a deployment's plan, stored in Deployment.Plan.
type plan struct {
	Batches []Batch `json:"batches"`
	// Names maps node IDs to names, for messages.
	Names map[int64]string `json:"names"`
}

func decodePlan(d *store.Deployment) (*plan, error) {
	var p plan
	if len(d.Plan) > 0 {
		if err := json.Unmarshal(d.Plan, &p); err != nil {
			return nil, fmt.Errorf("reading the plan: %w", err)
		}
	}
	return &p, nil
}

// step moves d one step and reports whether it changed anything.
func (o *Orchestrator) step(ctx context.Context, d *store.Deployment) (bool, error) {
	_, env, err := o.environment(ctx, d.Service, d.Environment)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	switch d.State {
	case store.DeployPending:
		return o.stepPending(ctx, d, env)
	case store.DeployRunning:
		return o.stepRunning(ctx, d, env)
	case store.DeployRollingBack:
		return o.stepRollingBack(ctx, d, env)
	}
	return false, nil
}

// environment loads a service's declaration and one of its environments.
func (o *Orchestrator) environment(ctx context.Context, service, env string) (*spec.Service, *spec.Environment, error) {
	row, err := o.st.Services.Get(ctx, service)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("service %q is not declared; add a kind: service document to .ferry.yml", service)
	}
	if err != nil {
		return nil, nil, err
	}
	var s spec.Service
	if err := json.Unmarshal(row.Spec, &s); err != nil {
		return nil, nil, fmt.Errorf("reading service %q: %w", service, err)
	}
	e := s.Environment(env)
	if e == nil {
		return &s, nil, fmt.Errorf("service %q has no environment %q", service, env)
	}
	return &s, e, nil
}

func (o *Orchestrator) stepPending(ctx context.Context, d *store.Deployment, env *spec.Environment) (bool, error) {
	now := o.cfg.Now()
	if d.Cancel {
		return true, o.finish(ctx, d, store.DeployCancelled, "cancelled before it started")
	}
	rel, err := o.st.Releases.Get(ctx, d.ReleaseID)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	if err := o.checkGates(ctx, d, env, rel, now); err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	if env.Gates.Approval != "" && !d.Approved {
		// The deadline is stored in WaitUntil (unused before the first
		// batch but for this and the lock's deadline) by the first step
		// that sees the wait, so a restarted server keeps it.
		limit := spec.OrDefaultApproval(env.Gates.ApprovalTimeout)
		if d.WaitUntil.IsZero() {
			d.WaitUntil = now.Add(limit)
		}
		if !now.Before(d.WaitUntil) {
			return true, o.finish(ctx, d, store.DeployCancelled, fmt.Sprintf("approval not given within %s (gates.approval timeout); nothing was deployed", fmtDuration(limit)))
		}
		return o.wait(ctx, d, fmt.Sprintf("waiting for approval by a user with the %s role (ferry approve %d) until %s", env.Gates.Approval, d.ID, d.WaitUntil.UTC().Format(time.RFC3339)))
	}
	holder := fmt.Sprintf("deployment %d (%s)", d.ID, d.Creator)
	held, err := o.st.Locks.Acquire(ctx, &store.Lock{Service: d.Service, Environment: d.Environment, DeploymentID: d.ID,
		Holder: holder, Reason: "deploying " + d.ReleaseID})
	if errors.Is(err, store.ErrConflict) && o.staleLock(ctx, held) {
		return true, nil // dropped: try again
	}
	if errors.Is(err, store.ErrConflict) {
		desc := describeLock(held)
		if env.LockTimeout > 0 {
			// lock_timeout counts from the first time this deployment
			// found the lock taken, after its approval if it needed one
			// (approving clears the approval's deadline); the deadline
			// is stored in WaitUntil, so a restarted server keeps it.
			if d.WaitUntil.IsZero() {
				d.WaitUntil = now.Add(env.LockTimeout)
			}
			if now.Before(d.WaitUntil) {
				return o.wait(ctx, d, fmt.Sprintf("waiting for the lock until %s: %s", d.WaitUntil.UTC().Format(time.RFC3339), desc))
			}
			desc += fmt.Sprintf("; waited %s (lock_timeout)", fmtDuration(env.LockTimeout))
		}
		return true, o.finish(ctx, d, store.DeployFailed, "refused: "+desc)
	}
	if err != nil {
		return false, err
	}
	targets, err := o.targets(ctx, d.Service, env)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	strategy, err := lookupStrategy(env.Strategy.Type)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	batches, err := strategy.Plan(targets, env, d.ReleaseID)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	p := &plan{Batches: batches, Names: map[int64]string{}}
	for _, t := range targets {
		p.Names[t.ID] = t.Name
	}
	byID := map[int64]Target{}
	for _, t := range targets {
		byID[t.ID] = t
	}
	for i, b := range batches {
		for _, id := range b.Nodes {
			t := byID[id]
			err := o.st.Deployments.PutNode(ctx, &store.DeploymentNode{DeploymentID: d.ID, NodeID: id, Node: t.Name,
				Batch: i + 1, State: "pending", Previous: t.Current})
			if err != nil {
				return false, err
			}
		}
	}
	d.Plan, _ = json.Marshal(p)
	d.State, d.Batches, d.Batch, d.Started, d.Reason, d.WaitUntil = store.DeployRunning, len(batches), 0, now, "", time.Time{}
	start := entry(d, "system", "start", fmt.Sprintf("%d nodes in %d batches (%s)", len(targets), len(batches), env.Strategy.Type))
	if err := o.st.Deployments.Update(ctx, d, start); err != nil {
		return false, err
	}
	o.notify(env, d, "started")
	return true, nil
}

// staleLock drops a lock still held by a deployment that has ended (its
// server died between finishing it and releasing the lock), and reports
// whether it did.
func (o *Orchestrator) staleLock(ctx context.Context, l *store.Lock) bool {
	if l == nil || l.DeploymentID == 0 {
		return false
	}
	holder, err := o.st.Deployments.Get(ctx, l.DeploymentID)
	if err != nil && !errors.Is(err, store.ErrNotFound) || err == nil && !holder.State.Done() {
		return false
	}
	if ok, err := o.st.Locks.Release(ctx, l.Service, l.Environment, l.DeploymentID); err != nil || !ok {
		return false
	}
	o.log.Warn("released the lock of a finished deployment", "service", l.Service, "environment", l.Environment, "deployment", l.DeploymentID)
	return true
}

// describeLock names a lock's holder, reason and age.
func describeLock(l *store.Lock) string {
	if l == nil {
		return "the environment is locked"
	}
	s := fmt.Sprintf("%s/%s is locked by %s since %s", l.Service, l.Environment, l.Holder, l.Created.Format(time.RFC3339))
	if l.Reason != "" {
		s += ": " + l.Reason
	}
	return s
}

// wait records why d waits, when that changed.
func (o *Orchestrator) wait(ctx context.Context, d *store.Deployment, reason string) (bool, error) {
	if d.Reason == reason {
		return false, nil
	}
	d.Reason = reason
	return false, o.st.Deployments.Update(ctx, d)
}

// targets returns the nodes the environment selects, by name, with the
// release each runs for the service.
func (o *Orchestrator) targets(ctx context.Context, service string, env *spec.Environment) ([]Target, error) {
	nodes, err := o.st.Nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Target
	for _, n := range nodes {
		if !spec.Matches(env.Nodes, n.Labels) {
			continue
		}
		t := Target{ID: n.ID, Name: n.Name, Labels: n.Labels}
		if a := n.Service(service); a != nil {
			t.Current, t.LB, t.Serving = a.Release, a.LB, a.Serving
		}
		// What the server last asked for is the slot's role, even while
		// the node has not said yet (it restarted, say).
		ds, _, err := o.st.Nodes.Desired(ctx, n.ID)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Service == service && d.Serving != nil {
				t.Serving = d.Serving
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no registered node matches the selector %v of environment %s", env.Nodes, env.Name)
	}
	return out, nil
}

func (o *Orchestrator) stepRunning(ctx context.Context, d *store.Deployment, env *spec.Environment) (bool, error) {
	now := o.cfg.Now()
	p, err := decodePlan(d)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, err.Error())
	}
	if d.Cancel {
		return true, o.finish(ctx, d, store.DeployCancelled, "cancelled at batch "+fmt.Sprint(d.Batch)+" of "+fmt.Sprint(d.Batches))
	}
	if pd := env.Health.ProgressDeadline; pd > 0 && now.Sub(d.Started) > pd {
		return true, o.fail(ctx, d, env, fmt.Sprintf("progress deadline exceeded: the deployment did not finish within %s", pd))
	}
	// Between batches: start the next one when its pause is over.
	if d.Batch == 0 || d.BatchStarted.IsZero() {
		if d.Batch > 0 {
			b := p.Batches[d.Batch-1]
			if b.Manual && !d.Approved {
				return o.waitManual(ctx, d, env, b, now)
			}
			if d.Paused {
				return o.wait(ctx, d, fmt.Sprintf("paused after batch %d of %d; continue with ferry approve %d", d.Batch, d.Batches, d.ID))
			}
			if !b.Manual && now.Before(d.WaitUntil) {
				return o.wait(ctx, d, fmt.Sprintf("pausing after batch %d of %d until %s", d.Batch, d.Batches, d.WaitUntil.Format(time.RFC3339)))
			}
		}
		if d.Paused {
			return o.wait(ctx, d, fmt.Sprintf("paused; continue with ferry deploy resume %d", d.ID))
		}
		return true, o.startBatch(ctx, d, p, d.Batch+1)
	}
	// A batch is underway: judge it from the nodes' reports.
	nodes, err := o.st.Deployments.Nodes(ctx, d.ID)
	if err != nil {
		return false, err
	}
	b := p.Batches[d.Batch-1]
	if len(b.SwitchIn) > 0 {
		return o.stepSwitch(ctx, d, env, b, nodes)
	}
	pending, failures, err := o.judgeBatch(ctx, d, env, nodes, b.serving(), func(*store.DeploymentNode) string { return d.ReleaseID })
	if err != nil {
		return false, err
	}
	if len(failures) > 0 {
		return true, o.fail(ctx, d, env, fmt.Sprintf("batch %d of %d failed: %s", d.Batch, d.Batches, joinMax(failures, 3)))
	}
	if pending > 0 {
		out := ""
		if b.Standby {
			out = " out of the load balancer's rotation"
		}
		return o.wait(ctx, d, fmt.Sprintf("batch %d of %d: waiting for %d nodes to run %s%s and pass their health checks", d.Batch, d.Batches, pending, d.ReleaseID, out))
	}
	return true, o.batchSucceeded(ctx, d, b)
}

// batchSucceeded ends the current batch: the deployment succeeds after
// the last one, or waits for the next one (and its pause).
func (o *Orchestrator) batchSucceeded(ctx context.Context, d *store.Deployment, b Batch) error {
	now := o.cfg.Now()
	if d.Batch == d.Batches {
		return o.finish(ctx, d, store.DeploySucceeded, "")
	}
	d.BatchStarted, d.Approved = time.Time{}, false
	switch {
	case b.Manual:
		// The approval's deadline, stored: a restarted server keeps it.
		d.WaitUntil = now.Add(spec.OrDefaultApproval(b.Timeout))
	case b.Pause > 0:
		d.WaitUntil = now.Add(b.Pause)
	}
	d.Reason = fmt.Sprintf("batch %d of %d succeeded", d.Batch, d.Batches)
	return o.st.Deployments.Update(ctx, d)
}

// judgeBatch judges the nodes of the current batch that have not
// succeeded yet, each against the release it should run (and the
// load-balancer state, when serving is set), records their states, and
// returns how many are still underway and why others failed.
func (o *Orchestrator) judgeBatch(ctx context.Context, d *store.Deployment, env *spec.Environment, nodes []*store.DeploymentNode,
	serving *bool, release func(*store.DeploymentNode) string) (pending int, failures []string, err error) {
	now := o.cfg.Now()
	for _, dn := range nodes {
		if dn.Batch != d.Batch || dn.State == "succeeded" {
			continue
		}
		state, why, err := o.judge(ctx, d.Service, release(dn), serving, dn, now, env.Health.HealthyDeadline.Std())
		if err != nil {
			return 0, nil, err
		}
		switch state {
		case "":
			pending++
			continue
		case "failed":
			failures = append(failures, fmt.Sprintf("node %s: %s", dn.Node, why))
		}
		if dn.State != state {
			dn.State, dn.Error, dn.Finished = state, why, now
			if err := o.st.Deployments.PutNode(ctx, dn); err != nil {
				return 0, nil, err
			}
		}
	}
	return pending, failures, nil
}

// waitManual holds d after a batch with a manual pause until it is
// approved, or fails it (rolling back) once WaitUntil, the approval's
// deadline, has passed. A deployment stored without one (paused before
// deadlines existed) gets one from now.
func (o *Orchestrator) waitManual(ctx context.Context, d *store.Deployment, env *spec.Environment, b Batch, now time.Time) (bool, error) {
	limit := spec.OrDefaultApproval(b.Timeout)
	if d.WaitUntil.IsZero() {
		d.WaitUntil = now.Add(limit)
	}
	if !now.Before(d.WaitUntil) {
		return true, o.fail(ctx, d, env, fmt.Sprintf("approval not given within %s after batch %d of %d (the canary step's timeout)", fmtDuration(limit), d.Batch, d.Batches))
	}
	return o.wait(ctx, d, fmt.Sprintf("paused after batch %d of %d; continue with ferry approve %d until %s", d.Batch, d.Batches, d.ID, d.WaitUntil.UTC().Format(time.RFC3339)))
}

// fmtDuration writes d the way it is configured: 24h, 90m, 1h30m, 2s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// judge decides a node's part in the current batch from its report:
// "succeeded", "failed" with why, or "" while it is still underway. With
// serving set, the node must also report that load-balancer state.
func (o *Orchestrator) judge(ctx context.Context, service, release string, serving *bool, dn *store.DeploymentNode, now time.Time, deadline time.Duration) (string, string, error) {
	n, err := o.st.Nodes.Get(ctx, dn.NodeID)
	if errors.Is(err, store.ErrNotFound) {
		return "failed", "the node was deleted", nil
	}
	if err != nil {
		return "", "", err
	}
	if a := n.Service(service); a != nil {
		switch {
		case a.Release == release && a.State == "running" && a.Healthy && servingIs(a, serving):
			return "succeeded", "", nil
		case a.Desired == release && a.State == "failed":
			why := a.Error
			if why == "" {
				why = "the node could not apply the release"
			}
			return "failed", why, nil
		}
	}
	if deadline > 0 && now.Sub(dn.Started) > deadline+ReportGrace {
		last := "never reported"
		if !n.LastSeen.IsZero() {
			last = fmt.Sprintf("last seen %s ago", now.Sub(n.LastSeen).Round(time.Second))
		}
		if a := n.Service(service); a != nil {
			last = fmt.Sprintf("reports %s (%s)", describeActual(a), last)
		}
		want := "healthy on " + release
		if serving != nil {
			want += " " + servingWord(*serving)
		}
		return "failed", fmt.Sprintf("not %s within healthy_deadline %s (and %s for its report); %s", want, deadline, ReportGrace, last), nil
	}
	return "", "", nil
}

// servingIs reports whether a node's report matches the load-balancer
// state asked for (nil: any).
func servingIs(a *store.NodeService, serving *bool) bool {
	return serving == nil || a.Serving != nil && *a.Serving == *serving
}

func servingWord(serving bool) string {
	if serving {
		return "in the load balancer's rotation"
	}
	return "out of the load balancer's rotation"
}

// describeActual says what a node reports of a service, for messages.
func describeActual(a *store.NodeService) string {
	s := a.Release + " " + a.State
	switch {
	case a.Serving == nil && a.LB == "":
		s += ", no load balancer"
	case a.Serving == nil:
		s += ", load balancer state unknown"
	case *a.Serving:
		s += ", serving"
	default:
		s += ", drained"
	}
	if a.Error != "" {
		s += ": " + a.Error
	}
	return s
}

func joinMax(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(list[:n], "; "), len(list)-n)
}

// startBatch sets batch k's nodes' desired release.
func (o *Orchestrator) startBatch(ctx context.Context, d *store.Deployment, p *plan, k int) error {
	now := o.cfg.Now()
	b := p.Batches[k-1]
	nodes, err := o.st.Deployments.Nodes(ctx, d.ID)
	if err != nil {
		return err
	}
	serving := b.serving()
	var ds []*store.Desired
	for _, dn := range nodes {
		if dn.Batch != k {
			continue
		}
		dn.State, dn.Started = "applying", now
		if err := o.st.Deployments.PutNode(ctx, dn); err != nil {
			return err
		}
		if len(b.SwitchIn) == 0 {
			ds = append(ds, &store.Desired{NodeID: dn.NodeID, Service: d.Service, Environment: d.Environment, ReleaseID: d.ReleaseID, Serving: serving})
		}
	}
	// A switch starts with the standby slot entering the rotation; the
	// batch's own nodes leave it once that is done (stepSwitch).
	for _, id := range b.SwitchIn {
		ds = append(ds, &store.Desired{NodeID: id, Service: d.Service, Environment: d.Environment, ReleaseID: d.ReleaseID, Serving: new(true)})
	}
	if err := o.st.Nodes.SetDesired(ctx, ds); err != nil {
		return err
	}
	d.Batch, d.BatchStarted, d.WaitUntil, d.Approved = k, now, time.Time{}, false
	switch {
	case len(b.SwitchIn) > 0:
		d.Reason = fmt.Sprintf("batch %d of %d: switching the load balancer to %d nodes running %s", k, d.Batches, len(b.SwitchIn), d.ReleaseID)
	case b.Standby:
		d.Reason = fmt.Sprintf("batch %d of %d: %d nodes, out of the load balancer's rotation", k, d.Batches, len(b.Nodes))
	default:
		d.Reason = fmt.Sprintf("batch %d of %d: %d nodes", k, d.Batches, len(b.Nodes))
	}
	if err := o.st.Deployments.Update(ctx, d); err != nil {
		return err
	}
	o.desiredChanged(changedIDs(ds))
	o.log.Info("deployment batch started", "deployment", d.ID, "batch", k, "of", d.Batches, "nodes", len(b.Nodes))
	return nil
}

// changedIDs returns the nodes whose desired state SetDesired changed.
func changedIDs(ds []*store.Desired) []int64 {
	var out []int64
	for _, d := range ds {
		if !d.Updated.IsZero() {
			out = append(out, d.NodeID)
		}
	}
	return out
}

func (o *Orchestrator) desiredChanged(ids []int64) {
	if o.cfg.DesiredChanged != nil && len(ids) > 0 {
		o.cfg.DesiredChanged(ids)
	}
}

// fail ends a running deployment: with automatic rollback, every node it
// touched goes back to its previous release (stepRollingBack); without,
// it fails.
func (o *Orchestrator) fail(ctx context.Context, d *store.Deployment, env *spec.Environment, reason string) error {
	if !env.AutoRollback {
		return o.finish(ctx, d, store.DeployFailed, reason)
	}
	nodes, err := o.st.Deployments.Nodes(ctx, d.ID)
	if err != nil {
		return err
	}
	p, err := decodePlan(d)
	if err != nil {
		return o.finish(ctx, d, store.DeployFailed, reason+"; "+err.Error())
	}
	var first []string // touched nodes that ran no release before
	for _, dn := range nodes {
		if dn.State != "pending" && dn.Previous == "" && len(p.batch(dn.Batch).SwitchIn) == 0 {
			first = append(first, dn.Node)
		}
	}
	back := 0
	for _, step := range rollbackSteps(d, p, nodes) {
		back += len(step)
	}
	// A first deployment has nothing to go back to: the nodes have already
	// stopped the release they could not run (ferry node switches back to
	// nothing), so the deployment fails, saying so.
	if back == 0 && len(first) > 0 {
		return o.finish(ctx, d, store.DeployFailed, reason+"; no previous release to roll back to")
	}
	if len(first) > 0 {
		reason += "; no previous release to roll back to on " + joinMax(first, 3)
	}
	d.State, d.Reason, d.BatchStarted = store.DeployRollingBack, reason, o.cfg.Now()
	if err := o.st.Deployments.Update(ctx, d, entry(d, "system", "rollback", reason)); err != nil {
		return err
	}
	o.log.Warn("deployment failed; rolling back", "deployment", d.ID, "reason", reason)
	return nil
}

// stepRollingBack sets every touched node's desired state back (in the
// order rollbackSteps gives), and waits until each runs its previous
// release again (in its load-balancer state, for blue-green), or the
// healthy deadline passes; then it ends rolled_back.
func (o *Orchestrator) stepRollingBack(ctx context.Context, d *store.Deployment, env *spec.Environment) (bool, error) {
	now := o.cfg.Now()
	nodes, err := o.st.Deployments.Nodes(ctx, d.ID)
	if err != nil {
		return false, err
	}
	p, err := decodePlan(d)
	if err != nil {
		return true, o.finish(ctx, d, store.DeployFailed, d.Reason+"; "+err.Error())
	}
	deadline := env.Health.HealthyDeadline.Std()
	late := deadline > 0 && now.Sub(d.BatchStarted) > deadline+ReportGrace
	reason := d.Reason
	steps := rollbackSteps(d, p, nodes)
	for i, step := range steps {
		ds := make([]*store.Desired, len(step))
		for j, r := range step {
			ds[j] = r.want
		}
		if err := o.st.Nodes.SetDesired(ctx, ds); err != nil {
			return false, err
		}
		o.desiredChanged(changedIDs(ds))
		waiting := 0
		var lost []string
		for _, r := range step {
			if r.dn.State == "rolled_back" {
				continue
			}
			back, err := o.isBack(ctx, r.want)
			if err != nil {
				return false, err
			}
			if back {
				r.dn.State, r.dn.Finished = "rolled_back", now
				if err := o.st.Deployments.PutNode(ctx, r.dn); err != nil {
					return false, err
				}
				continue
			}
			if late {
				lost = append(lost, r.dn.Node)
				continue
			}
			waiting++
		}
		if waiting > 0 {
			return false, nil
		}
		if len(lost) > 0 {
			reason += fmt.Sprintf("; not confirmed back on the previous release: %s", strings.Join(lost, ", "))
			if i < len(steps)-1 {
				// The old slot is not confirmed serving: leave the new
				// one in rotation rather than none.
				reason += "; the new slot was left in the load balancer's rotation"
				break
			}
		}
	}
	return true, o.finish(ctx, d, store.DeployRolledBack, reason)
}

// finish ends d in state with reason, and releases its lock.
func (o *Orchestrator) finish(ctx context.Context, d *store.Deployment, state store.DeployState, reason string) error {
	d.State, d.Reason, d.Finished = state, reason, o.cfg.Now()
	if err := o.st.Deployments.Update(ctx, d, entry(d, "system", string(state), reason)); err != nil {
		return err
	}
	// A crash here leaves the lock to a finished deployment; the next
	// deployment takes it over (see stepPending).
	if _, err := o.st.Locks.Release(ctx, d.Service, d.Environment, d.ID); err != nil {
		return err
	}
	if _, env, err := o.environment(ctx, d.Service, d.Environment); err == nil {
		o.notify(env, d, string(state))
	}
	if o.cfg.Finished != nil {
		o.cfg.Finished(d)
	}
	o.log.Info("deployment finished", "deployment", d.ID, "service", d.Service, "environment", d.Environment,
		"release", d.ReleaseID, "state", state, "reason", reason)
	return nil
}

// entry is an audit entry about d, written with d's next Update.
func entry(d *store.Deployment, actor, action, reason string) *store.AuditEntry {
	return &store.AuditEntry{Actor: actor, Action: action, Service: d.Service, Environment: d.Environment,
		DeploymentID: d.ID, Release: d.ReleaseID, Reason: reason}
}

// audit appends an entry about d; a failure is logged, not fatal: the
// deployment's own state is the source of truth.
func (o *Orchestrator) audit(ctx context.Context, d *store.Deployment, actor, action, reason string) {
	err := o.st.Audit.Append(ctx, &store.AuditEntry{Actor: actor, Action: action, Service: d.Service,
		Environment: d.Environment, DeploymentID: d.ID, Release: d.ReleaseID, Reason: reason})
	if err != nil {
		o.log.Error("writing the audit log", "deployment", d.ID, "err", err)
	}
}
