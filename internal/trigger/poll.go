package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// RefStore remembers, per repo, the branches and tags its last poll saw:
// the baseline the next poll is compared with.
//
// The default, used when Poller.Refs is nil, keeps the baseline in the
// database (RepoStore.PollRefs), so that several servers polling one
// database share it and a change is built once, whichever server polls.
//
// Implementations must be safe for concurrent use; the Poller never polls
// one repo from two goroutines at once.
type RefStore interface {
	// LoadRefs returns the refs saved for repo, or nil and no error when
	// none were saved: the repo was never polled.
	LoadRefs(ctx context.Context, repo *store.Repo) (map[string]string, error)
	// SaveRefs replaces the refs saved for repo.
	SaveRefs(ctx context.Context, repo *store.Repo, refs map[string]string) error
}

// Poller builds repos that no forge sends webhooks for, by polling their
// git URLs.
//
// Each tick it asks the store for the repos due for polling (active, with a
// positive PollInterval and a NextPoll before the middle of the next tick)
// and claims each with RepoStore.ClaimPoll, an atomic compare-and-set of
// NextPoll: of several servers sharing one database, one wins and polls.
// The claim is a lease: it moves NextPoll past the poll's Timeout, so that
// a slow poll is never overlapped by another server's, and when the poll is
// over NextPoll moves back to one interval after the poll was due, so that
// a repo is polled every interval, not every interval rounded up to whole
// ticks. A poll fetches the repo's mirror (forge.Mirrors), compares its
// branches and tags with the baseline of the previous poll (RefStore), and
// asks the Builder for a push build of every new or moved branch and a tag
// build of every new tag (forge.DiffRefs). Deleted refs build nothing.
//
// The first poll of a repo only records the baseline and builds nothing:
// adding a repo with years of branches and tags must not start a build for
// each. Its first build is the first change after that. To build what is
// there already, start a manual build.
//
// A ref whose build could not be created (the Builder failed) keeps its
// old baseline, so the next poll tries again; a change for which no
// pipeline matched counts as handled.
//
// Configure the exported fields before Run; Run may be called once.
type Poller struct {
	// Tick is how often due repos are looked for; the default is one
	// second. A repo is polled at the tick nearest its due time, at most
	// half a tick early or late; its next poll is due one interval after
	// that due time, so its polls keep to its interval on average.
	Tick time.Duration
	// Parallel caps how many repos are polled at once; the default is 4.
	Parallel int
	// Timeout bounds one poll: the fetch and the creation of its builds.
	// The default is ten minutes. While a repo is being polled, its
	// NextPoll is set to the end of this timeout (or of its interval, if
	// longer), so that no other server polls it at the same time; if the
	// server dies mid-poll, the repo is polled again after that.
	Timeout time.Duration
	// Refs keeps the baselines; nil keeps them in the database.
	Refs RefStore
	// Auth, if set, returns a repo's git credentials, which are added to
	// the mirrors' own (forge.NewMirrors).
	Auth GitAuth

	repos   store.RepoStore
	builder Builder
	mirrors *forge.Mirrors
	logger  *slog.Logger

	mu sync.Mutex
	// inflight holds the repos being polled by this Poller, or held by
	// Hold; each channel is closed when that ends.
	inflight map[int64]chan struct{}
}

// NewPoller returns a Poller that polls the repos of st, fetching them into
// mirrors and creating builds through b. The server passes the same
// mirrors to its Builder, so that reading the config of a polled commit
// needs no second fetch. A nil logger discards logs.
func NewPoller(st *store.Store, b Builder, mirrors *forge.Mirrors, logger *slog.Logger) *Poller {
	return &Poller{
		Tick:     time.Second,
		Parallel: 4,
		Timeout:  10 * time.Minute,
		repos:    st.Repos,
		builder:  b,
		mirrors:  mirrors,
		logger:   orDiscard(logger).With("component", "poller"),
		inflight: map[int64]chan struct{}{},
	}
}

// Run polls due repos until ctx is done, then waits for the polls in
// progress to stop and returns ctx's error. The failure of one poll is
// logged and does not stop the loop.
func (p *Poller) Run(ctx context.Context) error {
	tick := time.NewTicker(positive(p.Tick, time.Second))
	defer tick.Stop()
	sem := make(chan struct{}, max(p.Parallel, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		p.pollDue(ctx, sem, &wg)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pollDue claims the due repos that are not being polled already and polls
// the ones it won, each in its own goroutine, at most cap(sem) at once.
func (p *Poller) pollDue(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	now := time.Now().UTC()
	// A repo due before the middle of the next tick is polled now: waiting
	// for the next tick would make it up to a whole tick late, and a repo
	// polled every two seconds on a one-second tick would be polled every
	// three.
	due, err := p.repos.DuePolls(ctx, now.Add(positive(p.Tick, time.Second)/2))
	if err != nil {
		if ctx.Err() == nil {
			p.logger.ErrorContext(ctx, "listing repos due for polling", "err", err)
		}
		return
	}
	for _, repo := range due {
		if !p.begin(repo.ID) {
			// Still polling it since an earlier tick: claim it when that
			// poll is over, so that two polls never race on one baseline.
			continue
		}
		// The claim is a lease: NextPoll moves past the end of the
		// longest poll allowed, so no other server starts polling the repo
		// while this one may still be at it. When the poll is over,
		// NextPoll moves back to one interval after it was due.
		timeout := positive(p.Timeout, 10*time.Minute)
		leaseEnd := now.Add(max(repo.PollInterval, timeout)).Truncate(time.Microsecond)
		won, err := p.repos.ClaimPoll(ctx, repo.ID, repo.NextPoll, leaseEnd)
		if err != nil || !won {
			p.end(repo.ID)
			if err != nil && ctx.Err() == nil {
				p.logger.ErrorContext(ctx, "claiming poll", "repo", repo.Slug, "err", err)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			p.end(repo.ID)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer p.end(repo.ID)
			pctx, cancel := context.WithDeadline(ctx, now.Add(timeout))
			err := p.poll(pctx, repo)
			cancel()
			if err != nil && ctx.Err() == nil && p.removed(ctx, repo) {
				// `repo rm` while it was polled: nothing went wrong.
				p.logger.InfoContext(ctx, "the repo was removed while it was polled", "repo", repo.Slug)
				return
			}
			if err != nil && ctx.Err() == nil {
				p.logger.ErrorContext(ctx, "polling", "repo", repo.Slug, "err", err)
			}
			// The next poll is due one interval after this one was due,
			// so that polls keep to their interval whenever in a tick they
			// are claimed, or at once if this one took longer. A repo that
			// fell more than an interval behind (new, or the servers were
			// down) starts again from now.
			next := nextPoll(repo.NextPoll, now, time.Now().UTC(), repo.PollInterval)
			if next.Before(leaseEnd) {
				if _, err := p.repos.ClaimPoll(ctx, repo.ID, leaseEnd, next); err != nil && ctx.Err() == nil {
					p.logger.ErrorContext(ctx, "scheduling the next poll", "repo", repo.Slug, "err", err)
				}
			}
		}()
	}
}

// nextPoll is when a repo's next poll is due, for a poll that was due at
// due, claimed at claimed and finished at finished: one interval after it
// was due, so that polls keep to their interval whenever in a tick they
// are claimed; at finished if the poll took longer than that; one
// interval after claimed for a repo that fell more than an interval
// behind (new, or the servers were down).
func nextPoll(due, claimed, finished time.Time, interval time.Duration) time.Time {
	base := due
	if base.IsZero() || claimed.Sub(base) > interval {
		base = claimed
	}
	next := base.Add(interval)
	if finished.After(next) {
		next = finished
	}
	return next.Truncate(time.Microsecond)
}

// removed reports whether repo was deleted from the store.
func (p *Poller) removed(ctx context.Context, repo *store.Repo) bool {
	_, err := p.repos.Get(ctx, repo.ID)
	return errors.Is(err, store.ErrNotFound)
}

func (p *Poller) begin(id int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[id] != nil {
		return false
	}
	p.inflight[id] = make(chan struct{})
	return true
}

func (p *Poller) end(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch := p.inflight[id]; ch != nil {
		close(ch)
		delete(p.inflight, id)
	}
}

// Hold waits until this Poller is not polling the repo with the given ID,
// and keeps it from starting to until release is called: a repo due in
// the meantime is polled at the first tick after that. The server holds a
// repo while it builds a push reported through its API and moves the
// repo's baseline, so that a poll does not build the same change again.
// It returns ctx's error if ctx ends first.
func (p *Poller) Hold(ctx context.Context, repoID int64) (release func(), err error) {
	for {
		p.mu.Lock()
		ch := p.inflight[repoID]
		if ch == nil {
			p.inflight[repoID] = make(chan struct{})
			p.mu.Unlock()
			return sync.OnceFunc(func() { p.end(repoID) }), nil
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Poll polls repo once, now, without claiming it: it fetches the mirror,
// compares its refs with the baseline, creates the builds, and saves the
// new baseline. Run calls it for each repo it claims; the server may call
// it to poll a repo on demand. It fails at once if this Poller is polling
// the repo already.
func (p *Poller) Poll(ctx context.Context, repo *store.Repo) error {
	if !p.begin(repo.ID) {
		return fmt.Errorf("polling %s: a poll of the repo is running already", repo.Slug)
	}
	defer p.end(repo.ID)
	return p.poll(ctx, repo)
}

// poll is Poll for a caller that holds the repo's in-flight mark.
func (p *Poller) poll(ctx context.Context, repo *store.Repo) error {
	log := p.logger.With("repo", repo.Slug)
	auth, err := gitAuth(ctx, p.Auth, repo)
	if err != nil {
		return fmt.Errorf("polling %s: %w", repo.Slug, err)
	}
	m := p.mirrors.Get(repo.GitURL, auth...)
	refs := p.Refs
	if refs == nil {
		refs = dbRefStore{repos: p.repos}
	}
	if err := m.Fetch(ctx); err != nil {
		return fmt.Errorf("polling %s: %w", repo.Slug, err)
	}
	current, err := m.Refs(ctx)
	if err != nil {
		return fmt.Errorf("polling %s: %w", repo.Slug, err)
	}
	old, err := refs.LoadRefs(ctx, repo)
	if err != nil {
		return fmt.Errorf("polling %s: loading the last refs: %w", repo.Slug, err)
	}
	if old == nil {
		if err := refs.SaveRefs(ctx, repo, current); err != nil {
			return fmt.Errorf("polling %s: saving the baseline: %w", repo.Slug, err)
		}
		log.InfoContext(ctx, "first poll: recorded the branches and tags as the baseline; the next change will build",
			"refs", len(current))
		return nil
	}

	// The new baseline: refs deleted from the remote are forgotten, and a
	// change is recorded only once its build was created.
	seen := maps.Clone(old)
	maps.DeleteFunc(seen, func(ref, _ string) bool { _, ok := current[ref]; return !ok })
	var errs []error
	for _, c := range forge.DiffRefs(old, current) {
		ev := p.event(ctx, m, repo, c)
		b, err := p.builder.CreateBuild(ctx, repo, ev)
		if err != nil {
			if ctx.Err() != nil {
				errs = append(errs, ctx.Err())
				break
			}
			errs = append(errs, fmt.Errorf("creating build of %s at %s: %w", c.Ref, c.After, err))
			continue
		}
		seen[c.Ref] = c.After
		if b == nil {
			log.InfoContext(ctx, "ref moved; no pipeline matched", "ref", c.Ref, "sha", c.After)
		} else {
			log.InfoContext(ctx, "ref moved; build created", "ref", c.Ref, "sha", c.After, "build", b.Number)
		}
	}
	if !maps.Equal(seen, old) {
		if err := refs.SaveRefs(ctx, repo, seen); err != nil {
			errs = append(errs, fmt.Errorf("saving the refs: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("polling %s: %w", repo.Slug, errors.Join(errs...))
	}
	return nil
}

// event describes a polled change, with the commit's message and author
// and, for a push, the files it changed, as far as the mirror can tell.
func (p *Poller) event(ctx context.Context, m *forge.Mirror, repo *store.Repo, c forge.RefChange) *Event {
	commit, err := m.Commit(ctx, c.After)
	if err != nil {
		p.logger.WarnContext(ctx, "reading polled commit", "repo", repo.Slug, "sha", c.After, "err", err)
		commit = nil
	}
	ev := HookEvent(c.Hook(forge.Repo{Slug: repo.Slug, CloneURL: repo.GitURL, DefaultBranch: repo.DefaultBranch}, commit))
	if c.Event == forge.EventPush {
		paths, err := m.ChangedPaths(ctx, c.Before, c.After)
		if err != nil {
			p.logger.WarnContext(ctx, "listing changed files of polled commit", "repo", repo.Slug, "sha", c.After, "err", err)
		} else {
			ev.ChangedPaths = paths
		}
	}
	return ev
}

// dbRefStore keeps each repo's baseline in the database.
type dbRefStore struct{ repos store.RepoStore }

func (s dbRefStore) LoadRefs(ctx context.Context, repo *store.Repo) (map[string]string, error) {
	return s.repos.PollRefs(ctx, repo.ID)
}

func (s dbRefStore) SaveRefs(ctx context.Context, repo *store.Repo, refs map[string]string) error {
	return s.repos.SavePollRefs(ctx, repo.ID, refs)
}
