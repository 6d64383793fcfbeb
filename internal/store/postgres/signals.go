package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// jobsChannel is the LISTEN/NOTIFY channel on which servers announce jobs.
const jobsChannel = "ferry_jobs"

// eventsChannel is the LISTEN/NOTIFY channel on which servers relay the
// events of internal/build to each other.
const eventsChannel = "ferry_events"

// channelName returns the name of channel for the store in schema:
// notifications reach every session of a database, and stores in other
// schemas of it are other clusters.
func channelName(channel, schema string) string {
	if schema == "" || schema == "public" {
		return channel
	}
	name := channel + "_" + schema
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(schema))
		name = channel + "_" + hex.EncodeToString(sum[:8])
	}
	return name
}

// signals implements store.Signals with PostgreSQL's LISTEN/NOTIFY, so that
// an agent waiting on one server hears at once of a job another server
// enqueued, instead of every waiting lease polling the database. Each
// store signs its notifications with an ID of its own and does not hear
// its own: its server already woke its own waiters.
type signals struct {
	pool *pgxpool.Pool
	id   string
	// jobs and events are the channels' names for this store's schema.
	jobs, events string
}

func newSignals(ctx context.Context, pool *pgxpool.Pool) (signals, error) {
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return signals{}, fmt.Errorf("reading the current schema: %w", err)
	}
	return signals{pool: pool, id: rand.Text(),
		jobs: channelName(jobsChannel, schema), events: channelName(eventsChannel, schema)}, nil
}

func (s signals) NotifyJobs(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.jobs, s.id)
	return err
}

func (s signals) ListenJobs(ctx context.Context, fn func()) error {
	return s.listenLoop(ctx, s.jobs, fn, func(payload string) {
		if payload != s.id {
			fn()
		}
	})
}

// NotifyEvents implements store.Signals. A payload is signed with the
// store's ID, which its own listener drops.
func (s signals) NotifyEvents(ctx context.Context, payload []byte) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.events, s.id+" "+string(payload))
	return err
}

// ListenEvents implements store.Signals.
func (s signals) ListenEvents(ctx context.Context, fn func(payload []byte)) error {
	return s.listenLoop(ctx, s.events, func() { fn(nil) }, func(payload string) {
		from, data, ok := strings.Cut(payload, " ")
		if ok && from != s.id {
			fn([]byte(data))
		}
	})
}

// listenLoop listens on channel until ctx ends, reconnecting after
// failures, and calls onListen (unless nil) whenever it starts listening
// and fn for every notification.
func (s signals) listenLoop(ctx context.Context, channel string, onListen func(), fn func(payload string)) error {
	wait := 100 * time.Millisecond
	for {
		start := time.Now()
		_ = s.listen(ctx, channel, onListen, fn)
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
// fn for every notification on channel until the connection fails or ctx
// ends.
func (s signals) listen(ctx context.Context, channel string, onListen func(), fn func(payload string)) error {
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
	if _, err := c.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	if onListen != nil {
		onListen()
	}
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
