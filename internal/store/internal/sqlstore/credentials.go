package sqlstore

import (
	"context"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

type credentials struct{ *base }

func (s *credentials) Set(ctx context.Context, c *store.RepoCredential) error {
	t := now()
	var created time.Time
	err := s.db.Tx(ctx, func(q Querier) error {
		var one int
		if err := q.QueryRow(ctx, `SELECT 1 FROM repos WHERE id = $1 `+s.d.ForUpdate, c.RepoID).Scan(&one); err != nil {
			return err
		}
		return q.QueryRow(ctx,
			`INSERT INTO repo_credentials (repo_id, kind, username, value, created, updated)
			 VALUES ($1, $2, $3, $4, $5, $5)
			 ON CONFLICT (repo_id) DO UPDATE
			 SET kind = excluded.kind, username = excluded.username, value = excluded.value, updated = excluded.updated
			 RETURNING created`,
			c.RepoID, c.Kind, c.Username, nonNil(c.Value), t).Scan(tcol(&created))
	})
	if err != nil {
		return s.wrap(err, "setting the credential of repo %d", c.RepoID)
	}
	c.Created, c.Updated = created, t
	return nil
}

func (s *credentials) Get(ctx context.Context, repoID int64) (*store.RepoCredential, error) {
	c := &store.RepoCredential{}
	err := s.db.Reader().QueryRow(ctx,
		`SELECT repo_id, kind, username, value, created, updated FROM repo_credentials WHERE repo_id = $1`, repoID).
		Scan(&c.RepoID, &c.Kind, &c.Username, &c.Value, tcol(&c.Created), tcol(&c.Updated))
	return ret(c, s.wrap(err, "getting the credential of repo %d", repoID))
}

func (s *credentials) Kinds(ctx context.Context) (map[int64]string, error) {
	rows, err := s.db.Reader().Query(ctx, `SELECT repo_id, kind FROM repo_credentials`)
	if err != nil {
		return nil, s.wrap(err, "listing repo credentials")
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var kind string
		if err := rows.Scan(&id, &kind); err != nil {
			return nil, s.wrap(err, "listing repo credentials")
		}
		out[id] = kind
	}
	return out, s.wrap(rows.Err(), "listing repo credentials")
}

func (s *credentials) Delete(ctx context.Context, repoID int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM repo_credentials WHERE repo_id = $1`, repoID)
		return mustAffect(n, err, "credential of repo", repoID)
	})
	return s.wrap(err, "deleting the credential of repo %d", repoID)
}
