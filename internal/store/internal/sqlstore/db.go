// Package sqlstore implements ferry's store interfaces once, in SQL that
// both SQLite and PostgreSQL accept. The driver packages (store/sqlite and
// store/postgres) own the connections, the migrations and the few
// statements that differ, and describe them in a Dialect.
//
// Statements use $1-style placeholders, which both pgx and modernc.org/sqlite
// bind positionally. Times are passed as time.Time (the sqlite driver is
// opened so that it binds them as integer unix microseconds) and scanned with
// timeCol, which accepts both representations.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ferryci/ferry/internal/store"
)

// Row is a single-row query result. Scan returns an error matching
// store.ErrNotFound when there is no row.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a multi-row query result. Close must be called.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier runs statements, on a connection pool or inside a transaction.
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a statement that returns rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a statement that returns at most one row.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// DB is a database as the shared code sees it.
type DB interface {
	// Reader returns a Querier for statements that only read, outside a
	// transaction. On SQLite it is the pool of read-only connections.
	Reader() Querier
	// Writer returns a Querier for single statements that write, each in a
	// transaction of its own. It saves the round trips of an explicit
	// transaction where one statement does the whole change.
	Writer() Querier
	// Tx runs fn in a read-write transaction and commits it when fn
	// returns nil, or rolls it back otherwise. fn must not start another
	// transaction (on SQLite, with its single writer connection, that would
	// wait forever).
	Tx(ctx context.Context, fn func(q Querier) error) error
	// Close closes every connection.
	Close() error
}

// Dialect describes what differs between the databases.
type Dialect struct {
	// Name is the driver name stored in store.Store.Driver.
	Name string
	// ForUpdate is appended to a SELECT inside a transaction to lock the
	// rows it reads until the transaction ends: "FOR UPDATE" on
	// PostgreSQL; empty on SQLite, whose single writer already excludes
	// every other writer.
	ForUpdate string
	// SkipLocked is appended to a SELECT that claims queue rows: "FOR
	// UPDATE SKIP LOCKED" on PostgreSQL, so that concurrent claimers each
	// get different rows without waiting; empty on SQLite.
	SkipLocked string
	// LabelsSubset returns a boolean SQL expression that is true when the
	// JSON object in column "labels" of the row aliased "j" is a subset of
	// the JSON object bound to the placeholder param.
	LabelsSubset func(param string) string
	// WritableCTE is true when a WITH clause may hold INSERT, UPDATE or
	// DELETE (PostgreSQL), which lets several writes go in one statement
	// and one round trip.
	WritableCTE bool
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(err error) bool
}

// New returns a store.Store whose entity stores all use db.
func New(db DB, d *Dialect) *store.Store {
	b := &base{db: db, d: d}
	return &store.Store{
		Users:        &users{b},
		Tokens:       &tokens{b},
		Passwords:    &passwords{b},
		Repos:        &repos{b},
		Perms:        &perms{b},
		Builds:       &builds{b},
		BuildEffects: &buildEffects{b},
		Pipelines:    &pipelines{b},
		Steps:        &steps{b},
		Logs:         &logs{b},
		Secrets:      &secrets{b},
		Credentials:  &credentials{b},
		Agents:       &agents{b},
		Jobs:         &jobs{b},
		Crons:        &crons{b},

		Services:    &services{b},
		Releases:    &releases{b},
		Deployments: &deployments{b},
		Locks:       &locks{b},
		Audit:       &audit{b},
		Nodes:       &nodes{b},
		Driver:      d.Name,
		Closer:      closerFunc(db.Close),
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type base struct {
	db DB
	d  *Dialect
}

// auto runs fn with the Writer: every statement commits on its own. Use it
// only where fn makes at most one change.
func (b *base) auto(ctx context.Context, fn func(q Querier) error) error {
	return fn(b.db.Writer())
}

// wrap adds context to err, and marks unique violations as
// store.ErrConflict.
func (b *base) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if b.d.IsUnique(err) {
		return fmt.Errorf("%s: %w: %w", msg, store.ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// notFound returns an error for a missing row.
func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), store.ErrNotFound)
}

// isNotFound reports whether err says that a row is missing.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

type scanner interface {
	Scan(dest ...any) error
}

// aliased qualifies each column of the comma-separated cols with alias.
func aliased(alias, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = alias + "." + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

// columns collects the destinations of scan functions, so that one row
// holding several entities is scanned by their scan functions together:
// each scan function records where its columns go, then the row is
// scanned into all of them. Scan functions must not post-process what
// they scanned.
type columns []any

func (c *columns) Scan(dest ...any) error {
	*c = append(*c, dest...)
	return nil
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, q Querier, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// mustAffect returns err, or an ErrNotFound naming what and id when the
// statement changed no row.
func mustAffect(n int64, err error, what string, id int64) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("%s %d", what, id)
	}
	return nil
}

// ret returns v and err, or the zero value and err when err is not nil.
func ret[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

var (
	_ store.UserStore       = (*users)(nil)
	_ store.TokenStore      = (*tokens)(nil)
	_ store.RepoStore       = (*repos)(nil)
	_ store.PermStore       = (*perms)(nil)
	_ store.BuildStore      = (*builds)(nil)
	_ store.PipelineStore   = (*pipelines)(nil)
	_ store.StepStore       = (*steps)(nil)
	_ store.LogStore        = (*logs)(nil)
	_ store.SecretStore     = (*secrets)(nil)
	_ store.CredentialStore = (*credentials)(nil)
	_ store.AgentStore      = (*agents)(nil)
	_ store.JobQueue        = (*jobs)(nil)
	_ store.CronStore       = (*crons)(nil)
)
