package sqlstore

import (
	"context"
	"database/sql"

	"github.com/ferryci/ferry/internal/store"
)

type passwords struct{ *base }

func (s *passwords) Set(ctx context.Context, userID int64, hash string) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE users SET password_hash = $1, updated = $2 WHERE id = $3`,
			sql.NullString{String: hash, Valid: hash != ""}, now(), userID)
		return mustAffect(n, err, "user", userID)
	})
	return s.wrap(err, "setting the password of user %d", userID)
}

func (s *passwords) GetByLogin(ctx context.Context, login string) (*store.User, string, error) {
	u := new(store.User)
	var hash sql.NullString
	err := s.db.Reader().QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE login = $1`, login).
		Scan(&u.ID, &u.Login, &u.Email, &u.Admin, tcol(&u.Created), tcol(&u.Updated), &hash)
	if err != nil {
		return nil, "", s.wrap(err, "getting the password of user %q", login)
	}
	return u, hash.String, nil
}

func (s *passwords) Get(ctx context.Context, userID int64) (string, error) {
	var hash sql.NullString
	err := s.db.Reader().QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, userID).Scan(&hash)
	return ret(hash.String, s.wrap(err, "getting the password of user %d", userID))
}
