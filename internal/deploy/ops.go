package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/store"
)

// Error kinds of the operations, for the API's status codes.
var (
	// ErrInvalid: the request is malformed (400).
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: a rule forbids it (403): allow, gates, windows, freezes.
	ErrRefused = errors.New("refused")
	// ErrLocked: the environment is locked (409); the message names the
	// holder.
	ErrLocked = errors.New("locked")
)

// Actor is who asks for an operation.
type Actor struct {
	// Name is a user's login, or "auto" / "build N" for triggers.
	Name string
	// Role is the actor's role on the service's repo (read, write, admin),
	// or "" when the service has no repo; Admin is a server administrator.
	Role  string
	Admin bool
	// System is set for the server's own triggers (auto deploys), which
	// the allow rule's users and role do not apply to.
	System bool
}

var roleRank = map[string]int{"read": 1, "write": 2, "admin": 3}

// mayDeploy checks the environment's allow rule for the actor.
func mayDeploy(env *spec.Environment, a Actor) error {
	if a.System || a.Admin || slices.Contains(env.Allow.Users, a.Name) {
		return nil
	}
	need := env.Allow.Role
	if need == "" {
		need = "write"
	}
	if roleRank[a.Role] >= roleRank[need] {
		return nil
	}
	return fmt.Errorf("%w: environment %s allows deployments by the %s role or by users %v; %s has %q", ErrRefused, env.Name, need, env.Allow.Users, a.Name, a.Role)
}

// ReleaseID names the release of service with the given content digest
// (hex sha256, or an image's "sha256:..." digest).
func ReleaseID(service, digest string) string {
	digest = strings.TrimPrefix(digest, "sha256:")
	if len(digest) > 12 {
		digest = digest[:12]
	}
	return service + "-" + digest
}

// CreateRelease validates r, names it by its content and stores it; the
// same content again returns the existing release.
func (o *Orchestrator) CreateRelease(ctx context.Context, r *store.Release) (created bool, err error) {
	if r.Service == "" {
		return false, fmt.Errorf("%w: a release needs a service", ErrInvalid)
	}
	digest := r.SHA256
	if r.ImageRef != "" {
		digest = r.ImageDigest
	}
	r.ID = ReleaseID(r.Service, digest)
	pr := nodeproto.Release{ID: r.ID}
	if r.ImageRef != "" {
		pr.Image = &nodeproto.Image{Ref: r.ImageRef, Digest: r.ImageDigest}
	}
	if r.ArtifactURL != "" || r.SHA256 != "" {
		pr.Artifact = &nodeproto.Artifact{URL: r.ArtifactURL, SHA256: r.SHA256, Size: r.Size, Format: r.Format}
	}
	if err := pr.Validate(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	created, err = o.st.Releases.Create(ctx, r)
	if err != nil {
		return false, err
	}
	if created {
		err := o.st.Audit.Append(ctx, &store.AuditEntry{Actor: r.Creator, Action: "release", Service: r.Service, Release: r.ID,
			Reason: fmt.Sprintf("%s%s", r.ArtifactURL, r.ImageRef)})
		if err != nil {
			o.log.Error("writing the audit log", "err", err)
		}
	}
	return created, nil
}

// SyncServices stores the services a repo's config declares.
func (o *Orchestrator) SyncServices(ctx context.Context, repoID int64, svcs []*spec.Service) error {
	for _, s := range svcs {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		var envs []*store.Environment
		for _, e := range s.Environments {
			eb, err := json.Marshal(e)
			if err != nil {
				return err
			}
			envs = append(envs, &store.Environment{Name: e.Name, Spec: eb})
		}
		if err := o.st.Services.Put(ctx, &store.Service{Name: s.Name, RepoID: repoID, Spec: b}, envs); err != nil {
			return err
		}
	}
	return nil
}

// Service returns a service's declaration.
func (o *Orchestrator) Service(ctx context.Context, name string) (*spec.Service, *store.Service, error) {
	row, err := o.st.Services.Get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	var s spec.Service
	if err := json.Unmarshal(row.Spec, &s); err != nil {
		return nil, nil, fmt.Errorf("reading service %q: %w", name, err)
	}
	return &s, row, nil
}

// Request asks for a deployment.
type Request struct {
	Service     string
	Environment string
	// Release is the release ID; empty for Rollback and Promote.
	Release string
	Actor   Actor
	// Trigger is manual (default), auto, promote or rollback.
	Trigger string
	BuildID int64
	Reason  string
}

// Deploy creates a deployment of a release to an environment, after
// checking who asks, the allow rule and the gates that can be decided at
// once; the orchestrator takes it from there. An environment locked by
// another holder refuses at once (ErrLocked, naming the holder) unless its
// lock_timeout lets the deployment wait.
func (o *Orchestrator) Deploy(ctx context.Context, req Request) (*store.Deployment, error) {
	_, env, err := o.environment(ctx, req.Service, req.Environment)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := mayDeploy(env, req.Actor); err != nil {
		return nil, err
	}
	rel, err := o.st.Releases.Get(ctx, req.Release)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: release %q does not exist", ErrInvalid, req.Release)
	}
	if err != nil {
		return nil, err
	}
	if rel.Service != req.Service {
		return nil, fmt.Errorf("%w: release %s is of service %s, not %s", ErrInvalid, rel.ID, rel.Service, req.Service)
	}
	if req.Trigger == "" {
		req.Trigger = "manual"
	}
	d := &store.Deployment{Service: req.Service, Environment: req.Environment, ReleaseID: rel.ID, Trigger: req.Trigger,
		Creator: req.Actor.Name, BuildID: req.BuildID}
	if err := o.checkGates(ctx, d, env, rel, o.cfg.Now()); err != nil {
		o.auditReq(ctx, req, rel.ID, "refused", err.Error())
		return nil, err
	}
	if env.LockTimeout == 0 {
		l, err := o.st.Locks.Get(ctx, req.Service, req.Environment)
		if err == nil && o.staleLock(ctx, l) {
			err = store.ErrNotFound
		}
		if err == nil {
			msg := describeLock(l)
			o.auditReq(ctx, req, rel.ID, "refused", msg)
			return nil, fmt.Errorf("%w: %s", ErrLocked, msg)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	if err := o.st.Deployments.Create(ctx, d); err != nil {
		return nil, err
	}
	o.audit(ctx, d, req.Actor.Name, "deploy", req.Reason)
	o.Wake()
	return d, nil
}

func (o *Orchestrator) auditReq(ctx context.Context, req Request, release, action, reason string) {
	err := o.st.Audit.Append(ctx, &store.AuditEntry{Actor: req.Actor.Name, Action: action, Service: req.Service,
		Environment: req.Environment, Release: release, Reason: reason})
	if err != nil {
		o.log.Error("writing the audit log", "err", err)
	}
}

// checkGates checks the rules that decide whether d may start now: the
// allowed branches, freezes, deploy windows and required environments. A
// rollback is let through freezes and windows: it restores what ran.
func (o *Orchestrator) checkGates(ctx context.Context, d *store.Deployment, env *spec.Environment, rel *store.Release, now time.Time) error {
	if bs := env.Allow.Branches; len(bs) > 0 {
		ok := false
		for _, g := range bs {
			if m, _ := path.Match(g, rel.Branch); m && rel.Branch != "" {
				ok = true
			}
		}
		if !ok {
			from := "from branch " + rel.Branch
			if rel.Branch == "" {
				from = "from no branch (created through the API)"
			}
			return fmt.Errorf("%w by allow.branches of environment %s: release %s was built %s; allowed: %s", ErrRefused, env.Name, rel.ID, from, strings.Join(bs, ", "))
		}
	}
	if d.Trigger != "rollback" {
		if f := env.Gates.Frozen(now); f != nil {
			return fmt.Errorf("%w: environment %s is frozen from %s until %s: %s", ErrRefused, env.Name, f.From.Format(time.RFC3339), f.To.Format(time.RFC3339), f.Reason)
		}
		if ok, why := env.Gates.InWindow(now); !ok {
			return fmt.Errorf("%w: environment %s: %s", ErrRefused, env.Name, why)
		}
	}
	for _, r := range env.Gates.Requires {
		cur, err := o.current(ctx, d.Service, r)
		if err != nil {
			return err
		}
		if cur != rel.ID {
			have := cur
			if have == "" {
				have = "nothing yet"
			}
			return fmt.Errorf("%w by gates.requires of environment %s: %s must run %s first; it runs %s (ferry promote)", ErrRefused, env.Name, r, rel.ID, have)
		}
	}
	return nil
}

// current returns the release of an environment's latest successful
// deployment, or "".
func (o *Orchestrator) current(ctx context.Context, service, env string) (string, error) {
	ds, err := o.successful(ctx, service, env, 1)
	if err != nil || len(ds) == 0 {
		return "", err
	}
	return ds[0].ReleaseID, nil
}

// successful returns an environment's latest successful deployments,
// newest first.
func (o *Orchestrator) successful(ctx context.Context, service, env string, n int) ([]*store.Deployment, error) {
	ds, err := o.st.Deployments.List(ctx, store.DeploymentFilter{Service: service, Environment: env, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var out []*store.Deployment
	for _, d := range ds {
		if d.State == store.DeploySucceeded {
			out = append(out, d)
			if len(out) == n {
				break
			}
		}
	}
	return out, nil
}

// Rollback deploys the release that ran in the environment before its
// current one: the previous successful deployment's. Nodes keep recent
// releases, so they switch back without a download.
func (o *Orchestrator) Rollback(ctx context.Context, req Request) (*store.Deployment, error) {
	// Who may deploy is checked before anything about the environment's
	// history is said.
	if svc, _, err := o.Service(ctx, req.Service); err == nil {
		if env := svc.Environment(req.Environment); env != nil {
			if err := mayDeploy(env, req.Actor); err != nil {
				return nil, err
			}
		}
	}
	ds, err := o.successful(ctx, req.Service, req.Environment, 1000)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: %s/%s has no successful deployment to roll back from", ErrInvalid, req.Service, req.Environment)
	}
	cur := ds[0].ReleaseID
	for _, d := range ds[1:] {
		if d.ReleaseID != cur {
			req.Release, req.Trigger = d.ReleaseID, "rollback"
			return o.Deploy(ctx, req)
		}
	}
	return nil, fmt.Errorf("%w: %s/%s has run only %s; there is no earlier release to roll back to", ErrInvalid, req.Service, req.Environment, cur)
}

// Promote deploys the release an environment runs to the next
// environment in the service's promotion order (or req.Environment's
// source when From is set).
func (o *Orchestrator) Promote(ctx context.Context, from string, req Request) (*store.Deployment, error) {
	svc, _, err := o.Service(ctx, req.Service)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: service %q is not declared", ErrInvalid, req.Service)
	}
	if err != nil {
		return nil, err
	}
	if svc.Environment(from) == nil {
		return nil, fmt.Errorf("%w: service %s has no environment %q", ErrInvalid, req.Service, from)
	}
	if req.Environment == "" {
		next := svc.Next(from)
		if next == nil {
			return nil, fmt.Errorf("%w: %s is the last environment of %s; name the target with --to", ErrInvalid, from, req.Service)
		}
		req.Environment = next.Name
	}
	cur, err := o.current(ctx, req.Service, from)
	if err != nil {
		return nil, err
	}
	if cur == "" {
		return nil, fmt.Errorf("%w: %s/%s has no successful deployment to promote", ErrInvalid, req.Service, from)
	}
	req.Release, req.Trigger = cur, "promote"
	if req.Reason == "" {
		req.Reason = "promoted from " + from
	}
	return o.Deploy(ctx, req)
}

// Action is an operation on a running deployment.
type Action string

// The actions.
const (
	ActionApprove Action = "approve"
	ActionPause   Action = "pause"
	ActionResume  Action = "resume"
	ActionCancel  Action = "cancel"
)

// Act applies an action to a deployment and records it in the audit log.
func (o *Orchestrator) Act(ctx context.Context, id int64, action Action, a Actor, reason string) (*store.Deployment, error) {
	for {
		d, err := o.st.Deployments.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.State.Done() {
			return d, fmt.Errorf("%w: deployment %d is %s already", ErrInvalid, id, d.State)
		}
		_, env, err := o.environment(ctx, d.Service, d.Environment)
		if err != nil {
			return nil, err
		}
		switch action {
		case ActionApprove:
			need := env.Gates.Approval
			if need == "" {
				need = "write"
			}
			if !a.Admin && roleRank[a.Role] < roleRank[need] {
				return nil, fmt.Errorf("%w: approving deployments to %s needs the %s role; %s has %q", ErrRefused, env.Name, need, a.Name, a.Role)
			}
			d.Approved, d.ApprovedBy, d.Paused = true, a.Name, false
			if d.Batch == 0 {
				d.WaitUntil = time.Time{} // the approval's deadline; a lock wait counts from now
			}
		case ActionPause:
			if err := mayDeploy(env, a); err != nil {
				return nil, err
			}
			d.Paused = true
		case ActionResume:
			if err := mayDeploy(env, a); err != nil {
				return nil, err
			}
			d.Paused = false
			if d.Batch > 0 && d.BatchStarted.IsZero() {
				d.Approved = true // a manual canary pause ends too
			}
		case ActionCancel:
			if err := mayDeploy(env, a); err != nil {
				return nil, err
			}
			d.Cancel = true
		default:
			return nil, fmt.Errorf("%w: unknown action %q", ErrInvalid, action)
		}
		err = o.st.Deployments.Update(ctx, d, entry(d, a.Name, string(action), reason))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		o.Wake()
		return d, nil
	}
}

// Lock takes an environment's lock by hand.
func (o *Orchestrator) Lock(ctx context.Context, service, env string, a Actor, reason string) (*store.Lock, error) {
	_, e, err := o.environment(ctx, service, env)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := mayDeploy(e, a); err != nil {
		return nil, err
	}
	l, err := o.st.Locks.Acquire(ctx, &store.Lock{Service: service, Environment: env, Holder: a.Name, Reason: reason})
	if errors.Is(err, store.ErrConflict) {
		return l, fmt.Errorf("%w: %s", ErrLocked, describeLock(l))
	}
	if err != nil {
		return nil, err
	}
	o.auditLock(ctx, service, env, a.Name, "lock", reason)
	return l, nil
}

// Unlock releases a lock taken by hand; force releases any lock, a
// running deployment's too, with an audit entry naming what was dropped.
func (o *Orchestrator) Unlock(ctx context.Context, service, env string, a Actor, force bool, reason string) (*store.Lock, error) {
	l, err := o.st.Locks.Get(ctx, service, env)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s/%s is not locked", ErrInvalid, service, env)
	}
	if err != nil {
		return nil, err
	}
	_, e, err := o.environment(ctx, service, env)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := mayDeploy(e, a); err != nil {
		return nil, err
	}
	if l.DeploymentID != 0 || l.Holder != a.Name {
		if !force {
			return l, fmt.Errorf("%w: %s; use --force to release it anyway", ErrLocked, describeLock(l))
		}
		if !a.Admin && roleRank[a.Role] < roleRank["admin"] {
			return l, fmt.Errorf("%w: force-releasing a lock needs the admin role", ErrRefused)
		}
	}
	dropped, err := o.st.Locks.Force(ctx, service, env)
	if err != nil {
		return nil, err
	}
	action := "unlock"
	if force {
		action = "force-unlock"
		reason = strings.TrimSpace(fmt.Sprintf("%s (dropped: %s)", reason, describeLock(dropped)))
	}
	o.auditLock(ctx, service, env, a.Name, action, reason)
	o.Wake()
	return dropped, nil
}

func (o *Orchestrator) auditLock(ctx context.Context, service, env, actor, action, reason string) {
	if err := o.st.Audit.Append(ctx, &store.AuditEntry{Actor: actor, Action: action, Service: service, Environment: env, Reason: reason}); err != nil {
		o.log.Error("writing the audit log", "err", err)
	}
}

// DesiredState is what a node should run, for the node protocol: each
// desired release with its environment's hooks and health check.
func (o *Orchestrator) DesiredState(ctx context.Context, nodeID int64) (*nodeproto.DesiredState, error) {
	ds, version, err := o.st.Nodes.Desired(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	out := &nodeproto.DesiredState{Version: strconv.FormatInt(version, 10), Services: map[string]nodeproto.Release{}}
	for _, d := range ds {
		rel, err := o.st.Releases.Get(ctx, d.ReleaseID)
		if err != nil {
			return nil, err
		}
		r := nodeproto.Release{ID: rel.ID, Serving: d.Serving}
		if rel.ImageRef != "" {
			r.Image = &nodeproto.Image{Ref: rel.ImageRef, Digest: rel.ImageDigest}
		} else {
			r.Artifact = &nodeproto.Artifact{URL: rel.ArtifactURL, SHA256: rel.SHA256, Size: rel.Size, Format: rel.Format}
		}
		if _, env, err := o.environment(ctx, d.Service, d.Environment); err == nil {
			r.Hooks = env.Hooks
			if env.Health.Type != "" {
				hc := env.Health.HealthCheck
				r.Health = &hc
			}
		}
		out.Services[d.Service] = r
	}
	return out, nil
}

// BuildFinished is what the auto trigger needs of a finished build.
type BuildFinished struct {
	RepoID  int64
	BuildID int64
	Number  int64
	// Success is true for a green build.
	Success bool
	Event   string
	Branch  string
}

// BuildSubscriber is told about every finished build, once per build, from
// the server's "build finished" place (later: the build event stream). It
// must return quickly and not fail the build.
type BuildSubscriber interface {
	OnBuildFinished(ctx context.Context, b BuildFinished)
}

var _ BuildSubscriber = (*Orchestrator)(nil)

// OnBuildFinished is the auto trigger: for a green build, each release it
// created is deployed to every environment of its service whose auto
// matches the build's branch and event. Locks and gates apply as to any
// deployment.
func (o *Orchestrator) OnBuildFinished(ctx context.Context, b BuildFinished) {
	if !b.Success {
		return
	}
	svcs, err := o.st.Services.List(ctx)
	if err != nil {
		o.log.Error("auto deploy: listing services", "err", err)
		return
	}
	for _, row := range svcs {
		if row.RepoID != b.RepoID {
			continue
		}
		rels, err := o.st.Releases.List(ctx, row.Name, 20)
		if err != nil {
			o.log.Error("auto deploy: listing releases", "service", row.Name, "err", err)
			continue
		}
		var rel *store.Release
		for _, r := range rels {
			if r.BuildID == b.BuildID {
				rel = r
				break
			}
		}
		if rel == nil {
			o.log.Debug("auto deploy: the build created no release", "service", row.Name, "build_id", b.BuildID)
			continue
		}
		var s spec.Service
		if err := json.Unmarshal(row.Spec, &s); err != nil {
			continue
		}
		for _, env := range s.Environments {
			if !autoMatches(env.Auto, b) {
				o.log.Debug("auto deploy: no match", "service", s.Name, "environment", env.Name, "branch", b.Branch, "event", b.Event)
				continue
			}
			if o.autoDeployed(ctx, s.Name, env.Name, b.BuildID) {
				// The build's side effects ran again after a server
				// died before marking them done: deploy once.
				o.log.Info("auto deploy: done already for this build", "service", s.Name, "environment", env.Name, "build_id", b.BuildID)
				continue
			}
			_, err := o.Deploy(ctx, Request{Service: s.Name, Environment: env.Name, Release: rel.ID, Trigger: "auto",
				BuildID: b.BuildID, Actor: Actor{Name: fmt.Sprintf("build %d", b.Number), System: true},
				Reason: fmt.Sprintf("green build %d of %s", b.Number, b.Branch)})
			if err != nil {
				o.log.Warn("auto deploy refused", "service", s.Name, "environment", env.Name, "release", rel.ID, "err", err)
			}
		}
	}
}

// autoDeployed reports whether build buildID triggered a deployment of
// service to env already, among the environment's latest deployments.
func (o *Orchestrator) autoDeployed(ctx context.Context, service, env string, buildID int64) bool {
	ds, err := o.st.Deployments.List(ctx, store.DeploymentFilter{Service: service, Environment: env, Limit: 20})
	if err != nil {
		o.log.Warn("auto deploy: listing deployments", "service", service, "environment", env, "err", err)
		return false
	}
	return slices.ContainsFunc(ds, func(d *store.Deployment) bool { return d.Trigger == "auto" && d.BuildID == buildID })
}

func autoMatches(a *spec.Auto, b BuildFinished) bool {
	if a == nil || len(a.Branches) == 0 {
		return false
	}
	events := a.Events
	if len(events) == 0 {
		events = []string{"push"}
	}
	if !slices.Contains(events, b.Event) {
		return false
	}
	for _, g := range a.Branches {
		if m, _ := path.Match(g, b.Branch); m {
			return true
		}
	}
	return false
}
