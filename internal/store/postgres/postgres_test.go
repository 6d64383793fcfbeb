package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/postgres"
	"github.com/ferryci/ferry/internal/store/storetest"
)

// The suite runs against the database named by FERRY_TEST_POSTGRES, e.g.
//
//	FERRY_TEST_POSTGRES='postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable'
//
// Every test gets a schema of its own, dropped when the test ends. The
// suite is skipped when the variable is unset, except under CI=true, where
// that is a failure.
const envDSN = "FERRY_TEST_POSTGRES"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func baseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI=true requires the PostgreSQL store suite to run", envDSN)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL store suite "+
			"(set it to e.g. postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable)", envDSN)
	}
	return dsn
}

// freshSchema creates an empty schema, dropped when the test ends, and
// returns a DSN that uses it.
func freshSchema(t testing.TB) string {
	t.Helper()
	dsn := baseDSN(t)
	ctx := context.Background()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "ferry_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", envDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parsing %s: %v", envDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openDSN(t testing.TB, dsn string) *store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after freshSchema's cleanup, so it runs before the
	// schema is dropped.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func open(t testing.TB) *store.Store {
	return openDSN(t, freshSchema(t))
}

func TestStore(t *testing.T) {
	baseDSN(t)
	storetest.Run(t, open)
}

func BenchmarkLease(b *testing.B) {
	baseDSN(b)
	storetest.BenchmarkLease(b, open)
}

// TestServersShareQueue runs several stores (as several servers would) on
// one database: every job is still leased exactly once.
func TestServersShareQueue(t *testing.T) {
	dsn := freshSchema(t)
	stores := []*store.Store{openDSN(t, dsn), openDSN(t, dsn), openDSN(t, dsn)}
	storetest.LeaseExactlyOnce(t, stores, 300, 12)
}

// TestConcurrentMigrations starts several servers on an empty database at
// once: the advisory lock lets exactly one of them migrate.
func TestConcurrentMigrations(t *testing.T) {
	dsn := freshSchema(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := migrationCount(t, "migrations"); n != want {
		t.Fatalf("schema_migrations has %d rows, want %d (one per migration, each applied once)", n, want)
	}
}

// TestOpenFailsOnBadDSN checks that an unreachable database is reported.
func TestOpenFailsOnBadDSN(t *testing.T) {
	baseDSN(t)
	s, err := postgres.Open(context.Background(), "postgres://nobody:wrong@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		s.Close()
		t.Fatal("opened an unreachable database")
	}
}

// migrationCount is the number of embedded migration files in dir.
func migrationCount(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations in %s: %v", dir, err)
	}
	return len(files)
}

// TestSignalsReachOtherServers checks that a job signal one store sends
// reaches the listener of another store on the same database, and that
// the listener is called once when it starts listening.
func TestSignalsReachOtherServers(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	if a.Signals == nil || b.Signals == nil {
		t.Fatal("a PostgreSQL store has no Signals")
	}
	calls := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Signals.ListenJobs(ctx, func() { calls <- struct{}{} }) }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(time.Minute): // a guard against hanging, not a requirement
			t.Fatalf("no call %s within a minute", what)
		}
	}
	wait("when listening starts")
	for i := range 3 {
		if err := b.Signals.NotifyJobs(context.Background()); err != nil {
			t.Fatal(err)
		}
		wait(fmt.Sprintf("for the other store's signal %d", i+1))
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ListenJobs returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // a guard against hanging, not a requirement
		t.Fatal("ListenJobs did not return within a minute of its context's end")
	}
}

// TestEventSignals checks that event payloads one store sends reach the
// listener of another store on the same database in order, that a store
// does not hear its own, and that the listener says when it starts
// listening (with a nil payload).
func TestEventSignals(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	got := make(chan []byte, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Signals.ListenEvents(ctx, func(p []byte) { got <- p }) }()
	next := func(what string) []byte {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("no payload %s within 10s", what)
			return nil
		}
	}
	if p := next("when listening starts"); p != nil {
		t.Fatalf("first call got %q, want nil when listening starts", p)
	}
	if err := a.Signals.NotifyEvents(context.Background(), []byte("own")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Signals.NotifyEvents(context.Background(), fmt.Appendf(nil, "event %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if p, want := string(next(fmt.Sprintf("for event %d", i))), fmt.Sprintf("event %d", i); p != want {
			t.Errorf("payload %d = %q, want %q (a store's own payloads are not delivered)", i, p, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ListenEvents returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenEvents did not return within 10s of its context's end")
	}
}
