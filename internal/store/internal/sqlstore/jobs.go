package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

type jobs struct{ *base }

const jobCols = `id, repo_id, build_id, pipeline_id, status, labels, payload, lease_owner, lease_token, lease_expires,
	attempts, not_before, canceled, error, created, queued, started, finished`

func scanJob(s scanner) (*store.Job, error) {
	j := new(store.Job)
	var status string
	err := s.Scan(&j.ID, icol(&j.RepoID), icol(&j.BuildID), icol(&j.PipelineID), &status, jcol(&j.Labels),
		&j.Payload, &j.LeaseOwner, &j.LeaseToken, tcol(&j.LeaseExpires), &j.Attempts, tcol(&j.NotBefore),
		&j.Canceled, &j.Error, tcol(&j.Created), tcol(&j.Queued), tcol(&j.Started), tcol(&j.Finished))
	j.Status = store.Status(status)
	return j, err
}

// insertJob inserts j as a new pending or blocked job.
func insertJob(ctx context.Context, q Querier, j *store.Job, t time.Time) error {
	switch j.Status {
	case "":
		j.Status = store.StatusPending
	case store.StatusPending, store.StatusBlocked:
	default:
		return fmt.Errorf("enqueueing job with status %q: want pending or blocked", j.Status)
	}
	j.Created, j.Queued, j.NotBefore = t, t, norm(j.NotBefore)
	j.Attempts, j.LeaseOwner, j.LeaseToken, j.LeaseExpires, j.Canceled = 0, 0, "", time.Time{}, false
	err := q.QueryRow(ctx,
		`INSERT INTO jobs (repo_id, build_id, pipeline_id, status, labels, payload, not_before, error, created, queued)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id`,
		nullID(j.RepoID), nullID(j.BuildID), nullID(j.PipelineID), string(j.Status), jsonArg(j.Labels), j.Payload,
		nullTime(j.NotBefore), j.Error, t).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("inserting job: %w", err)
	}
	return nil
}

func (s *jobs) Enqueue(ctx context.Context, js ...*store.Job) error {
	t := now()
	err := s.db.Tx(ctx, func(q Querier) error {
		for _, j := range js {
			if err := insertJob(ctx, q, j, t); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(err, "enqueueing %d jobs", len(js))
}

func (s *jobs) Get(ctx context.Context, id int64) (*store.Job, error) {
	j, err := scanJob(s.db.Reader().QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	return ret(j, s.wrap(err, "getting job %d", id))
}

func (s *jobs) List(ctx context.Context, f store.JobFilter) ([]*store.Job, error) {
	var w where
	if f.BuildID != 0 {
		w.add("build_id = %s", f.BuildID)
	}
	if f.Status != "" {
		w.add("status = %s", string(f.Status))
	}
	if f.LeaseOwner != 0 {
		w.add("lease_owner = %s", f.LeaseOwner)
	}
	limit := ""
	if f.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	js, err := queryAll(ctx, s.db.Reader(), scanJob, `SELECT `+jobCols+` FROM jobs `+w.sql()+` ORDER BY id`+limit, w.args...)
	return ret(js, s.wrap(err, "listing jobs"))
}

func (s *jobs) Lease(ctx context.Context, agentID int64, labels map[string]string, capacity int, ttl time.Duration) (*store.Job, error) {
	if capacity < 1 {
		capacity = 1
	}
	token, err := newLeaseToken()
	if err != nil {
		return nil, err
	}
	t := now()
	want := jsonArg(labels)
	var j *store.Job
	err = s.db.Tx(ctx, func(q Querier) error {
		// Touching the agent's row also locks it (on PostgreSQL) until
		// commit, so that concurrent leases of one agent cannot together
		// exceed its capacity.
		n, err := q.Exec(ctx, `UPDATE agents SET last_seen = $1 WHERE id = $2`, t, agentID)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("agent %d", agentID)
		}
		// The capacity check reads after the lock above, in a statement
		// of its own (and so, on PostgreSQL, a snapshot of its own).
		j, err = scanJob(q.QueryRow(ctx,
			`UPDATE jobs SET status = 'running', lease_owner = $3, lease_token = $4, lease_expires = $5,
				attempts = attempts + 1, started = $1, error = ''
			 WHERE id = (
				SELECT id FROM jobs j
				WHERE status = 'pending' AND (not_before IS NULL OR not_before <= $1) AND `+s.d.LabelsSubset("$2")+`
				ORDER BY created, id LIMIT 1 `+s.d.SkipLocked+`)
			   AND (SELECT count(*) FROM jobs r WHERE r.status = 'running' AND r.lease_owner = $3) < $6
			 RETURNING `+jobCols,
			t, want, agentID, token, t.Add(ttl), capacity))
		if isNotFound(err) {
			return store.ErrNoJob
		}
		return err
	})
	if errors.Is(err, store.ErrNoJob) {
		return nil, store.ErrNoJob
	}
	if err != nil {
		return nil, s.wrap(err, "leasing a job for agent %d", agentID)
	}
	return j, nil
}

// leaseError returns the *store.LeaseError for a presented lease token that
// matched no running job, or ErrNotFound when the job does not exist.
func leaseError(ctx context.Context, q Querier, jobID int64) error {
	var status string
	err := q.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, jobID).Scan(&status)
	if err != nil {
		return err
	}
	return &store.LeaseError{JobID: jobID, Status: store.Status(status)}
}

// CheckLease implements store.JobQueue.
func (s *jobs) CheckLease(ctx context.Context, jobID int64, token string) error {
	err := s.auto(ctx, func(q Querier) error {
		var status string
		err := q.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1 AND lease_token = $2 AND status = 'running'`,
			jobID, token).Scan(&status)
		if isNotFound(err) {
			return leaseError(ctx, q, jobID)
		}
		return err
	})
	return s.wrap(err, "checking lease of job %d", jobID)
}

func (s *jobs) ExtendLease(ctx context.Context, jobID int64, token string, ttl time.Duration) (time.Time, error) {
	expires := now().Add(ttl)
	var canceled bool
	err := s.auto(ctx, func(q Querier) error {
		err := q.QueryRow(ctx,
			`UPDATE jobs SET lease_expires = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'
			 RETURNING canceled`, expires, jobID, token).Scan(&canceled)
		if isNotFound(err) {
			return leaseError(ctx, q, jobID)
		}
		return err
	})
	if err != nil {
		return time.Time{}, s.wrap(err, "extending lease of job %d", jobID)
	}
	if canceled {
		return expires, fmt.Errorf("extending lease of job %d: %w", jobID, store.ErrCanceled)
	}
	return expires, nil
}

func (s *jobs) Complete(ctx context.Context, jobID int64, token string, status store.Status, errText string) error {
	switch status {
	case store.StatusSuccess, store.StatusFailure, store.StatusError, store.StatusKilled:
	default:
		return fmt.Errorf("completing job %d: status %q is not a final job status", jobID, status)
	}
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE jobs SET status = CASE WHEN canceled THEN 'killed' ELSE $1 END, error = $2, finished = $3,
				lease_expires = NULL
			 WHERE id = $4 AND lease_token = $5 AND status = 'running'`,
			string(status), errText, t, jobID, token)
		if err != nil {
			return err
		}
		if n == 0 {
			return leaseError(ctx, q, jobID)
		}
		return nil
	})
	return s.wrap(err, "completing job %d", jobID)
}

func (s *jobs) Unblock(ctx context.Context, ids ...int64) (int, error) {
	t := now()
	var total int64
	err := s.db.Tx(ctx, func(q Querier) error {
		for _, id := range ids {
			n, err := q.Exec(ctx, `UPDATE jobs SET status = 'pending', queued = $1 WHERE id = $2 AND status = 'blocked'`, t, id)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return int(total), s.wrap(err, "unblocking jobs")
}

func (s *jobs) Cancel(ctx context.Context, id int64) (*store.Job, error) {
	t := now()
	var j *store.Job
	err := s.db.Tx(ctx, func(q Querier) error {
		_, err := q.Exec(ctx,
			`UPDATE jobs SET status = 'killed', canceled = TRUE, finished = $1
			 WHERE id = $2 AND status IN ('pending', 'blocked')`, t, id)
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE jobs SET canceled = TRUE WHERE id = $1 AND status = 'running'`, id)
		if err != nil {
			return err
		}
		j, err = scanJob(q.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
		return err
	})
	return ret(j, s.wrap(err, "cancelling job %d", id))
}

// expiredLeases selects running jobs whose lease expired before $1 and that
// match cond, claiming them on PostgreSQL so that concurrent callers skip
// them.
func (s *jobs) expiredLeases(cond string) string {
	return `id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires < $1 AND ` + cond + `
		ORDER BY id LIMIT 1000 ` + s.d.SkipLocked + `)`
}

func (s *jobs) ExpireLeases(ctx context.Context, at time.Time, maxAttempts int) ([]*store.Job, error) {
	at = norm(at)
	var out []*store.Job
	err := s.db.Tx(ctx, func(q Querier) error {
		out = nil
		requeued, err := queryAll(ctx, q, scanJob,
			`UPDATE jobs SET status = 'pending', queued = $1, lease_owner = 0, lease_token = '', lease_expires = NULL
			 WHERE `+s.expiredLeases(`NOT canceled AND attempts < $2`)+` RETURNING `+jobCols, at, maxAttempts)
		if err != nil {
			return fmt.Errorf("re-queueing: %w", err)
		}
		killed, err := queryAll(ctx, q, scanJob,
			`UPDATE jobs SET status = 'killed', finished = $1, lease_token = '', lease_expires = NULL
			 WHERE `+s.expiredLeases(`canceled`)+` RETURNING `+jobCols, at)
		if err != nil {
			return fmt.Errorf("killing cancelled jobs: %w", err)
		}
		failed, err := queryAll(ctx, q, scanJob,
			`UPDATE jobs SET status = 'error', error = $3, finished = $1, lease_token = '', lease_expires = NULL
			 WHERE `+s.expiredLeases(`NOT canceled AND attempts >= $2`)+` RETURNING `+jobCols,
			at, maxAttempts, store.ReasonAgentLost)
		if err != nil {
			return fmt.Errorf("failing jobs: %w", err)
		}
		out = append(append(append(out, requeued...), killed...), failed...)
		return nil
	})
	return ret(out, s.wrap(err, "expiring leases"))
}

func (s *jobs) FailStalePending(ctx context.Context, olderThan time.Time, reason string) ([]*store.Job, error) {
	t := now()
	var js []*store.Job
	err := s.db.Tx(ctx, func(q Querier) error {
		var err error
		js, err = queryAll(ctx, q, scanJob,
			`UPDATE jobs SET status = 'error', error = $1, finished = $2
			 WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' AND queued < $3
				ORDER BY id LIMIT 1000 `+s.d.SkipLocked+`)
			 RETURNING `+jobCols, reason, t, norm(olderThan))
		return err
	})
	return ret(js, s.wrap(err, "failing stale pending jobs"))
}

func (s *jobs) Stats(ctx context.Context) (store.QueueStats, error) {
	var st store.QueueStats
	rows, err := s.db.Reader().Query(ctx,
		`SELECT status, count(*) FROM jobs WHERE status IN ('blocked', 'pending', 'running') GROUP BY status`)
	if err != nil {
		return st, s.wrap(err, "counting jobs")
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return st, s.wrap(err, "counting jobs")
		}
		switch store.Status(status) {
		case store.StatusBlocked:
			st.Blocked = n
		case store.StatusPending:
			st.Pending = n
		case store.StatusRunning:
			st.Running = n
		}
	}
	if err := rows.Err(); err != nil {
		return st, s.wrap(err, "counting jobs")
	}
	rows.Close()
	err = s.db.Reader().QueryRow(ctx,
		`SELECT queued FROM jobs WHERE status = 'pending' ORDER BY queued LIMIT 1`).Scan(tcol(&st.OldestPending))
	if err != nil && !isNotFound(err) {
		return st, s.wrap(err, "finding the oldest pending job")
	}
	return st, nil
}

// newLeaseToken returns a random lease token.
func newLeaseToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating lease token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
