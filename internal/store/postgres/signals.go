package postgres

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// jobsChannel is the LISTEN/NOTIFY channel on which servers announce jobs.
const jobsChannel = "ferry_jobs"

// signals implements store.Signals with PostgreSQL's LISTEN/NOTIFY, so that
// an agent waiting on one server hears at once of a job another server
// enqueued, instead of every waiting lease polling the database. Each
// store signs its notifications with an ID of its own and does not hear
// its own: its server already woke its own waiters.
type signals struct {
	pool *pgxpool.Pool
	id   string
}

func newSignals(pool *pgxpool.Pool) signals {
	return signals{pool: pool, id: rand.Text()}
}

func (s signals) NotifyJobs(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, jobsChannel, s.id)
	return err
}

func (s signals) ListenJobs(ctx context.Context, fn func()) error {
	wait := 100 * time.Millisecond
	for {
		start := time.Now()
		_ = s.listen(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Back off after a failure, unless the connection had been
		// working for a while.
		if time.Since(start) > time.Minute {
			wait = 100 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// listen holds one connection of its own, taken out of the pool, and calls
// fn for every notification until the connection fails or ctx ends.
func (s signals) listen(ctx context.Context, fn func()) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	c := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := c.Exec(ctx, `LISTEN `+jobsChannel); err != nil {
		return err
	}
	fn()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload != s.id {
			fn()
		}
	}
}
