package trigger

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/database"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// openStore opens a real SQLite store in a temporary directory.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := database.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return st
}

// createRepo inserts an active repo.
func createRepo(t *testing.T, st *store.Store, r *store.Repo) *store.Repo {
	t.Helper()
	r.Active = true
	if err := st.Repos.Create(t.Context(), r); err != nil {
		t.Fatalf("creating repo %s: %v", r.Slug, err)
	}
	return r
}

// recordingBuilder is a Builder over a real store, standing in for the
// server's: it records every event it is given and stores a build with one
// pending pipeline and its job, as the server does for a matching trigger.
type recordingBuilder struct {
	st *store.Store
	// skip, when set, decides that no pipeline matches ev: CreateBuild
	// then stores nothing and returns nil, nil.
	skip func(ev *Event) bool
	// fail, when set, makes CreateBuild fail for ev.
	fail func(ev *Event) error

	mu      sync.Mutex
	events  []*Event
	changed chan struct{}
}

func newBuilder(st *store.Store) *recordingBuilder {
	return &recordingBuilder{st: st, changed: make(chan struct{}, 1)}
}

var _ Builder = (*recordingBuilder)(nil)

func (b *recordingBuilder) CreateBuild(ctx context.Context, repo *store.Repo, ev *Event) (*store.Build, error) {
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.mu.Unlock()
	defer func() {
		select {
		case b.changed <- struct{}{}:
		default:
		}
	}()
	if b.fail != nil {
		if err := b.fail(ev); err != nil {
			return nil, err
		}
	}
	if b.skip != nil && b.skip(ev) {
		return nil, nil
	}
	build := &store.Build{
		RepoID:       repo.ID,
		Event:        ev.Kind,
		Ref:          ev.Ref,
		Branch:       ev.Branch,
		SourceBranch: ev.SourceBranch,
		Commit:       ev.SHA,
		Before:       ev.Before,
		Message:      ev.Message,
		Author:       ev.AuthorLogin,
		AuthorEmail:  ev.AuthorEmail,
		Sender:       ev.Sender,
		PullRequest:  int64(ev.PullRequest),
		Fork:         ev.Fork,
		Cron:         ev.Cron,
		Params:       ev.Params,
		Status:       store.StatusPending,
	}
	if ev.Fork {
		build.Status, build.Approval = store.StatusBlocked, store.ApprovalPending
	}
	p := &store.Pipeline{
		Name:   "default",
		Status: build.Status,
		Steps:  []*store.Step{{Name: "test", Status: build.Status}},
		Job:    &store.Job{Status: build.Status, Labels: map[string]string{"platform": "linux/amd64"}},
	}
	if err := b.st.Builds.Create(ctx, build, []*store.Pipeline{p}); err != nil {
		return nil, err
	}
	return build, nil
}

// Events returns a copy of the events received so far.
func (b *recordingBuilder) Events() []*Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// waitEvents waits until at least n events were received, and returns them.
func (b *recordingBuilder) waitEvents(t *testing.T, n int) []*Event {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		if evs := b.Events(); len(evs) >= n {
			return evs
		}
		select {
		case <-b.changed:
		case <-deadline.C:
			t.Fatalf("got %d events within %s, want %d: %+v", len(b.Events()), patience, n, b.Events())
		}
	}
}

// listBuilds returns every build of the repo, oldest first.
func listBuilds(t *testing.T, st *store.Store, repoID int64) []*store.Build {
	t.Helper()
	bs, err := st.Builds.List(t.Context(), repoID, store.BuildFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("listing builds: %v", err)
	}
	slices.Reverse(bs)
	return bs
}

// patience bounds every wait for an event in these tests. It guards
// against hanging and is no requirement: on a busy machine events come
// later, and the tests wait for them; they assert order and counts, never
// durations.
const patience = 2 * time.Minute

// countingRepos is the store's RepoStore, counting the pollers' calls:
// tests wait for a number of ticks or polls instead of for a time.
type countingRepos struct {
	store.RepoStore
	mu    sync.Mutex
	looks int // DuePolls calls: one per tick of each poller
	polls int // polls started: won claims that took the lease
}

// counted returns a copy of st whose RepoStore counts.
func counted(st *store.Store) (*store.Store, *countingRepos) {
	c := &countingRepos{RepoStore: st.Repos}
	cp := *st
	cp.Repos = c
	return &cp, c
}

func (c *countingRepos) DuePolls(ctx context.Context, now time.Time) ([]*store.Repo, error) {
	c.mu.Lock()
	c.looks++
	c.mu.Unlock()
	return c.RepoStore.DuePolls(ctx, now)
}

func (c *countingRepos) ClaimPoll(ctx context.Context, id int64, prev, next time.Time) (bool, error) {
	won, err := c.RepoStore.ClaimPoll(ctx, id, prev, next)
	// A claim that moves NextPoll forward takes the lease for a poll; the
	// one that moves it back after the poll gives the lease back.
	if won && next.After(prev) {
		c.mu.Lock()
		c.polls++
		c.mu.Unlock()
	}
	return won, err
}

// counts returns the DuePolls calls and the polls started so far.
func (c *countingRepos) counts() (looks, polls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.looks, c.polls
}

// waitCount waits until count returns at least n.
func waitCount(t *testing.T, what string, n int, count func() int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (%d of %d)", patience, what, count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingCrons is the store's CronStore, counting the Due calls of the
// cron loops (one per tick of each loop).
type countingCrons struct {
	store.CronStore
	mu    sync.Mutex
	looks int
}

func (c *countingCrons) Due(ctx context.Context, now time.Time) ([]*store.Cron, error) {
	c.mu.Lock()
	c.looks++
	c.mu.Unlock()
	return c.CronStore.Due(ctx, now)
}

func (c *countingCrons) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.looks
}

// runLoop runs loop until the test ends, and fails the test if it returns
// anything but context.Canceled.
func runLoop(t *testing.T, loop func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("loop returned %v, want context.Canceled", err)
			}
		case <-time.After(patience):
			t.Errorf("loop did not stop within %s of cancellation", patience)
		}
	})
}
