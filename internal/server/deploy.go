package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/deploy"
	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/store"
)

// The node protocol's long-poll bounds.
const (
	defaultNodePollWait = 30 * time.Second
	maxNodePollWait     = 2 * time.Minute
	// nodeRecheck is how often a waiting long-poll reads the store again,
	// for changes made by another server sharing the database.
	nodeRecheck = time.Second
)

// deployRoutes are the delivery endpoints: the node protocol and the
// deployments API.
func (s *Server) deployRoutes() []route {
	const svc = "/api/services/{service}"
	const env = svc + "/environments/{env}"
	const dep = "/api/deployments/{id}"
	return []route{
		{"POST", nodeproto.PathRegister, accessNode, s.serve(s.nodeRegister)},
		{"GET", nodeproto.PathDesired, accessNode, s.serve(s.nodeDesired)},
		{"POST", nodeproto.PathReport, accessNode, s.serve(s.nodeReport)},

		{"GET", "/api/node-tokens", accessAdmin, s.serve(s.listNodeTokens)},
		{"POST", "/api/node-tokens", accessAdmin, s.serve(s.createNodeToken)},
		{"DELETE", "/api/node-tokens/{id}", accessAdmin, s.serve(s.deleteNodeToken)},
		{"GET", "/api/nodes", accessUser, s.serve(s.listNodes)},
		{"DELETE", "/api/nodes/{id}", accessAdmin, s.serve(s.deleteNode)},

		{"GET", "/api/services", accessUser, s.serve(s.listServices)},
		{"GET", svc, accessUser, s.serve(s.getService)},
		{"GET", svc + "/releases", accessUser, s.serve(s.listReleases)},
		{"POST", svc + "/releases", accessUser, s.serve(s.createRelease)},
		{"GET", "/api/releases/{release}", accessUser, s.serve(s.getRelease)},
		{"POST", env + "/deployments", accessUser, s.serve(s.createDeployment)},
		{"POST", env + "/rollback", accessUser, s.serve(s.rollbackEnvironment)},
		{"POST", env + "/promote", accessUser, s.serve(s.promoteEnvironment)},
		{"PUT", env + "/lock", accessUser, s.serve(s.lockEnvironment)},
		{"DELETE", env + "/lock", accessUser, s.serve(s.unlockEnvironment)},
		{"GET", "/api/deployments", accessUser, s.serve(s.listDeployments)},
		{"GET", dep, accessUser, s.serve(s.getDeployment)},
		{"POST", dep + "/{action}", accessUser, s.serve(s.actOnDeployment)},
		{"GET", "/api/locks", accessUser, s.serve(s.listLocks)},
		{"GET", "/api/audit", accessUser, s.serve(s.listAudit)},
	}
}

// newOrchestrator returns the deploy orchestrator, which wakes node
// long-polls when desired states change, and registers its metrics.
func (s *Server) newOrchestrator() *deploy.Orchestrator {
	finished := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_deployments_total",
		Help: "Deployments this server ended, by final state.",
	}, []string{"state"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferry_deployment_duration_seconds",
		Help:    "Time from a deployment's creation to its end.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	})
	s.metrics.reg.MustRegister(finished, duration, &deployCollector{s: s})
	return deploy.New(deploy.Config{
		Finished: func(d *store.Deployment) {
			finished.WithLabelValues(string(d.State)).Inc()
			duration.Observe(d.Finished.Sub(d.Created).Seconds())
		},
		Store:          s.store,
		Secrets:        s.deploySecrets,
		Logger:         s.log.With("component", "deploy"),
		Notifications:  s.dispatch,
		DesiredChanged: func([]int64) { s.desired.notify() },
		// A server that dies leaves its deployments to the others after
		// a lease, as it leaves its jobs.
		LeaseTTL: min(s.cfg.LeaseTTL, deploy.DefaultLeaseTTL),
	})
}

var (
	descDeploymentsActive = prometheus.NewDesc("ferry_deployments_active", "Deployments not finished, by state.", []string{"state"}, nil)
	descNodes             = prometheus.NewDesc("ferry_nodes_registered", "Nodes registered with the server.", nil, nil)
	descNodesSeen         = prometheus.NewDesc("ferry_nodes_seen", "Nodes seen in the last minute.", nil, nil)
)

// deployCollector reads the delivery gauges from the store at scrape
// time, so every server of a cluster reports the same.
type deployCollector struct{ s *Server }

func (c *deployCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDeploymentsActive
	ch <- descNodes
	ch <- descNodesSeen
}

func (c *deployCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ds, err := c.s.store.Deployments.List(ctx, store.DeploymentFilter{Active: true, Limit: 10000}); err == nil {
		n := map[store.DeployState]int{store.DeployPending: 0, store.DeployRunning: 0, store.DeployRollingBack: 0}
		for _, d := range ds {
			n[d.State]++
		}
		for st, v := range n {
			ch <- prometheus.MustNewConstMetric(descDeploymentsActive, prometheus.GaugeValue, float64(v), string(st))
		}
	}
	if ns, err := c.s.store.Nodes.List(ctx); err == nil {
		seen := 0
		for _, n := range ns {
			if time.Since(n.LastSeen) < time.Minute {
				seen++
			}
		}
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(ns)))
		ch <- prometheus.MustNewConstMetric(descNodesSeen, prometheus.GaugeValue, float64(seen))
	}
}

// buildFinished tells the build's subscribers (the auto deploy trigger,
// the --notify endpoints) that a build ended. It is called once per build, from the two places
// that finish builds (reconcileOnce, and rpcComplete's fast path), until
// the build event stream replaces them.
func (s *Server) buildFinished(ctx context.Context, b *store.Build) {
	ev := deploy.BuildFinished{RepoID: b.RepoID, BuildID: b.ID, Number: b.Number, Success: b.Status == store.StatusSuccess,
		Event: b.Event, Branch: b.Branch}
	for _, sub := range []deploy.BuildSubscriber{s.deploy} {
		sub.OnBuildFinished(ctx, ev)
	}
	s.notifyBuild(ctx, nil, b, notify.ActionFinished)
}

// syncServices stores the services a repo's config declares, from pushes
// and manual builds of its default branch only: hooks and checks run on
// production hosts, so a pull request or another branch must not redefine
// them.
func (s *Server) syncServices(ctx context.Context, repo *store.Repo, b *store.Build, cfg *pipeline.Config) {
	svcs := spec.Services(cfg)
	if len(svcs) == 0 {
		return
	}
	def := repo.DefaultBranch
	if def == "" {
		def = "main"
	}
	if b.Event != store.EventPush && b.Event != store.EventCustom || b.Branch != def {
		s.log.Info("services not updated: declarations are read from pushes to the default branch only",
			"repo", repo.Slug, "branch", b.Branch, "default", def)
		return
	}
	if err := s.deploy.SyncServices(ctx, repo.ID, svcs); err != nil {
		s.log.Error("saving services", "repo", repo.Slug, "err", err)
	}
}

// ---- node protocol ----

// callerNode returns the registered node of the request's node token.
func (s *Server) callerNode(r *http.Request) (*store.Node, error) {
	n, err := s.store.Nodes.GetByToken(r.Context(), caller(r).token.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusConflict, "", "this node token has no registered node; POST %s first", nodeproto.PathRegister)
	}
	return n, err
}

func toNodeServices(ss []nodeproto.ServiceStatus) []store.NodeService {
	out := make([]store.NodeService, 0, len(ss))
	for _, st := range ss {
		out = append(out, store.NodeService{Service: st.Service, Release: st.Release, Desired: st.Desired, State: st.State,
			Healthy: st.Healthy, Error: st.Error, Kept: st.Kept, LB: st.LB, Serving: st.Serving, Time: st.Time})
	}
	return out
}

func (s *Server) nodeRegister(w http.ResponseWriter, r *http.Request) error {
	var req nodeproto.RegisterRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 200 {
		return badRequest("name", "name is required (at most 200 characters)")
	}
	n := &store.Node{TokenID: caller(r).token.ID, Name: req.Name, Labels: req.Labels, Version: req.Version,
		Actual: toNodeServices(req.Services)}
	if err := s.store.Nodes.Register(r.Context(), n); err != nil {
		return err
	}
	s.deploy.Wake()
	writeJSON(w, http.StatusOK, &nodeproto.RegisterResponse{NodeID: n.ID, PollWait: nodeproto.Duration(defaultNodePollWait)})
	return nil
}

func (s *Server) nodeDesired(w http.ResponseWriter, r *http.Request) error {
	n, err := s.callerNode(r)
	if err != nil {
		return err
	}
	wait, err := parseDuration("wait", r.URL.Query().Get("wait"))
	if err != nil {
		return err
	}
	if wait == 0 {
		wait = defaultNodePollWait
	}
	wait = min(wait, maxNodePollWait)
	have := r.URL.Query().Get("version")
	if v := strings.Trim(r.Header.Get("If-None-Match"), `"`); have == "" && v != "" {
		have = v
	}
	ctx := r.Context()
	if err := s.store.Nodes.Touch(ctx, n.ID, time.Now()); err != nil {
		return err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(nodeRecheck)
	defer tick.Stop()
	for {
		changed := s.desired.wait()
		ds, err := s.deploy.DesiredState(ctx, n.ID)
		if err != nil {
			return err
		}
		if ds.Version != have {
			w.Header().Set("ETag", `"`+ds.Version+`"`)
			writeJSON(w, http.StatusOK, ds)
			return nil
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return nil
		case <-s.stopping:
			w.WriteHeader(http.StatusNotModified)
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Server) nodeReport(w http.ResponseWriter, r *http.Request) error {
	n, err := s.callerNode(r)
	if err != nil {
		return err
	}
	var rep nodeproto.Report
	if err := decodeBody(w, r, &rep, maxBodySize, false); err != nil {
		return err
	}
	if err := s.store.Nodes.Report(r.Context(), n.ID, toNodeServices(rep.Services), time.Now()); err != nil {
		return err
	}
	s.deploy.Wake()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- tokens and nodes ----

func (s *Server) listNodeTokens(w http.ResponseWriter, r *http.Request) error {
	return s.listTokensOf(w, r, store.TokenNode)
}

func (s *Server) createNodeToken(w http.ResponseWriter, r *http.Request) error {
	return s.newToken(w, r, store.TokenNode, nil)
}

func (s *Server) deleteNodeToken(w http.ResponseWriter, r *http.Request) error {
	return s.revokeToken(w, r, store.TokenNode, 0)
}

// CreateNodeToken creates a node token named name and returns the token
// string, for provisioning and tests.
func (s *Server) CreateNodeToken(ctx context.Context, name string) (string, error) {
	tok, hash, err := store.NewToken()
	if err != nil {
		return "", err
	}
	if err := s.store.Tokens.Create(ctx, &store.Token{Kind: store.TokenNode, Name: name, Hash: hash}); err != nil {
		return "", err
	}
	return tok, nil
}

// listTokensOf lists the tokens of a kind that belong to no user.
func (s *Server) listTokensOf(w http.ResponseWriter, r *http.Request, kind store.TokenKind) error {
	ts, err := s.store.Tokens.List(r.Context(), 0)
	if err != nil {
		return err
	}
	out := []*tokenJSON{}
	for _, t := range ts {
		if t.Kind == kind {
			out = append(out, toTokenJSON(t, ""))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type nodeJSON = api.Node

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.store.Nodes.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]*nodeJSON, 0, len(ns))
	for _, n := range ns {
		ds, _, err := s.store.Nodes.Desired(r.Context(), n.ID)
		if err != nil {
			return err
		}
		j := &nodeJSON{ID: n.ID, Name: n.Name, Labels: n.Labels, Version: n.Version, LastSeen: n.LastSeen,
			Services: n.Actual, Desired: map[string]string{}}
		if j.Services == nil {
			j.Services = []store.NodeService{}
		}
		for _, d := range ds {
			j.Desired[d.Service] = d.ReleaseID
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	if err := s.store.Nodes.Delete(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- services, releases, deployments ----

// writeAll answers 200 with the JSON form of every item.
func writeAll[T, J any](w http.ResponseWriter, items []T, conv func(T) J) error {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// actor returns the caller as a deploy actor, with its role on the repo
// that declares the service.
func (s *Server) actor(r *http.Request, service string) (deploy.Actor, error) {
	p := caller(r)
	a := deploy.Actor{Name: p.name(), Admin: p.isAdmin()}
	row, err := s.store.Services.Get(r.Context(), service)
	if errors.Is(err, store.ErrNotFound) {
		return a, notFound("service %s not found", service)
	}
	if err != nil {
		return a, err
	}
	if row.RepoID != 0 {
		repo, err := s.store.Repos.Get(r.Context(), row.RepoID)
		if err == nil {
			role, err := s.role(r.Context(), p, repo)
			if err != nil {
				return a, err
			}
			a.Role = string(role)
		}
	}
	return a, nil
}

// deployError maps the deploy package's errors to API answers.
func deployError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, deploy.ErrInvalid):
		return badRequest("", "%s", strings.TrimPrefix(err.Error(), deploy.ErrInvalid.Error()+": "))
	case errors.Is(err, deploy.ErrRefused):
		return forbidden("%s", err.Error())
	case errors.Is(err, deploy.ErrLocked):
		return conflict("", "%s", err.Error())
	}
	return err
}

type environmentJSON = api.EnvironmentStatus

type serviceJSON = api.Service

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	rows, err := s.store.Services.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]*serviceJSON, 0, len(rows))
	for _, row := range rows {
		j, err := s.serviceMatrix(r.Context(), row.Name, false)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	j, err := s.serviceMatrix(r.Context(), r.PathValue("service"), true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

// serviceMatrix is a service with, per environment, what runs there, what
// is being deployed and who holds the lock.
func (s *Server) serviceMatrix(ctx context.Context, name string, withSpec bool) (*serviceJSON, error) {
	sp, row, err := s.deploy.Service(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("service %s not found", name)
	}
	if err != nil {
		return nil, err
	}
	out := &serviceJSON{Name: sp.Name, Updated: row.Updated, Environments: []*environmentJSON{}}
	if withSpec {
		out.Spec = sp
	}
	if row.RepoID != 0 {
		if repo, err := s.store.Repos.Get(ctx, row.RepoID); err == nil {
			out.Repo = repo.Slug
		}
	}
	for _, e := range sp.Environments {
		ej := &environmentJSON{Name: e.Name, Nodes: e.Nodes, Strategy: e.Strategy.Type}
		ds, err := s.store.Deployments.List(ctx, store.DeploymentFilter{Service: name, Environment: e.Name, Limit: 100})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if !d.State.Done() && ej.Active == nil {
				ej.Active = toDeploymentJSON(d, nil)
			}
			if d.State == store.DeploySucceeded && ej.Current == "" {
				ej.Current = d.ReleaseID
			}
		}
		if l, err := s.store.Locks.Get(ctx, name, e.Name); err == nil {
			ej.Lock = toLockJSON(l)
		}
		out.Environments = append(out.Environments, ej)
	}
	return out, nil
}

type releaseJSON = api.Release

type artifactRef = api.Artifact

type imageRef = api.Image

func toReleaseJSON(r *store.Release) *releaseJSON {
	j := &releaseJSON{ID: r.ID, Service: r.Service, Version: r.Version, BuildID: r.BuildID, Commit: r.Commit,
		Branch: r.Branch, Creator: r.Creator, Created: r.Created}
	if r.ImageRef != "" {
		j.Image = &imageRef{Ref: r.ImageRef, Digest: r.ImageDigest}
	} else {
		j.Artifact = &artifactRef{URL: r.ArtifactURL, SHA256: r.SHA256, Size: r.Size, Format: r.Format}
	}
	return j
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	rs, err := s.store.Releases.List(r.Context(), r.PathValue("service"), int(limit))
	if err != nil {
		return err
	}
	return writeAll(w, rs, toReleaseJSON)
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) error {
	rel, err := s.store.Releases.Get(r.Context(), r.PathValue("release"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("release %s not found", r.PathValue("release"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toReleaseJSON(rel))
	return nil
}

type releaseRequest = api.ReleaseRequest

// createRelease creates a release (201), or returns the existing one with
// the same content (200). Creating releases needs the write role on the
// service's repo.
func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) error {
	service := r.PathValue("service")
	a, err := s.actor(r, service)
	if err != nil {
		return err
	}
	if !a.Admin && a.Role != string(store.RoleWrite) && a.Role != string(store.RoleAdmin) {
		return forbidden("creating releases of %s needs the write role on its repo", service)
	}
	var req releaseRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if (req.Artifact == nil) == (req.Image == nil) {
		return badRequest("artifact", "a release needs an artifact {url, sha256} or an image {ref, digest}, not both")
	}
	row, err := s.store.Services.Get(r.Context(), service)
	if err != nil {
		return err
	}
	rel := &store.Release{Service: service, Version: req.Version, BuildID: req.BuildID, RepoID: row.RepoID,
		Commit: req.Commit, Creator: a.Name}
	// The branch, which allow.branches trusts, comes only from a build the
	// server ran, never from the request.
	if req.Branch != "" && req.BuildID == 0 && req.BuildNumber == 0 {
		return badRequest("branch", "branch is taken from the build: give build_number (or build_id), not branch")
	}
	if req.Artifact != nil {
		rel.ArtifactURL, rel.SHA256, rel.Size, rel.Format = req.Artifact.URL, strings.ToLower(req.Artifact.SHA256), req.Artifact.Size, req.Artifact.Format
	} else {
		rel.ImageRef, rel.ImageDigest = req.Image.Ref, req.Image.Digest
	}
	if req.BuildNumber != 0 && req.BuildID == 0 {
		b, err := s.store.Builds.GetNumber(r.Context(), row.RepoID, req.BuildNumber)
		if err != nil {
			return badRequest("build_number", "build %d of the repo that declares %s not found", req.BuildNumber, service)
		}
		req.BuildID = b.ID
	}
	if req.BuildID != 0 {
		// A release names the build it came from only when the build is
		// of the service's repo; its commit and branch are the build's.
		b, err := s.store.Builds.Get(r.Context(), req.BuildID)
		if err != nil || b.RepoID != row.RepoID {
			return badRequest("build_id", "build %d is not a build of the repo that declares %s", req.BuildID, service)
		}
		rel.BuildID, rel.Commit, rel.Branch = b.ID, b.Commit, b.Branch
	}
	created, err := s.deploy.CreateRelease(r.Context(), rel)
	if err != nil {
		return deployError(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toReleaseJSON(rel))
	return nil
}

type deploymentJSON = api.Deployment

type deploymentNodeJSON = api.DeploymentNode

func toDeploymentJSON(d *store.Deployment, nodes []*store.DeploymentNode) *deploymentJSON {
	j := &deploymentJSON{ID: d.ID, Service: d.Service, Environment: d.Environment, Release: d.ReleaseID, Trigger: d.Trigger,
		Creator: d.Creator, State: string(d.State), Batch: d.Batch, Batches: d.Batches, Reason: d.Reason, Paused: d.Paused,
		ApprovedBy: d.ApprovedBy, Created: d.Created, Started: d.Started, Finished: d.Finished}
	for _, n := range nodes {
		j.Nodes = append(j.Nodes, &deploymentNodeJSON{Node: n.Node, Batch: n.Batch, State: n.State, Previous: n.Previous,
			Error: n.Error, Started: n.Started, Finished: n.Finished})
	}
	return j
}

type deployRequest = api.DeployRequest

func (s *Server) deployReq(w http.ResponseWriter, r *http.Request, allowEmpty bool) (deploy.Request, error) {
	var body deployRequest
	if err := decodeBody(w, r, &body, maxBodySize, allowEmpty); err != nil {
		return deploy.Request{}, err
	}
	service, env := r.PathValue("service"), r.PathValue("env")
	a, err := s.actor(r, service)
	if err != nil {
		return deploy.Request{}, err
	}
	return deploy.Request{Service: service, Environment: env, Release: body.Release, Actor: a, Reason: body.Reason}, nil
}

func (s *Server) answerDeployment(w http.ResponseWriter, d *store.Deployment, err error) error {
	if err != nil {
		return deployError(err)
	}
	writeJSON(w, http.StatusCreated, toDeploymentJSON(d, nil))
	return nil
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) error {
	req, err := s.deployReq(w, r, false)
	if err != nil {
		return err
	}
	if req.Release == "" {
		return badRequest("release", "release is required: the ID of a release (ferry release ls)")
	}
	d, err := s.deploy.Deploy(r.Context(), req)
	return s.answerDeployment(w, d, err)
}

func (s *Server) rollbackEnvironment(w http.ResponseWriter, r *http.Request) error {
	req, err := s.deployReq(w, r, true)
	if err != nil {
		return err
	}
	d, err := s.deploy.Rollback(r.Context(), req)
	return s.answerDeployment(w, d, err)
}

func (s *Server) promoteEnvironment(w http.ResponseWriter, r *http.Request) error {
	var body deployRequest
	if err := decodeBody(w, r, &body, maxBodySize, true); err != nil {
		return err
	}
	service := r.PathValue("service")
	a, err := s.actor(r, service)
	if err != nil {
		return err
	}
	d, err := s.deploy.Promote(r.Context(), r.PathValue("env"), deploy.Request{Service: service, Environment: body.To, Actor: a, Reason: body.Reason})
	return s.answerDeployment(w, d, err)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	ds, err := s.store.Deployments.List(r.Context(), store.DeploymentFilter{Service: q.Get("service"),
		Environment: q.Get("environment"), Active: q.Get("active") == "true", Limit: int(limit)})
	if err != nil {
		return err
	}
	return writeAll(w, ds, func(x *store.Deployment) *deploymentJSON { return toDeploymentJSON(x, nil) })
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	d, err := s.store.Deployments.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("deployment %d not found", id)
	}
	if err != nil {
		return err
	}
	nodes, err := s.store.Deployments.Nodes(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toDeploymentJSON(d, nodes))
	return nil
}

type actionRequest = api.ActionRequest

func (s *Server) actOnDeployment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	action := deploy.Action(r.PathValue("action"))
	switch action {
	case deploy.ActionApprove, deploy.ActionPause, deploy.ActionResume, deploy.ActionCancel:
	default:
		return notFound("unknown action %q; valid actions are approve, pause, resume and cancel", action)
	}
	var body actionRequest
	if err := decodeBody(w, r, &body, maxBodySize, true); err != nil {
		return err
	}
	d, err := s.store.Deployments.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("deployment %d not found", id)
	}
	if err != nil {
		return err
	}
	a, err := s.actor(r, d.Service)
	if err != nil {
		return err
	}
	d, err = s.deploy.Act(r.Context(), id, action, a, body.Reason)
	if err != nil {
		return deployError(err)
	}
	writeJSON(w, http.StatusOK, toDeploymentJSON(d, nil))
	return nil
}

type lockJSON = api.Lock

func toLockJSON(l *store.Lock) *lockJSON {
	if l == nil {
		return nil
	}
	return &lockJSON{Service: l.Service, Environment: l.Environment, DeploymentID: l.DeploymentID, Holder: l.Holder,
		Reason: l.Reason, Created: l.Created}
}

func (s *Server) lockEnvironment(w http.ResponseWriter, r *http.Request) error {
	var body actionRequest
	if err := decodeBody(w, r, &body, maxBodySize, true); err != nil {
		return err
	}
	service, env := r.PathValue("service"), r.PathValue("env")
	a, err := s.actor(r, service)
	if err != nil {
		return err
	}
	l, err := s.deploy.Lock(r.Context(), service, env, a, body.Reason)
	if err != nil {
		return deployError(err)
	}
	writeJSON(w, http.StatusOK, toLockJSON(l))
	return nil
}

func (s *Server) unlockEnvironment(w http.ResponseWriter, r *http.Request) error {
	service, env := r.PathValue("service"), r.PathValue("env")
	a, err := s.actor(r, service)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	l, err := s.deploy.Unlock(r.Context(), service, env, a, q.Get("force") == "true", q.Get("reason"))
	if err != nil {
		return deployError(err)
	}
	writeJSON(w, http.StatusOK, toLockJSON(l))
	return nil
}

func (s *Server) listLocks(w http.ResponseWriter, r *http.Request) error {
	ls, err := s.store.Locks.List(r.Context())
	if err != nil {
		return err
	}
	return writeAll(w, ls, toLockJSON)
}

type auditJSON = api.AuditEntry

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		return err
	}
	dep, err := queryInt(r, "deployment", 0)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	es, err := s.store.Audit.List(r.Context(), store.AuditFilter{Service: q.Get("service"), Environment: q.Get("environment"),
		DeploymentID: dep, Limit: int(limit)})
	if err != nil {
		return err
	}
	out := make([]*auditJSON, 0, len(es))
	for _, e := range es {
		out = append(out, &auditJSON{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Service: e.Service,
			Environment: e.Environment, DeploymentID: e.DeploymentID, Release: e.Release, Reason: e.Reason})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
