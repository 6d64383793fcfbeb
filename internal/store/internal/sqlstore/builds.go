package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

type builds struct{ *base }

const buildCols = `id, repo_id, number, parent, event, ref, branch, source_branch, commit_sha, before_sha, message,
	author, author_email, sender, pull_request, fork, cron, params, status, error, approval, approved_by,
	created, started, finished, updated, version, warnings`

// buildColsB is buildCols of the builds table aliased b.
var buildColsB = aliased("b", buildCols)

func scanBuild(s scanner) (*store.Build, error) {
	b := new(store.Build)
	err := s.Scan(&b.ID, &b.RepoID, &b.Number, &b.Parent, &b.Event, &b.Ref, &b.Branch, &b.SourceBranch, &b.Commit,
		&b.Before, &b.Message, &b.Author, &b.AuthorEmail, &b.Sender, &b.PullRequest, &b.Fork, &b.Cron,
		jcol(&b.Params), &b.Status, &b.Error, &b.Approval, &b.ApprovedBy,
		tcol(&b.Created), tcol(&b.Started), tcol(&b.Finished), tcol(&b.Updated), &b.Version, jcol(&b.Warnings))
	if len(b.Warnings) == 0 {
		b.Warnings = nil
	}
	return b, err
}

func (s *builds) Create(ctx context.Context, b *store.Build, ps []*store.Pipeline) error {
	t := now()
	if b.Status == "" {
		b.Status = store.StatusPending
	}
	err := s.db.Tx(ctx, func(q Querier) error {
		// The UPDATE locks the repo row until commit, so concurrent
		// creators take numbers one after another.
		err := q.QueryRow(ctx,
			`UPDATE repos SET build_counter = build_counter + 1 WHERE id = $1 RETURNING build_counter`,
			b.RepoID).Scan(&b.Number)
		if err != nil {
			return fmt.Errorf("numbering build of repo %d: %w", b.RepoID, err)
		}
		err = q.QueryRow(ctx,
			`INSERT INTO builds (repo_id, number, parent, event, ref, branch, source_branch, commit_sha, before_sha,
				message, author, author_email, sender, pull_request, fork, cron, params, status, error, approval,
				approved_by, created, started, finished, updated, version, warnings)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
				$21, $22, $23, $24, $22, 1, $25)
			 RETURNING id`,
			b.RepoID, b.Number, b.Parent, b.Event, b.Ref, b.Branch, b.SourceBranch, b.Commit, b.Before,
			b.Message, b.Author, b.AuthorEmail, b.Sender, b.PullRequest, b.Fork, b.Cron, jsonArg(b.Params),
			string(b.Status), b.Error, string(b.Approval), b.ApprovedBy, t, nullTime(b.Started),
			nullTime(b.Finished), jsonArg(b.Warnings)).Scan(&b.ID)
		if err != nil {
			return fmt.Errorf("inserting build: %w", err)
		}
		for i, p := range ps {
			if err := insertPipeline(ctx, q, b, int64(i+1), p, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.wrap(err, "creating build of repo %d", b.RepoID)
	}
	b.Created, b.Updated, b.Version = t, t, 1
	b.Started, b.Finished = norm(b.Started), norm(b.Finished)
	return nil
}

func insertPipeline(ctx context.Context, q Querier, b *store.Build, number int64, p *store.Pipeline, t time.Time) error {
	p.BuildID, p.Number, p.Created = b.ID, number, t
	if p.Status == "" {
		p.Status = store.StatusPending
	}
	err := q.QueryRow(ctx,
		`INSERT INTO pipelines (build_id, number, name, status, error, exit_code, depends_on, agent, created,
			started, finished)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		p.BuildID, p.Number, p.Name, string(p.Status), p.Error, p.ExitCode, jsonArg(p.DependsOn), p.Agent, t,
		nullTime(p.Started), nullTime(p.Finished)).Scan(&p.ID)
	if err != nil {
		return fmt.Errorf("inserting pipeline %q: %w", p.Name, err)
	}
	for i, st := range p.Steps {
		st.PipelineID, st.BuildID, st.Number = p.ID, b.ID, int64(i+1)
		if st.Status == "" {
			st.Status = store.StatusPending
		}
		err := q.QueryRow(ctx,
			`INSERT INTO steps (pipeline_id, build_id, number, name, status, exit_code, error, started, finished)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			st.PipelineID, st.BuildID, st.Number, st.Name, string(st.Status), st.ExitCode, st.Error,
			nullTime(st.Started), nullTime(st.Finished)).Scan(&st.ID)
		if err != nil {
			return fmt.Errorf("inserting step %q: %w", st.Name, err)
		}
	}
	if p.Job != nil {
		p.Job.RepoID, p.Job.BuildID, p.Job.PipelineID = b.RepoID, b.ID, p.ID
		if err := insertJob(ctx, q, p.Job, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *builds) Get(ctx context.Context, id int64) (*store.Build, error) {
	b, err := scanBuild(s.db.Reader().QueryRow(ctx, `SELECT `+buildCols+` FROM builds WHERE id = $1`, id))
	return ret(b, s.wrap(err, "getting build %d", id))
}

func (s *builds) GetWithRepo(ctx context.Context, id int64) (*store.Build, *store.Repo, error) {
	var cols columns
	b, _ := scanBuild(&cols)
	r, _ := scanRepo(&cols)
	err := s.db.Reader().QueryRow(ctx, `SELECT `+buildColsB+`, `+aliased("r", repoCols)+`
		FROM builds b JOIN repos r ON r.id = b.repo_id WHERE b.id = $1`, id).Scan(cols...)
	if err != nil {
		return nil, nil, s.wrap(err, "getting build %d", id)
	}
	return b, r, nil
}

func (s *builds) GetNumber(ctx context.Context, repoID, number int64) (*store.Build, error) {
	b, err := scanBuild(s.db.Reader().QueryRow(ctx,
		`SELECT `+buildCols+` FROM builds WHERE repo_id = $1 AND number = $2`, repoID, number))
	return ret(b, s.wrap(err, "getting build %d of repo %d", number, repoID))
}

func (s *builds) List(ctx context.Context, repoID int64, f store.BuildFilter) ([]*store.Build, error) {
	var w where
	w.add("repo_id = %s", repoID)
	if f.Branch != "" {
		w.add("branch = %s", f.Branch)
	}
	if f.Commit != "" {
		w.add("commit_sha = %s", f.Commit)
	}
	if f.PullRequest != 0 {
		w.add("pull_request = %s", f.PullRequest)
	}
	if f.Event != "" {
		w.add("event = %s", f.Event)
	}
	if f.Status != "" {
		w.add("status = %s", string(f.Status))
	}
	if f.Before != 0 {
		w.add("number < %s", f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	bs, err := queryAll(ctx, s.db.Reader(), scanBuild,
		`SELECT `+buildCols+` FROM builds `+w.sql()+fmt.Sprintf(` ORDER BY number DESC LIMIT %d`, limit), w.args...)
	return ret(bs, s.wrap(err, "listing builds of repo %d", repoID))
}

func (s *builds) Update(ctx context.Context, b *store.Build) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE builds SET status = $1, error = $2, approval = $3, approved_by = $4, started = $5,
				finished = $6, updated = $7, version = version + 1
			 WHERE id = $8 AND version = $9`,
			string(b.Status), b.Error, string(b.Approval), b.ApprovedBy, nullTime(b.Started), nullTime(b.Finished),
			t, b.ID, b.Version)
		if err != nil || n == 1 {
			return err
		}
		var v int64
		if err := q.QueryRow(ctx, `SELECT version FROM builds WHERE id = $1`, b.ID).Scan(&v); err != nil {
			return err
		}
		return fmt.Errorf("build %d has version %d, not %d: %w", b.ID, v, b.Version, store.ErrConflict)
	})
	if err != nil {
		return s.wrap(err, "updating build %d", b.ID)
	}
	b.Updated = t
	b.Started, b.Finished = norm(b.Started), norm(b.Finished)
	b.Version++
	return nil
}

func (s *builds) Delete(ctx context.Context, id int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM builds WHERE id = $1`, id)
		return mustAffect(n, err, "build", id)
	})
	return s.wrap(err, "deleting build %d", id)
}

type pipelines struct{ *base }

const pipelineCols = `id, build_id, number, name, status, error, exit_code, depends_on, agent, created, started, finished`

func scanPipeline(s scanner) (*store.Pipeline, error) {
	p := new(store.Pipeline)
	var status string
	err := s.Scan(&p.ID, &p.BuildID, &p.Number, &p.Name, &status, &p.Error, &p.ExitCode, jcol(&p.DependsOn),
		&p.Agent, tcol(&p.Created), tcol(&p.Started), tcol(&p.Finished))
	p.Status = store.Status(status)
	return p, err
}

func (s *pipelines) Get(ctx context.Context, id int64) (*store.Pipeline, error) {
	p, err := scanPipeline(s.db.Reader().QueryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE id = $1`, id))
	if err != nil {
		return nil, s.wrap(err, "getting pipeline %d", id)
	}
	p.Steps, err = queryAll(ctx, s.db.Reader(), scanStep,
		`SELECT `+stepCols+` FROM steps WHERE pipeline_id = $1 ORDER BY number`, id)
	return ret(p, s.wrap(err, "getting steps of pipeline %d", id))
}

func (s *pipelines) List(ctx context.Context, buildID int64) ([]*store.Pipeline, error) {
	ps, err := queryAll(ctx, s.db.Reader(), scanPipeline,
		`SELECT `+pipelineCols+` FROM pipelines WHERE build_id = $1 ORDER BY number`, buildID)
	if err != nil {
		return nil, s.wrap(err, "listing pipelines of build %d", buildID)
	}
	sts, err := queryAll(ctx, s.db.Reader(), scanStep,
		`SELECT `+stepCols+` FROM steps WHERE build_id = $1 ORDER BY pipeline_id, number`, buildID)
	if err != nil {
		return nil, s.wrap(err, "listing steps of build %d", buildID)
	}
	byID := make(map[int64]*store.Pipeline, len(ps))
	for _, p := range ps {
		byID[p.ID] = p
	}
	for _, st := range sts {
		if p := byID[st.PipelineID]; p != nil {
			p.Steps = append(p.Steps, st)
		}
	}
	return ps, nil
}

func (s *pipelines) Update(ctx context.Context, p *store.Pipeline) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE pipelines SET status = $1, error = $2, exit_code = $3, agent = $4, started = $5, finished = $6
			 WHERE id = $7`,
			string(p.Status), p.Error, p.ExitCode, p.Agent, nullTime(p.Started), nullTime(p.Finished), p.ID)
		return mustAffect(n, err, "pipeline", p.ID)
	})
	if err != nil {
		return s.wrap(err, "updating pipeline %d", p.ID)
	}
	p.Started, p.Finished = norm(p.Started), norm(p.Finished)
	return nil
}

// Rerun implements store.PipelineStore.
func (s *pipelines) Rerun(ctx context.Context, p *store.Pipeline, since time.Time) (bool, error) {
	changed, err := s.updateWhere(ctx, "pipelines", p.ID, `status = 'running' AND started IS NOT DISTINCT FROM $7`,
		`status = $1, error = $2, exit_code = $3, agent = $4, started = $5, finished = $6`,
		string(p.Status), p.Error, p.ExitCode, p.Agent, nullTime(p.Started), nullTime(p.Finished), nullTime(since))
	if err != nil {
		return false, s.wrap(err, "re-running pipeline %d", p.ID)
	}
	p.Started, p.Finished = norm(p.Started), norm(p.Finished)
	return changed, nil
}

// Finish implements store.PipelineStore.
func (s *pipelines) Finish(ctx context.Context, p *store.Pipeline) (bool, error) {
	changed, err := s.updateUnfinished(ctx, "pipelines", p.ID,
		`status = $1, error = $2, exit_code = $3, agent = $4, started = $5, finished = $6`,
		string(p.Status), p.Error, p.ExitCode, p.Agent, nullTime(p.Started), nullTime(p.Finished))
	if err != nil {
		return false, s.wrap(err, "finishing pipeline %d", p.ID)
	}
	p.Started, p.Finished = norm(p.Started), norm(p.Finished)
	return changed, nil
}

// Start implements store.PipelineStore.
func (s *pipelines) Start(ctx context.Context, id int64, agent string, at time.Time) (pipeline, build bool, err error) {
	if s.d.WritableCTE {
		// Both updates in one statement: one round trip instead of four.
		err = s.db.Writer().QueryRow(ctx,
			`WITH p AS (
				UPDATE pipelines SET status = 'running', agent = $1, started = $2, finished = NULL
				WHERE id = $3 AND status = 'pending' RETURNING build_id),
			 b AS (
				UPDATE builds SET status = 'running', started = COALESCE(started, $2), updated = $4, version = version + 1
				WHERE id = (SELECT build_id FROM p) AND status = 'pending' AND approval <> 'pending' RETURNING id)
			 SELECT EXISTS (SELECT 1 FROM p), EXISTS (SELECT 1 FROM b)`,
			agent, nullTime(at), id, now()).Scan(&pipeline, &build)
		if err != nil {
			return false, false, s.wrap(err, "starting pipeline %d", id)
		}
		return pipeline, build, nil
	}
	err = s.db.Tx(ctx, func(q Querier) error {
		pipeline, build = false, false
		var buildID int64
		err := q.QueryRow(ctx,
			`UPDATE pipelines SET status = 'running', agent = $1, started = $2, finished = NULL
			 WHERE id = $3 AND status = 'pending' RETURNING build_id`,
			agent, nullTime(at), id).Scan(&buildID)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		pipeline = true
		n, err := q.Exec(ctx,
			`UPDATE builds SET status = 'running', started = COALESCE(started, $1), updated = $2, version = version + 1
			 WHERE id = $3 AND status = 'pending' AND approval <> 'pending'`,
			nullTime(at), now(), buildID)
		build = n > 0
		return err
	})
	if err != nil {
		return false, false, s.wrap(err, "starting pipeline %d", id)
	}
	return pipeline, build, nil
}

// updateUnfinished sets the columns of set (placeholders $1..$n for args)
// on the row id of table unless its status is final, and reports whether
// it did. A row that does not exist is ErrNotFound.
func (b *base) updateUnfinished(ctx context.Context, table string, id int64, set string, args ...any) (bool, error) {
	return b.updateWhere(ctx, table, id, `status NOT IN `+finalStatuses, set, args...)
}

// updateWhere sets the columns of set (placeholders $1..$n for args) on
// the row id of table if its status satisfies cond, and reports whether it
// did. A row that does not exist is ErrNotFound.
func (b *base) updateWhere(ctx context.Context, table string, id int64, cond, set string, args ...any) (bool, error) {
	changed := false
	err := b.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			fmt.Sprintf(`UPDATE %s SET %s WHERE id = $%d AND %s`, table, set, len(args)+1, cond),
			append(args, id)...)
		if err != nil {
			return err
		}
		if n > 0 {
			changed = true
			return nil
		}
		var one int
		return q.QueryRow(ctx, `SELECT 1 FROM `+table+` WHERE id = $1`, id).Scan(&one)
	})
	return changed, err
}

// finalStatuses lists store.FinalStatuses for a SQL IN clause.
var finalStatuses = func() string {
	q := make([]string, len(store.FinalStatuses))
	for i, st := range store.FinalStatuses {
		q[i] = "'" + string(st) + "'"
	}
	return "(" + strings.Join(q, ", ") + ")"
}()

// Complete implements store.PipelineStore.
func (s *pipelines) Complete(ctx context.Context, jobID int64, agent string) (*store.Completion, error) {
	var c *store.Completion
	err := s.db.Tx(ctx, func(q Querier) error {
		c = nil
		var (
			pipelineID, buildID int64
			jobStatus, jobError string
			started, finished   time.Time
		)
		// The job and its build in one read.
		cols := columns{&pipelineID, &buildID, &jobStatus, &jobError, tcol(&started), tcol(&finished)}
		b, _ := scanBuild(&cols)
		err := q.QueryRow(ctx,
			`SELECT j.pipeline_id, j.build_id, j.status, j.error, j.started, j.finished, `+buildColsB+`
			 FROM jobs j JOIN builds b ON b.id = j.build_id WHERE j.id = $1`, jobID).Scan(cols...)
		if err != nil {
			return fmt.Errorf("reading job %d and its build: %w", jobID, err)
		}
		status := store.Status(jobStatus)
		if !status.Done() {
			return nil
		}
		if b.Status.Done() || b.Approval == store.ApprovalPending || b.Approval == store.ApprovalDeclined {
			return nil
		}
		if finished.IsZero() {
			finished = now()
		}
		p, err := scanPipeline(q.QueryRow(ctx,
			`UPDATE pipelines SET status = $1, error = $2, finished = $3, started = COALESCE(started, $4),
				agent = CASE WHEN agent = '' THEN $5 ELSE agent END
			 WHERE id = $6 AND status NOT IN `+finalStatuses+`
			   AND NOT EXISTS (SELECT 1 FROM pipelines o WHERE o.build_id = $7 AND o.id <> $6
				AND o.status NOT IN `+finalStatuses+`)
			   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.build_id = $7 AND j.id <> $8
				AND j.status IN ('blocked', 'pending', 'running'))
			 RETURNING `+pipelineCols,
			jobStatus, jobError, finished, nullTime(started), agent, pipelineID, buildID, jobID))
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finishing pipeline %d: %w", pipelineID, err)
		}
		running, stepErr := store.StatusError, jobError
		if status == store.StatusKilled {
			running = store.StatusKilled
		}
		setErr := running == store.StatusError
		if stepErr == "" {
			stepErr = store.UnreportedStepError
		}
		ended, err := queryAll(ctx, q, scanStep,
			`UPDATE steps SET status = CASE WHEN status = 'running' THEN $1 ELSE 'skipped' END,
				error = CASE WHEN status = 'running' AND $5 THEN $2 ELSE error END, finished = $3
			 WHERE pipeline_id = $4 AND status NOT IN `+finalStatuses+` RETURNING `+stepCols,
			string(running), stepErr, finished, pipelineID, setErr)
		if err != nil {
			return fmt.Errorf("ending steps of pipeline %d: %w", pipelineID, err)
		}
		pls, err := queryAll(ctx, q, scanPipeline,
			`SELECT `+pipelineCols+` FROM pipelines WHERE build_id = $1 ORDER BY number`, buildID)
		if err != nil {
			return fmt.Errorf("listing pipelines of build %d: %w", buildID, err)
		}
		c = &store.Completion{Pipeline: p, Build: b, Pipelines: pls, Steps: ended}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err, "completing job %d", jobID)
	}
	return c, nil
}

type steps struct{ *base }

const stepCols = `id, pipeline_id, build_id, number, name, status, exit_code, error, started, finished`

func scanStep(s scanner) (*store.Step, error) {
	st := new(store.Step)
	var status string
	err := s.Scan(&st.ID, &st.PipelineID, &st.BuildID, &st.Number, &st.Name, &status, &st.ExitCode, &st.Error,
		tcol(&st.Started), tcol(&st.Finished))
	st.Status = store.Status(status)
	return st, err
}

func (s *steps) Get(ctx context.Context, id int64) (*store.Step, error) {
	st, err := scanStep(s.db.Reader().QueryRow(ctx, `SELECT `+stepCols+` FROM steps WHERE id = $1`, id))
	return ret(st, s.wrap(err, "getting step %d", id))
}

func (s *steps) Update(ctx context.Context, st *store.Step) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE steps SET status = $1, exit_code = $2, error = $3, started = $4, finished = $5 WHERE id = $6`,
			string(st.Status), st.ExitCode, st.Error, nullTime(st.Started), nullTime(st.Finished), st.ID)
		return mustAffect(n, err, "step", st.ID)
	})
	if err != nil {
		return s.wrap(err, "updating step %d", st.ID)
	}
	st.Started, st.Finished = norm(st.Started), norm(st.Finished)
	return nil
}

// Advance implements store.StepStore.
func (s *steps) Advance(ctx context.Context, st *store.Step) (bool, error) {
	// A step moves pending → running → final, or pending → final at once.
	cond := `status NOT IN ` + finalStatuses
	if st.Status == store.StatusRunning {
		cond = `status = 'pending'`
	}
	changed, err := s.updateWhere(ctx, "steps", st.ID, cond,
		`status = $1, exit_code = $2, error = $3, started = $4, finished = $5`,
		string(st.Status), st.ExitCode, st.Error, nullTime(st.Started), nullTime(st.Finished))
	if err != nil {
		return false, s.wrap(err, "advancing step %d", st.ID)
	}
	st.Started, st.Finished = norm(st.Started), norm(st.Finished)
	return changed, nil
}

// where builds a WHERE clause with numbered placeholders.
type where struct {
	conds []string
	args  []any
}

// add appends a condition; its %s is replaced by the next placeholder.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(cond, fmt.Sprintf("$%d", len(w.args))))
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(w.conds, " AND ")
}
