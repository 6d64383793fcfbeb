package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// rawArg stores a JSON document, "{}" when empty.
func rawArg(b json.RawMessage) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// rawCol scans a JSON text column as raw bytes.
type rawCol struct{ v *json.RawMessage }

func (c rawCol) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		*c.v = nil
	case string:
		*c.v = json.RawMessage(s)
	case []byte:
		*c.v = append(json.RawMessage(nil), s...)
	default:
		return fmt.Errorf("scanning json: unsupported type %T", src)
	}
	return nil
}

// ---- services ----

type services struct{ *base }

const serviceCols = `id, name, repo_id, spec, updated`

func scanService(s scanner) (*store.Service, error) {
	v := new(store.Service)
	err := s.Scan(&v.ID, &v.Name, icol(&v.RepoID), rawCol{&v.Spec}, tcol(&v.Updated))
	return v, err
}

func (s *services) Put(ctx context.Context, svc *store.Service, envs []*store.Environment) error {
	t := now()
	err := s.db.Tx(ctx, func(q Querier) error {
		err := q.QueryRow(ctx,
			`INSERT INTO services (name, repo_id, spec, updated) VALUES ($1, $2, $3, $4)
			 ON CONFLICT (name) DO UPDATE SET repo_id = excluded.repo_id, spec = excluded.spec, updated = excluded.updated
			 RETURNING id`, svc.Name, nullID(svc.RepoID), rawArg(svc.Spec), t).Scan(&svc.ID)
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM environments WHERE service_id = $1`, svc.ID); err != nil {
			return err
		}
		for i, e := range envs {
			e.ServiceID, e.Service, e.Position = svc.ID, svc.Name, i
			if _, err := q.Exec(ctx, `INSERT INTO environments (service_id, name, position, spec) VALUES ($1, $2, $3, $4)`,
				svc.ID, e.Name, i, rawArg(e.Spec)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.wrap(err, "saving service %q", svc.Name)
	}
	svc.Updated = t
	return nil
}

func (s *services) Get(ctx context.Context, name string) (*store.Service, error) {
	v, err := scanService(s.db.Reader().QueryRow(ctx, `SELECT `+serviceCols+` FROM services WHERE name = $1`, name))
	return ret(v, s.wrap(err, "getting service %q", name))
}

func (s *services) List(ctx context.Context) ([]*store.Service, error) {
	vs, err := queryAll(ctx, s.db.Reader(), scanService, `SELECT `+serviceCols+` FROM services ORDER BY name`)
	return ret(vs, s.wrap(err, "listing services"))
}

func (s *services) Environments(ctx context.Context, service string) ([]*store.Environment, error) {
	es, err := queryAll(ctx, s.db.Reader(), func(sc scanner) (*store.Environment, error) {
		e := new(store.Environment)
		return e, sc.Scan(&e.ServiceID, &e.Service, &e.Name, &e.Position, rawCol{&e.Spec})
	}, `SELECT e.service_id, s.name, e.name, e.position, e.spec FROM environments e JOIN services s ON s.id = e.service_id
	    WHERE s.name = $1 ORDER BY e.position`, service)
	return ret(es, s.wrap(err, "listing environments of %q", service))
}

// ---- releases ----

type releases struct{ *base }

const releaseCols = `id, service, version, artifact_url, sha256, size, format, image_ref, image_digest,
	build_id, repo_id, commit_sha, branch, creator, created`

func scanRelease(s scanner) (*store.Release, error) {
	r := new(store.Release)
	err := s.Scan(&r.ID, &r.Service, &r.Version, &r.ArtifactURL, &r.SHA256, &r.Size, &r.Format, &r.ImageRef,
		&r.ImageDigest, &r.BuildID, &r.RepoID, &r.Commit, &r.Branch, &r.Creator, tcol(&r.Created))
	return r, err
}

func (s *releases) Create(ctx context.Context, r *store.Release) (bool, error) {
	t := now()
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id) DO NOTHING`,
			r.ID, r.Service, r.Version, r.ArtifactURL, r.SHA256, r.Size, r.Format, r.ImageRef, r.ImageDigest,
			r.BuildID, r.RepoID, r.Commit, r.Branch, r.Creator, t)
		return err
	})
	if err != nil {
		return false, s.wrap(err, "creating release %s", r.ID)
	}
	if n == 1 {
		r.Created = t
		return true, nil
	}
	old, err := s.Get(ctx, r.ID)
	if err != nil {
		return false, err
	}
	*r = *old
	return false, nil
}

func (s *releases) Get(ctx context.Context, id string) (*store.Release, error) {
	r, err := scanRelease(s.db.Reader().QueryRow(ctx, `SELECT `+releaseCols+` FROM releases WHERE id = $1`, id))
	return ret(r, s.wrap(err, "getting release %s", id))
}

func (s *releases) List(ctx context.Context, service string, limit int) ([]*store.Release, error) {
	if limit <= 0 {
		limit = 100
	}
	rs, err := queryAll(ctx, s.db.Reader(), scanRelease,
		`SELECT `+releaseCols+` FROM releases WHERE service = $1 ORDER BY created DESC, id LIMIT $2`, service, limit)
	return ret(rs, s.wrap(err, "listing releases of %q", service))
}

// ---- deployments ----

type deployments struct{ *base }

const deploymentCols = `id, service, environment, release_id, trigger_kind, creator, build_id, state, batch, batches,
	reason, plan, paused, cancel, approved, approved_by, batch_started, wait_until, lease_owner, lease_until,
	created, started, finished, version`

func scanDeployment(s scanner) (*store.Deployment, error) {
	d := new(store.Deployment)
	var state string
	err := s.Scan(&d.ID, &d.Service, &d.Environment, &d.ReleaseID, &d.Trigger, &d.Creator, &d.BuildID, &state,
		&d.Batch, &d.Batches, &d.Reason, rawCol{&d.Plan}, &d.Paused, &d.Cancel, &d.Approved, &d.ApprovedBy,
		tcol(&d.BatchStarted), tcol(&d.WaitUntil), &d.LeaseOwner, tcol(&d.LeaseUntil),
		tcol(&d.Created), tcol(&d.Started), tcol(&d.Finished), &d.Version)
	d.State = store.DeployState(state)
	return d, err
}

func (s *deployments) Create(ctx context.Context, d *store.Deployment) error {
	t := now()
	if d.State == "" {
		d.State = store.DeployPending
	}
	err := s.auto(ctx, func(q Querier) error {
		return q.QueryRow(ctx,
			`INSERT INTO deployments (service, environment, release_id, trigger_kind, creator, build_id, state, reason,
				plan, paused, approved, approved_by, created, version)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1) RETURNING id`,
			d.Service, d.Environment, d.ReleaseID, d.Trigger, d.Creator, d.BuildID, string(d.State), d.Reason,
			rawArg(d.Plan), d.Paused, d.Approved, d.ApprovedBy, t).Scan(&d.ID)
	})
	if err != nil {
		return s.wrap(err, "creating deployment of %s to %s/%s", d.ReleaseID, d.Service, d.Environment)
	}
	d.Created, d.Version = t, 1
	return nil
}

func (s *deployments) Get(ctx context.Context, id int64) (*store.Deployment, error) {
	d, err := scanDeployment(s.db.Reader().QueryRow(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = $1`, id))
	return ret(d, s.wrap(err, "getting deployment %d", id))
}

// filtered returns "SELECT cols FROM table" with the conditions whose
// value is set (not "" or 0), newest first, at most limit rows (default
// 100), and its arguments.
func filtered(cols, table string, conds map[string]any, extra string, limit int) (string, []any) {
	var w where
	for _, col := range slices.Sorted(maps.Keys(conds)) {
		if v := conds[col]; v != "" && v != int64(0) {
			w.add(col+" = %s", v)
		}
	}
	if extra != "" {
		w.conds = append(w.conds, extra)
	}
	if limit <= 0 {
		limit = 100
	}
	w.args = append(w.args, limit)
	return fmt.Sprintf("SELECT %s FROM %s %s ORDER BY id DESC LIMIT $%d", cols, table, w.sql(), len(w.args)), w.args
}

func (s *deployments) List(ctx context.Context, f store.DeploymentFilter) ([]*store.Deployment, error) {
	extra := ""
	if f.Active {
		extra = `state IN ('pending', 'running', 'rolling_back')`
	}
	query, args := filtered(deploymentCols, "deployments", map[string]any{"service": f.Service, "environment": f.Environment}, extra, f.Limit)
	ds, err := queryAll(ctx, s.db.Reader(), scanDeployment, query, args...)
	return ret(ds, s.wrap(err, "listing deployments"))
}

func (s *deployments) Update(ctx context.Context, d *store.Deployment, entries ...*store.AuditEntry) error {
	run := s.auto
	if len(entries) > 0 {
		run = s.db.Tx
	}
	err := run(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE deployments SET state = $1, batch = $2, batches = $3, reason = $4, plan = $5, paused = $6,
				cancel = $7, approved = $8, approved_by = $9, batch_started = $10, wait_until = $11, started = $12,
				finished = $13, version = version + 1
			 WHERE id = $14 AND version = $15`,
			string(d.State), d.Batch, d.Batches, d.Reason, rawArg(d.Plan), d.Paused, d.Cancel, d.Approved, d.ApprovedBy,
			nullTime(d.BatchStarted), nullTime(d.WaitUntil), nullTime(d.Started), nullTime(d.Finished), d.ID, d.Version)
		if err == nil && n == 1 {
			for _, e := range entries {
				e.DeploymentID = d.ID
				if err := appendAudit(ctx, q, e); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		var v int64
		if err := q.QueryRow(ctx, `SELECT version FROM deployments WHERE id = $1`, d.ID).Scan(&v); err != nil {
			return err
		}
		return fmt.Errorf("deployment %d has version %d, not %d: %w", d.ID, v, d.Version, store.ErrConflict)
	})
	if err != nil {
		return s.wrap(err, "updating deployment %d", d.ID)
	}
	d.BatchStarted, d.WaitUntil, d.Started, d.Finished = norm(d.BatchStarted), norm(d.WaitUntil), norm(d.Started), norm(d.Finished)
	d.Version++
	return nil
}

func (s *deployments) Claim(ctx context.Context, id int64, owner string, at, until time.Time) (bool, error) {
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx,
			`UPDATE deployments SET lease_owner = $1, lease_until = $2
			 WHERE id = $3 AND (lease_owner = $1 OR lease_owner = '' OR lease_until IS NULL OR lease_until < $4)`,
			owner, norm(until), id, norm(at))
		return err
	})
	return n == 1, s.wrap(err, "claiming deployment %d", id)
}

const deploymentNodeCols = `deployment_id, node_id, node, batch, state, previous, error, started, finished`

func (s *deployments) Nodes(ctx context.Context, id int64) ([]*store.DeploymentNode, error) {
	ns, err := queryAll(ctx, s.db.Reader(), func(sc scanner) (*store.DeploymentNode, error) {
		n := new(store.DeploymentNode)
		return n, sc.Scan(&n.DeploymentID, &n.NodeID, &n.Node, &n.Batch, &n.State, &n.Previous, &n.Error,
			tcol(&n.Started), tcol(&n.Finished))
	}, `SELECT `+deploymentNodeCols+` FROM deployment_nodes WHERE deployment_id = $1 ORDER BY batch, node`, id)
	return ret(ns, s.wrap(err, "listing the nodes of deployment %d", id))
}

func (s *deployments) PutNode(ctx context.Context, n *store.DeploymentNode) error {
	err := s.auto(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO deployment_nodes (`+deploymentNodeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (deployment_id, node_id) DO UPDATE SET node = excluded.node, batch = excluded.batch,
				state = excluded.state, previous = excluded.previous, error = excluded.error,
				started = excluded.started, finished = excluded.finished`,
			n.DeploymentID, n.NodeID, n.Node, n.Batch, n.State, n.Previous, n.Error, nullTime(n.Started), nullTime(n.Finished))
		return err
	})
	n.Started, n.Finished = norm(n.Started), norm(n.Finished)
	return s.wrap(err, "saving node %s of deployment %d", n.Node, n.DeploymentID)
}

// ---- locks ----

type locks struct{ *base }

const lockCols = `service, environment, deployment_id, holder, reason, created`

func scanLock(s scanner) (*store.Lock, error) {
	l := new(store.Lock)
	return l, s.Scan(&l.Service, &l.Environment, &l.DeploymentID, &l.Holder, &l.Reason, tcol(&l.Created))
}

func (s *locks) Acquire(ctx context.Context, l *store.Lock) (*store.Lock, error) {
	var held *store.Lock
	t := now()
	err := s.db.Tx(ctx, func(q Querier) error {
		cur, err := scanLock(q.QueryRow(ctx, `SELECT `+lockCols+` FROM deploy_locks WHERE service = $1 AND environment = $2 `+s.d.ForUpdate,
			l.Service, l.Environment))
		switch {
		case err == nil:
			held = cur
			if l.DeploymentID != 0 && cur.DeploymentID == l.DeploymentID {
				return nil
			}
			return fmt.Errorf("%s/%s is locked by %s: %w", l.Service, l.Environment, cur.Holder, store.ErrConflict)
		case !isNotFound(err):
			return err
		}
		held = nil
		_, err = q.Exec(ctx, `INSERT INTO deploy_locks (`+lockCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			l.Service, l.Environment, l.DeploymentID, l.Holder, l.Reason, t)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return held, err
	}
	if err != nil {
		return nil, s.wrap(err, "locking %s/%s", l.Service, l.Environment)
	}
	if held != nil {
		return held, nil
	}
	l.Created = t
	return l, nil
}

func (s *locks) Get(ctx context.Context, service, env string) (*store.Lock, error) {
	l, err := scanLock(s.db.Reader().QueryRow(ctx, `SELECT `+lockCols+` FROM deploy_locks WHERE service = $1 AND environment = $2`, service, env))
	return ret(l, s.wrap(err, "getting the lock of %s/%s", service, env))
}

func (s *locks) List(ctx context.Context) ([]*store.Lock, error) {
	ls, err := queryAll(ctx, s.db.Reader(), scanLock, `SELECT `+lockCols+` FROM deploy_locks ORDER BY service, environment`)
	return ret(ls, s.wrap(err, "listing locks"))
}

func (s *locks) Release(ctx context.Context, service, env string, deployment int64) (bool, error) {
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM deploy_locks WHERE service = $1 AND environment = $2 AND deployment_id = $3`, service, env, deployment)
		return err
	})
	return n == 1, s.wrap(err, "unlocking %s/%s", service, env)
}

func (s *locks) Force(ctx context.Context, service, env string) (*store.Lock, error) {
	var l *store.Lock
	err := s.db.Tx(ctx, func(q Querier) error {
		var err error
		l, err = scanLock(q.QueryRow(ctx, `SELECT `+lockCols+` FROM deploy_locks WHERE service = $1 AND environment = $2 `+s.d.ForUpdate, service, env))
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, `DELETE FROM deploy_locks WHERE service = $1 AND environment = $2`, service, env)
		return err
	})
	return ret(l, s.wrap(err, "force-unlocking %s/%s", service, env))
}

// ---- audit ----

type audit struct{ *base }

const auditCols = `id, time, actor, action, service, environment, deployment_id, release_id, reason`

func (s *audit) Append(ctx context.Context, e *store.AuditEntry) error {
	err := s.auto(ctx, func(q Querier) error { return appendAudit(ctx, q, e) })
	return s.wrap(err, "appending to the audit log")
}

// appendAudit inserts e and sets its ID and Time (when zero).
func appendAudit(ctx context.Context, q Querier, e *store.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = norm(e.Time)
	return q.QueryRow(ctx, `INSERT INTO audit_log (time, actor, action, service, environment, deployment_id, release_id, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		e.Time, e.Actor, e.Action, e.Service, e.Environment, e.DeploymentID, e.Release, e.Reason).Scan(&e.ID)
}

func (s *audit) List(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	query, args := filtered(auditCols, "audit_log", map[string]any{"service": f.Service, "environment": f.Environment,
		"deployment_id": f.DeploymentID}, "", f.Limit)
	es, err := queryAll(ctx, s.db.Reader(), func(sc scanner) (*store.AuditEntry, error) {
		e := new(store.AuditEntry)
		return e, sc.Scan(&e.ID, tcol(&e.Time), &e.Actor, &e.Action, &e.Service, &e.Environment, &e.DeploymentID, &e.Release, &e.Reason)
	}, query, args...)
	return ret(es, s.wrap(err, "reading the audit log"))
}

// ---- nodes ----

type nodes struct{ *base }

const nodeCols = `id, token_id, name, labels, version, actual, last_seen, desired_version, created`

func scanNode(s scanner) (*store.Node, error) {
	n := new(store.Node)
	err := s.Scan(&n.ID, &n.TokenID, &n.Name, jcol(&n.Labels), &n.Version, jcol(&n.Actual), tcol(&n.LastSeen),
		&n.DesiredVersion, tcol(&n.Created))
	return n, err
}

func actualArg(a []store.NodeService) string {
	if a == nil {
		return "[]"
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("encoding json: %v", err))
	}
	return string(b)
}

func (s *nodes) Register(ctx context.Context, n *store.Node) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		return q.QueryRow(ctx,
			`INSERT INTO nodes (token_id, name, labels, version, actual, last_seen, created) VALUES ($1, $2, $3, $4, $5, $6, $6)
			 ON CONFLICT (token_id) DO UPDATE SET name = excluded.name, labels = excluded.labels, version = excluded.version,
				actual = excluded.actual, last_seen = excluded.last_seen
			 RETURNING id, desired_version, created`,
			n.TokenID, n.Name, jsonArg(n.Labels), n.Version, actualArg(n.Actual), t).Scan(&n.ID, &n.DesiredVersion, tcol(&n.Created))
	})
	if err != nil {
		return s.wrap(err, "registering node %q", n.Name)
	}
	n.LastSeen = t
	return nil
}

func (s *nodes) Get(ctx context.Context, id int64) (*store.Node, error) {
	n, err := scanNode(s.db.Reader().QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = $1`, id))
	return ret(n, s.wrap(err, "getting node %d", id))
}

func (s *nodes) GetByToken(ctx context.Context, tokenID int64) (*store.Node, error) {
	n, err := scanNode(s.db.Reader().QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE token_id = $1`, tokenID))
	return ret(n, s.wrap(err, "getting the node of token %d", tokenID))
}

func (s *nodes) List(ctx context.Context) ([]*store.Node, error) {
	ns, err := queryAll(ctx, s.db.Reader(), scanNode, `SELECT `+nodeCols+` FROM nodes ORDER BY name, id`)
	return ret(ns, s.wrap(err, "listing nodes"))
}

func (s *nodes) Report(ctx context.Context, id int64, actual []store.NodeService, at time.Time) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE nodes SET actual = $1, last_seen = $2 WHERE id = $3`, actualArg(actual), norm(at), id)
		return mustAffect(n, err, "node", id)
	})
	return s.wrap(err, "recording the report of node %d", id)
}

func (s *nodes) Touch(ctx context.Context, id int64, at time.Time) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE nodes SET last_seen = $1 WHERE id = $2`, norm(at), id)
		return mustAffect(n, err, "node", id)
	})
	return s.wrap(err, "touching node %d", id)
}

func (s *nodes) SetDesired(ctx context.Context, ds []*store.Desired) error {
	t := now()
	err := s.db.Tx(ctx, func(q Querier) error {
		for _, d := range ds {
			n, err := q.Exec(ctx,
				`INSERT INTO node_desired (node_id, service, environment, release_id, serving, updated) VALUES ($1, $2, $3, $4, $5, $6)
				 ON CONFLICT (node_id, service) DO UPDATE SET environment = excluded.environment,
					release_id = excluded.release_id, serving = excluded.serving, updated = excluded.updated
				 WHERE node_desired.release_id <> excluded.release_id OR node_desired.environment <> excluded.environment
					OR node_desired.serving IS DISTINCT FROM excluded.serving`,
				d.NodeID, d.Service, d.Environment, d.ReleaseID, d.Serving, t)
			if err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			if _, err := q.Exec(ctx, `UPDATE nodes SET desired_version = desired_version + 1 WHERE id = $1`, d.NodeID); err != nil {
				return err
			}
			d.Updated = t
		}
		return nil
	})
	return s.wrap(err, "setting desired releases")
}

func (s *nodes) Desired(ctx context.Context, nodeID int64) ([]*store.Desired, int64, error) {
	var version int64
	if err := s.db.Reader().QueryRow(ctx, `SELECT desired_version FROM nodes WHERE id = $1`, nodeID).Scan(&version); err != nil {
		return nil, 0, s.wrap(err, "getting node %d", nodeID)
	}
	ds, err := queryAll(ctx, s.db.Reader(), func(sc scanner) (*store.Desired, error) {
		d := new(store.Desired)
		return d, sc.Scan(&d.NodeID, &d.Service, &d.Environment, &d.ReleaseID, &d.Serving, tcol(&d.Updated))
	}, `SELECT node_id, service, environment, release_id, serving, updated FROM node_desired WHERE node_id = $1 ORDER BY service`, nodeID)
	return ds, version, s.wrap(err, "getting the desired state of node %d", nodeID)
}

func (s *nodes) Delete(ctx context.Context, id int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, id)
		return mustAffect(n, err, "node", id)
	})
	return s.wrap(err, "deleting node %d", id)
}

var (
	_ store.ServiceStore    = (*services)(nil)
	_ store.ReleaseStore    = (*releases)(nil)
	_ store.DeploymentStore = (*deployments)(nil)
	_ store.LockStore       = (*locks)(nil)
	_ store.AuditStore      = (*audit)(nil)
	_ store.NodeStore       = (*nodes)(nil)
)
