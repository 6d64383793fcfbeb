// Package postgres is the PostgreSQL store driver, built on pgx's
// connection pool. Several servers may share one database: the job queue
// claims rows with FOR UPDATE SKIP LOCKED, and migrations run under an
// advisory lock.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serialises migrations of all
// ferry servers on one database ("ferry" in ASCII).
const migrationLock = `SELECT pg_advisory_xact_lock(1718773369)`

// Open connects to the database at dsn (a postgres:// URL or a key=value
// connection string, as pgx accepts), applies any pending migrations and
// returns the store. Pool settings such as pool_max_conns may be given in
// the DSN.
func Open(ctx context.Context, dsn string) (*store.Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	d := &db{pool: pool}
	ms, err := sqlstore.LoadMigrations(migrations, "migrations")
	if err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := sqlstore.Migrate(ctx, d, ms, migrationLock); err != nil {
		pool.Close()
		return nil, err
	}
	st := sqlstore.New(d, dialect)
	if st.Signals, err = newSignals(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return st, nil
}

var dialect = &sqlstore.Dialect{
	Name:        "postgres",
	ForUpdate:   "FOR UPDATE",
	SkipLocked:  "FOR UPDATE SKIP LOCKED",
	WritableCTE: true,
	LabelsSubset: func(param string) string {
		return `j.labels <@ ` + param + `::jsonb`
	},
	IsUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
}

var _ sqlstore.DB = (*db)(nil)

// db adapts a pgx pool to sqlstore.DB.
type db struct{ pool *pgxpool.Pool }

func (d *db) Reader() sqlstore.Querier { return querier{d.pool} }

func (d *db) Writer() sqlstore.Querier { return querier{d.pool} }

func (d *db) Tx(ctx context.Context, fn func(q sqlstore.Querier) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(querier{tx}); err != nil {
		// The rollback must happen even when ctx is already cancelled, or
		// the connection goes back to the pool inside a transaction.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func (d *db) Close() error {
	d.pool.Close()
	return nil
}

type conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type querier struct{ c conn }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.c.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return pgRow{q.c.QueryRow(ctx, query, args...)}
}

type pgRow struct{ pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
