// Package store defines ferry's persistent domain types and the small,
// per-entity interfaces that read and write them.
//
// The interfaces follow Drone's layout: each entity has its type and its
// store interface side by side (Build and BuildStore, Job and JobQueue, ...),
// and Store merely bundles one implementation of each. The drivers live in
// subpackages: sqlite (embedded, the default) and postgres. Both pass the
// shared conformance suite in storetest. To open a store by DSN, use
// internal/store/database, which imports both drivers without making this
// package depend on them.
//
// Every method takes a context.Context first and honours its cancellation.
// All implementations are safe for concurrent use by many goroutines, and the
// postgres implementation is also safe for use by several server processes
// sharing one database.
//
// Times are stored in UTC with microsecond precision; a zero time.Time means
// "not set" and is stored as NULL.
//
// Secret values are stored exactly as given: the store never sees plaintext.
// Encryption (AES-GCM under the server's key) happens above the store.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Store bundles one implementation of every entity store. It is a plain
// struct, not an interface: callers take only the field they need, and tests
// can substitute any single field. The drivers fill in every field.
type Store struct {
	Users  UserStore
	Tokens TokenStore
	// Passwords are the local users' password hashes.
	Passwords PasswordStore
	Repos     RepoStore
	Perms     PermStore
	Builds    BuildStore
	// BuildEffects record which finished builds had their side effects.
	BuildEffects BuildEffectStore
	Pipelines    PipelineStore
	Steps        StepStore
	Logs         LogStore
	Secrets      SecretStore
	// Credentials are the repos' git credentials.
	Credentials CredentialStore
	Agents      AgentStore
	Jobs        JobQueue
	Crons       CronStore

	// Delivery (internal/store/deploy.go).
	Services    ServiceStore
	Releases    ReleaseStore
	Deployments DeploymentStore
	Locks       LockStore
	Audit       AuditStore
	Nodes       NodeStore

	// Driver names the database driver: "sqlite" or "postgres".
	Driver string
	// Signals carries "jobs are ready" between the servers that share the
	// database, or is nil when one server owns it (SQLite).
	Signals Signals
	// Closer releases the database connections; Close calls it.
	Closer io.Closer
}

// Signals are messages between servers that share a database: a server
// that enqueues jobs tells the others, whose agents wait for work, and
// servers relay the events of internal/build to each other. They only
// shorten waits and feed live views; nothing depends on a signal
// arriving.
type Signals interface {
	// NotifyJobs tells every listening server that jobs may be ready.
	NotifyJobs(ctx context.Context) error
	// ListenJobs calls fn for every NotifyJobs of any server, and once
	// whenever it starts or restarts listening (signals may have been
	// missed meanwhile), until ctx ends. It reconnects after errors and
	// returns ctx's error.
	ListenJobs(ctx context.Context, fn func()) error
	// NotifyEvents sends payload (at most 7,000 bytes) to every other
	// server's ListenEvents. Delivery is best effort: a server that is
	// not listening at that moment misses it.
	NotifyEvents(ctx context.Context, payload []byte) error
	// ListenEvents calls fn with the payload of every NotifyEvents of the
	// other servers, in the order each server sent them, and with a nil
	// payload whenever it starts or restarts listening (payloads may
	// have been missed meanwhile), until ctx ends. It reconnects after
	// errors and returns ctx's error.
	ListenEvents(ctx context.Context, fn func(payload []byte)) error
}

// Close releases the store's database connections. The store must not be
// used afterwards.
func (s *Store) Close() error {
	if s == nil || s.Closer == nil {
		return nil
	}
	return s.Closer.Close()
}

// ErrNotFound is returned when the requested row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would violate a uniqueness rule (a
// second repo with the same slug, a second secret with the same name), or
// when an optimistic update lost a race with another writer (see
// Build.Version).
var ErrConflict = errors.New("conflict")

// ErrNoJob is returned by JobQueue.Lease when no pending job matches the
// agent's labels, or when the agent already runs as many jobs as its
// capacity allows.
var ErrNoJob = errors.New("no job available")

// ErrCanceled is returned by JobQueue.ExtendLease when cancellation of the
// job was requested. The lease is still extended, so the agent can stop the
// job cleanly and Complete it with StatusKilled.
var ErrCanceled = errors.New("job canceled")

// ErrLeaseLost matches (with errors.Is) every *LeaseError.
var ErrLeaseLost = errors.New("lease lost")

// LeaseError is returned when a lease holder calls ExtendLease or Complete
// with a lease token that is no longer current: the lease expired and the job
// was re-queued, leased by another agent, or finished already.
type LeaseError struct {
	// JobID is the job whose lease was presented.
	JobID int64
	// Status is the job's status when the call was rejected.
	Status Status
}

// Error implements error.
func (e *LeaseError) Error() string {
	return fmt.Sprintf("job %d: lease lost (job is %s)", e.JobID, e.Status)
}

// Is reports whether target is ErrLeaseLost.
func (e *LeaseError) Is(target error) bool { return target == ErrLeaseLost }
