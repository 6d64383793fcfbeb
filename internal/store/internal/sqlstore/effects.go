package sqlstore

import (
	"context"
	"fmt"
	"time"
)

type buildEffects struct{ *base }

// Claim implements store.BuildEffectStore.
func (s *buildEffects) Claim(ctx context.Context, buildID int64, owner string, now, until time.Time) (bool, error) {
	var n int64
	err := s.auto(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx,
			`INSERT INTO build_effects (build_id, owner, claimed_until, done) VALUES ($1, $2, $3, FALSE)
			 ON CONFLICT (build_id) DO UPDATE SET owner = excluded.owner, claimed_until = excluded.claimed_until
			 WHERE build_effects.done = FALSE AND (build_effects.claimed_until IS NULL OR build_effects.claimed_until <= $4)`,
			buildID, owner, norm(until), norm(now))
		return err
	})
	return n == 1, s.wrap(err, "claiming the side effects of build %d", buildID)
}

// Done implements store.BuildEffectStore.
func (s *buildEffects) Done(ctx context.Context, buildID int64) error {
	err := s.auto(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE build_effects SET done = TRUE WHERE build_id = $1`, buildID)
		return mustAffect(n, err, "claim of the side effects of build", buildID)
	})
	return s.wrap(err, "marking the side effects of build %d done", buildID)
}

// Pending implements store.BuildEffectStore.
func (s *buildEffects) Pending(ctx context.Context, since, before, now time.Time, limit int) ([]int64, error) {
	rows, err := s.db.Reader().Query(ctx,
		`SELECT b.id FROM builds b LEFT JOIN build_effects e ON e.build_id = b.id
		 WHERE b.finished >= $1 AND b.finished < $2 AND b.status IN `+finalStatuses+`
		   AND (e.build_id IS NULL OR (e.done = FALSE AND (e.claimed_until IS NULL OR e.claimed_until <= $3)))
		 ORDER BY b.finished, b.id LIMIT `+fmt.Sprint(limit),
		norm(since), norm(before), norm(now))
	if err != nil {
		return nil, s.wrap(err, "listing builds whose side effects are pending")
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap(err, "listing builds whose side effects are pending")
		}
		ids = append(ids, id)
	}
	return ids, s.wrap(rows.Err(), "listing builds whose side effects are pending")
}
