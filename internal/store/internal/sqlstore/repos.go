package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

type repos struct{ *base }

const repoCols = `id, slug, git_url, forge, default_branch, webhook_secret, config_path, poll_interval_ms,
	next_poll, trusted, timeout_ms, active, build_counter, created, updated`

func scanRepo(s scanner) (*store.Repo, error) {
	r := new(store.Repo)
	err := s.Scan(&r.ID, &r.Slug, &r.GitURL, &r.Forge, &r.DefaultBranch, &r.WebhookSecret, &r.ConfigPath,
		dcol(&r.PollInterval), tcol(&r.NextPoll), &r.Trusted, dcol(&r.Timeout), &r.Active, &r.BuildCounter,
		tcol(&r.Created), tcol(&r.Updated))
	return r, err
}

func (s *repos) Create(ctx context.Context, r *store.Repo) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		return q.QueryRow(ctx,
			`INSERT INTO repos (slug, git_url, forge, default_branch, webhook_secret, config_path, poll_interval_ms,
				next_poll, trusted, timeout_ms, active, created, updated)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id`,
			r.Slug, r.GitURL, string(r.Forge), r.DefaultBranch, r.WebhookSecret, r.ConfigPath, ms(r.PollInterval),
			nullTime(r.NextPoll), r.Trusted, ms(r.Timeout), r.Active, t).Scan(&r.ID)
	})
	if err != nil {
		return s.wrap(err, "creating repo %q", r.Slug)
	}
	r.Created, r.Updated, r.BuildCounter = t, t, 0
	r.NextPoll = norm(r.NextPoll)
	return nil
}

func (s *repos) Get(ctx context.Context, id int64) (*store.Repo, error) {
	r, err := scanRepo(s.db.Reader().QueryRow(ctx, `SELECT `+repoCols+` FROM repos WHERE id = $1`, id))
	return ret(r, s.wrap(err, "getting repo %d", id))
}

func (s *repos) GetBySlug(ctx context.Context, slug string) (*store.Repo, error) {
	r, err := scanRepo(s.db.Reader().QueryRow(ctx, `SELECT `+repoCols+` FROM repos WHERE slug = $1`, slug))
	return ret(r, s.wrap(err, "getting repo %q", slug))
}

func (s *repos) List(ctx context.Context) ([]*store.Repo, error) {
	rs, err := queryAll(ctx, s.db.Reader(), scanRepo, `SELECT `+repoCols+` FROM repos ORDER BY slug`)
	return ret(rs, s.wrap(err, "listing repos"))
}

func (s *repos) Update(ctx context.Context, r *store.Repo) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE repos SET slug = $1, git_url = $2, forge = $3, default_branch = $4, webhook_secret = $5,
				config_path = $6, poll_interval_ms = $7, next_poll = $8, trusted = $9, timeout_ms = $10,
				active = $11, updated = $12
			 WHERE id = $13`,
			r.Slug, r.GitURL, string(r.Forge), r.DefaultBranch, r.WebhookSecret, r.ConfigPath, ms(r.PollInterval),
			nullTime(r.NextPoll), r.Trusted, ms(r.Timeout), r.Active, t, r.ID)
		return mustAffect(n, err, "repo", r.ID)
	})
	if err != nil {
		return s.wrap(err, "updating repo %d", r.ID)
	}
	r.Updated, r.NextPoll = t, norm(r.NextPoll)
	return nil
}

func (s *repos) Delete(ctx context.Context, id int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM repos WHERE id = $1`, id)
		return mustAffect(n, err, "repo", id)
	})
	return s.wrap(err, "deleting repo %d", id)
}

func (s *repos) DuePolls(ctx context.Context, at time.Time) ([]*store.Repo, error) {
	rs, err := queryAll(ctx, s.db.Reader(), scanRepo,
		`SELECT `+repoCols+` FROM repos
		 WHERE active AND poll_interval_ms > 0 AND (next_poll IS NULL OR next_poll <= $1)
		 ORDER BY next_poll, id`, norm(at))
	return ret(rs, s.wrap(err, "listing repos due for polling"))
}

func (s *repos) ClaimPoll(ctx context.Context, id int64, prev, next time.Time) (bool, error) {
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		if prev.IsZero() {
			n, err = q.Exec(ctx, `UPDATE repos SET next_poll = $1 WHERE id = $2 AND next_poll IS NULL`, norm(next), id)
		} else {
			n, err = q.Exec(ctx, `UPDATE repos SET next_poll = $1 WHERE id = $2 AND next_poll = $3`, norm(next), id, norm(prev))
		}
		return err
	})
	return n == 1, s.wrap(err, "claiming poll of repo %d", id)
}

func (s *repos) PollRefs(ctx context.Context, id int64) (map[string]string, error) {
	var raw *string
	err := s.db.Reader().QueryRow(ctx, `SELECT poll_refs FROM repos WHERE id = $1`, id).Scan(&raw)
	if err != nil {
		return nil, s.wrap(err, "reading poll refs of repo %d", id)
	}
	if raw == nil {
		return nil, nil
	}
	refs := map[string]string{}
	if err := json.Unmarshal([]byte(*raw), &refs); err != nil {
		return nil, fmt.Errorf("decoding poll refs of repo %d: %w", id, err)
	}
	return refs, nil
}

func (s *repos) SavePollRefs(ctx context.Context, id int64, refs map[string]string) error {
	if refs == nil {
		refs = map[string]string{}
	}
	raw, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	err = s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE repos SET poll_refs = $1 WHERE id = $2`, string(raw), id)
		return mustAffect(n, err, "repo", id)
	})
	return s.wrap(err, "saving poll refs of repo %d", id)
}

type crons struct{ *base }

const cronCols = `id, repo_id, name, expr, branch, next_run, disabled, created, updated`

func scanCron(s scanner) (*store.Cron, error) {
	c := new(store.Cron)
	err := s.Scan(&c.ID, &c.RepoID, &c.Name, &c.Expr, &c.Branch, tcol(&c.Next), &c.Disabled,
		tcol(&c.Created), tcol(&c.Updated))
	return c, err
}

func (s *crons) Create(ctx context.Context, c *store.Cron) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		return q.QueryRow(ctx,
			`INSERT INTO crons (repo_id, name, expr, branch, next_run, disabled, created, updated)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
			c.RepoID, c.Name, c.Expr, c.Branch, nullTime(c.Next), c.Disabled, t).Scan(&c.ID)
	})
	if err != nil {
		return s.wrap(err, "creating cron %q", c.Name)
	}
	c.Created, c.Updated, c.Next = t, t, norm(c.Next)
	return nil
}

func (s *crons) Get(ctx context.Context, id int64) (*store.Cron, error) {
	c, err := scanCron(s.db.Reader().QueryRow(ctx, `SELECT `+cronCols+` FROM crons WHERE id = $1`, id))
	return ret(c, s.wrap(err, "getting cron %d", id))
}

func (s *crons) List(ctx context.Context, repoID int64) ([]*store.Cron, error) {
	cs, err := queryAll(ctx, s.db.Reader(), scanCron,
		`SELECT `+cronCols+` FROM crons WHERE repo_id = $1 ORDER BY name`, repoID)
	return ret(cs, s.wrap(err, "listing crons of repo %d", repoID))
}

func (s *crons) Update(ctx context.Context, c *store.Cron) error {
	t := now()
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE crons SET name = $1, expr = $2, branch = $3, next_run = $4, disabled = $5, updated = $6 WHERE id = $7`,
			c.Name, c.Expr, c.Branch, nullTime(c.Next), c.Disabled, t, c.ID)
		return mustAffect(n, err, "cron", c.ID)
	})
	if err != nil {
		return s.wrap(err, "updating cron %d", c.ID)
	}
	c.Updated, c.Next = t, norm(c.Next)
	return nil
}

func (s *crons) Delete(ctx context.Context, id int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM crons WHERE id = $1`, id)
		return mustAffect(n, err, "cron", id)
	})
	return s.wrap(err, "deleting cron %d", id)
}

func (s *crons) Due(ctx context.Context, at time.Time) ([]*store.Cron, error) {
	cs, err := queryAll(ctx, s.db.Reader(), scanCron,
		`SELECT `+cronCols+` FROM crons WHERE NOT disabled AND next_run <= $1 ORDER BY next_run, id`, norm(at))
	return ret(cs, s.wrap(err, "listing due crons"))
}

func (s *crons) Claim(ctx context.Context, id int64, prev, next time.Time) (bool, error) {
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `UPDATE crons SET next_run = $1 WHERE id = $2 AND next_run = $3`, norm(next), id, norm(prev))
		return err
	})
	return n == 1, s.wrap(err, "claiming cron %d", id)
}
