package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// cronParser reads standard five-field cron expressions (minute, hour, day
// of month, month, day of week), the "@hourly"-style macros and "@every
// DURATION", with an optional "CRON_TZ=Zone " prefix. Without the prefix,
// schedules are in UTC.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NextRun validates the cron expression expr and returns the first time
// after after at which it fires. The server uses it to check an expression
// and to set Cron.Next when a cron is created or its expression changes.
func NextRun(expr string, after time.Time) (time.Time, error) {
	sched, err := cronParser.Parse(strings.TrimSpace(expr))
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing cron expression %q: %w", expr, err)
	}
	next := sched.Next(after.UTC())
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("cron expression %q never fires", expr)
	}
	return next, nil
}

// Cron fires the builds of the crons in the store as they fall due.
//
// Each tick it asks the store for the crons whose Next has passed, and
// claims each one by moving its Next to the following run (CronStore.Claim,
// an atomic compare-and-set): of several servers sharing one database,
// exactly one wins the claim and fires the build. A cron that was due
// several times while no server ran fires once, not once per missed run.
//
// The build is an event "cron" named after the cron, on the cron's branch
// (or the repo's default branch), at the branch head resolved with
// git ls-remote at firing time. Message and author are left to the
// Builder, which reads the commit anyway.
//
// A cron whose Next is not set yet (zero) is given one when Run starts and
// every SweepInterval after. A cron whose expression cannot be parsed is
// disabled, with an error in the log.
//
// Configure the exported fields before Run; Run may be called once.
type Cron struct {
	// Tick is how often due crons are looked for; the default is one
	// second.
	Tick time.Duration
	// SweepInterval is how often crons without a Next are looked for; the
	// default is one minute.
	SweepInterval time.Duration
	// Parallel caps how many crons fire at once; the default is 4.
	Parallel int
	// GitOptions are passed to forge.LsRemote, for example credentials.
	GitOptions []forge.GitOption
	// Auth, if set, returns a repo's git credentials, passed to
	// forge.LsRemote after GitOptions.
	Auth GitAuth

	repos   store.RepoStore
	crons   store.CronStore
	builder Builder
	logger  *slog.Logger
}

// NewCron returns a Cron that fires the crons of st through b. A nil
// logger discards logs.
func NewCron(st *store.Store, b Builder, logger *slog.Logger) *Cron {
	return &Cron{
		Tick:          time.Second,
		SweepInterval: time.Minute,
		Parallel:      4,
		repos:         st.Repos,
		crons:         st.Crons,
		builder:       b,
		logger:        orDiscard(logger).With("component", "cron"),
	}
}

// Run fires due crons until ctx is done, then waits for the builds it
// started firing and returns ctx's error. Failures of one cron are logged
// and do not stop the loop.
func (c *Cron) Run(ctx context.Context) error {
	tick := time.NewTicker(positive(c.Tick, time.Second))
	defer tick.Stop()
	sweepEvery := positive(c.SweepInterval, time.Minute)
	var lastSweep time.Time
	sem := make(chan struct{}, max(c.Parallel, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if time.Since(lastSweep) >= sweepEvery {
			c.sweep(ctx)
			lastSweep = time.Now()
		}
		c.fireDue(ctx, sem, &wg)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// fireDue claims every due cron and fires the ones it won, each in its own
// goroutine, at most cap(sem) at once.
func (c *Cron) fireDue(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	now := time.Now().UTC()
	due, err := c.crons.Due(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.ErrorContext(ctx, "listing due crons", "err", err)
		}
		return
	}
	for _, cr := range due {
		won, err := c.claim(ctx, cr, now)
		if err != nil {
			c.logger.ErrorContext(ctx, "claiming cron", "cron", cr.Name, "repo_id", cr.RepoID, "err", err)
			continue
		}
		if !won {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.fire(ctx, cr); err != nil {
				c.logger.ErrorContext(ctx, "firing cron", "cron", cr.Name, "repo_id", cr.RepoID, "err", err)
			}
		}()
	}
}

// claim moves cr's Next to its next run after now, and reports whether
// this server won the cron. A cron with an invalid expression is disabled.
func (c *Cron) claim(ctx context.Context, cr *store.Cron, now time.Time) (bool, error) {
	next, err := NextRun(cr.Expr, now)
	if err != nil {
		c.logger.ErrorContext(ctx, "disabling cron with an invalid schedule", "cron", cr.Name, "repo_id", cr.RepoID, "err", err)
		cr.Disabled = true
		if err := c.crons.Update(ctx, cr); err != nil {
			return false, fmt.Errorf("disabling cron: %w", err)
		}
		return false, nil
	}
	return c.crons.Claim(ctx, cr.ID, cr.Next, next)
}

// fire resolves the cron's branch head and asks the Builder for a build.
func (c *Cron) fire(ctx context.Context, cr *store.Cron) error {
	repo, err := c.repos.Get(ctx, cr.RepoID)
	if err != nil {
		return fmt.Errorf("getting repo: %w", err)
	}
	log := c.logger.With("cron", cr.Name, "repo", repo.Slug)
	if !repo.Active {
		log.DebugContext(ctx, "not firing cron of an inactive repo")
		return nil
	}
	auth, err := gitAuth(ctx, c.Auth, repo)
	if err != nil {
		return err
	}
	refs, err := forge.LsRemote(ctx, repo.GitURL, append(append([]forge.GitOption(nil), c.GitOptions...), auth...)...)
	if err != nil {
		return fmt.Errorf("resolving branch head: %w", err)
	}
	branch, sha, err := cronBranch(cr.Branch, repo.DefaultBranch, refs)
	if err != nil {
		return err
	}
	ev := &Event{
		Kind:   store.EventCron,
		Ref:    "refs/heads/" + branch,
		Branch: branch,
		SHA:    sha,
		Cron:   cr.Name,
		Sender: "cron",
	}
	ev.SourceBranch = ev.Branch
	b, err := c.builder.CreateBuild(ctx, repo, ev)
	if err != nil {
		return fmt.Errorf("creating build: %w", err)
	}
	if b == nil {
		log.InfoContext(ctx, "cron fired; no pipeline matched", "branch", branch, "sha", sha)
		return nil
	}
	log.InfoContext(ctx, "cron fired", "build", b.Number, "branch", branch, "sha", sha)
	return nil
}

// cronBranch picks the branch a cron builds and its head: the cron's
// branch, else the repo's default branch, else main or master, whichever
// the remote has.
func cronBranch(branch, defaultBranch string, refs map[string]string) (string, string, error) {
	if branch == "" {
		branch = defaultBranch
	}
	candidates := []string{branch}
	if branch == "" {
		candidates = []string{"main", "master"}
	}
	for _, b := range candidates {
		if sha, ok := refs["refs/heads/"+b]; ok {
			return b, sha, nil
		}
	}
	if branch == "" {
		return "", "", errors.New("the cron names no branch, the repo has no default branch, and the remote has neither main nor master")
	}
	return "", "", fmt.Errorf("branch %q does not exist in the remote", branch)
}

// sweep gives every enabled cron without a Next its next run.
func (c *Cron) sweep(ctx context.Context) {
	repos, err := c.repos.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.ErrorContext(ctx, "listing repos", "err", err)
		}
		return
	}
	now := time.Now().UTC()
	for _, r := range repos {
		crons, err := c.crons.List(ctx, r.ID)
		if err != nil {
			if ctx.Err() == nil {
				c.logger.ErrorContext(ctx, "listing crons", "repo", r.Slug, "err", err)
			}
			return
		}
		for _, cr := range crons {
			if cr.Disabled || !cr.Next.IsZero() {
				continue
			}
			next, err := NextRun(cr.Expr, now)
			if err != nil {
				c.logger.ErrorContext(ctx, "disabling cron with an invalid schedule", "cron", cr.Name, "repo", r.Slug, "err", err)
				cr.Disabled = true
			}
			cr.Next = next
			if err := c.crons.Update(ctx, cr); err != nil && !errors.Is(err, store.ErrNotFound) {
				c.logger.ErrorContext(ctx, "scheduling cron", "cron", cr.Name, "repo", r.Slug, "err", err)
			}
		}
	}
}

// positive returns d, or def when d is not positive.
func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// GitAuth returns the git options, such as credentials, that reading a
// repo needs.
type GitAuth func(ctx context.Context, repo *store.Repo) ([]forge.GitOption, error)

// gitAuth calls auth, if it is set.
func gitAuth(ctx context.Context, auth GitAuth, repo *store.Repo) ([]forge.GitOption, error) {
	if auth == nil {
		return nil, nil
	}
	opts, err := auth(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("loading the git credential: %w", err)
	}
	return opts, nil
}
