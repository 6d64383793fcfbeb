package trigger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/gittest"
	"github.com/ferryci/ferry/internal/store"
)

// TestPollerBuildsNewCommit runs the polling loop against a real git
// repository, over file:// and over HTTP served by git http-backend: the
// first poll records the baseline and builds nothing, and a pushed commit
// is built within the poll interval.
func TestPollerBuildsNewCommit(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			origin := newGitRepo(t, root, "app")
			url := origin.URL()
			if transport == "http" {
				url = gittest.Serve(t, root, nil) + "/app.git"
			}
			first := origin.Git("rev-parse", "HEAD")
			origin.Git("tag", "v0.1.0")
			origin.Push("v0.1.0")

			st := openStore(t)
			b := newBuilder(st)
			const interval = 500 * time.Millisecond
			repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: url, PollInterval: interval})
			mirrors := forge.NewMirrors(t.TempDir())
			stc, counts := counted(st)
			p := NewPoller(stc, b, mirrors, testLogger(t))
			p.Tick = 50 * time.Millisecond
			runLoop(t, p.Run)

			// The first poll saves the baseline, in the database.
			waitFor(t, "the first poll's baseline", func() bool {
				refs, err := st.Repos.PollRefs(context.Background(), repo.ID)
				return err == nil && refs["refs/tags/v0.1.0"] != ""
			})
			if evs := b.Events(); len(evs) != 0 {
				t.Fatalf("the first poll created builds: %+v", evs)
			}

			sha := origin.Commit("Add main\n\nWith a body.", map[string]string{"src/main.go": "package main\n"})
			origin.Push("main")
			evs := b.waitEvents(t, 1)
			want := Event{
				Kind: "push", Ref: "refs/heads/main", Branch: "main", SourceBranch: "main",
				SHA: sha, Before: first, Message: "Add main\n\nWith a body.",
				AuthorName: "Ada Lovelace", AuthorEmail: "ada@example.com",
				ChangedPaths: []string{"src/main.go"},
			}
			if !reflect.DeepEqual(*evs[0], want) {
				t.Errorf("event:\n got %+v\nwant %+v", *evs[0], want)
			}
			if bs := listBuilds(t, st, repo.ID); len(bs) != 1 || bs[0].Commit != sha || bs[0].Event != "push" {
				t.Errorf("stored builds = %+v, want one push of %s", bs, sha)
			}

			// A new branch and a new tag, pushed together, build one each.
			origin.Git("checkout", "--quiet", "-b", "feature")
			feature := origin.Commit("Feature work", map[string]string{"README": "hello\n"})
			origin.Git("tag", "-a", "-m", "Release 1.0.0", "v1.0.0", sha)
			origin.Push("feature", "v1.0.0")
			evs = b.waitEvents(t, 3)
			got := map[string]Event{}
			for _, ev := range evs[1:] {
				got[ev.Ref] = *ev
			}
			if ev := got["refs/heads/feature"]; ev.Kind != "push" || ev.SHA != feature || ev.Before != sha0 ||
				ev.Branch != "feature" || !slices.Equal(ev.ChangedPaths, []string{"README"}) {
				t.Errorf("new branch event = %+v, want a push of %s from %s changing README", ev, feature, sha0)
			}
			if ev := got["refs/tags/v1.0.0"]; ev.Kind != "tag" || ev.SHA != sha || ev.Branch != "" {
				t.Errorf("tag event = %+v, want a tag of commit %s (not the tag object)", ev, sha)
			}

			// Nothing else moved: later polls build nothing more.
			waitPolls(t, counts, 3)
			if n := len(b.Events()); n != 3 {
				t.Errorf("got %d events, want 3: %+v", n, b.Events())
			}
		})
	}
}

// TestPollSemantics drives single polls of a real repository and checks
// what each one builds.
func TestPollSemantics(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	origin := newGitRepo(t, root, "app")
	origin.Git("branch", "old")
	origin.Git("branch", "flaky")
	origin.Git("branch", "docs")
	origin.Push("old", "flaky", "docs")

	st := openStore(t)
	b := newBuilder(st)
	failures := 1
	var mu sync.Mutex
	b.fail = func(ev *Event) error {
		mu.Lock()
		defer mu.Unlock()
		if ev.Branch == "flaky" && failures > 0 {
			failures--
			return errors.New("store unavailable")
		}
		return nil
	}
	b.skip = func(ev *Event) bool { return ev.Branch == "docs" }
	repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), PollInterval: time.Minute})
	p := NewPoller(st, b, forge.NewMirrors(t.TempDir()), testLogger(t))
	ctx := t.Context()

	poll := func(wantErr bool) []*Event {
		t.Helper()
		before := len(b.Events())
		err := p.Poll(ctx, repo)
		if (err != nil) != wantErr {
			t.Fatalf("Poll: %v, want error %v", err, wantErr)
		}
		return b.Events()[before:]
	}

	if evs := poll(false); len(evs) != 0 {
		t.Fatalf("first poll built %+v, want nothing", evs)
	}
	if evs := poll(false); len(evs) != 0 {
		t.Fatalf("poll without changes built %+v, want nothing", evs)
	}

	// Three branches move and one is deleted; the builder fails for one,
	// and matches no pipeline for another.
	origin.Git("checkout", "--quiet", "flaky")
	flaky := origin.Commit("flaky change", map[string]string{"a": "1"})
	origin.Git("checkout", "--quiet", "docs")
	docs := origin.Commit("docs change", map[string]string{"doc.md": "1"})
	origin.Git("checkout", "--quiet", "main")
	main := origin.Commit("main change", map[string]string{"b": "1"})
	origin.Push("flaky", "docs", "main", ":old")

	evs := poll(true)
	if got := refsOf(evs); !slices.Equal(got, []string{"refs/heads/docs@" + docs, "refs/heads/flaky@" + flaky, "refs/heads/main@" + main}) {
		t.Fatalf("poll after pushes asked for builds of %v", got)
	}
	// Only the failed build is asked for again; the one that matched no
	// pipeline counts as handled, and the deleted branch builds nothing.
	evs = poll(false)
	if got := refsOf(evs); !slices.Equal(got, []string{"refs/heads/flaky@" + flaky}) {
		t.Fatalf("poll after a failed build asked for %v, want the failed one again", got)
	}
	if evs := poll(false); len(evs) != 0 {
		t.Fatalf("poll without changes built %+v, want nothing", evs)
	}
	var commits []string
	for _, bl := range listBuilds(t, st, repo.ID) {
		commits = append(commits, bl.Branch+"@"+bl.Commit)
	}
	if want := []string{"main@" + main, "flaky@" + flaky}; !slices.Equal(commits, want) {
		t.Errorf("stored builds %v, want %v", commits, want)
	}

	// A deleted branch that comes back is new again.
	origin.Push("main:old")
	if got := refsOf(poll(false)); !slices.Equal(got, []string{"refs/heads/old@" + main}) {
		t.Errorf("poll after re-creating a branch asked for %v", got)
	}
}

func refsOf(evs []*Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Ref+"@"+ev.SHA)
	}
	slices.Sort(out)
	return out
}

// TestPollersShareRepos runs two pollers, as two servers would, against one
// store, one baseline and one repository: every pushed commit is built
// once, never by both.
func TestPollersShareRepos(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	origin := newGitRepo(t, root, "app")
	st := openStore(t)
	b := newBuilder(st)
	createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), PollInterval: 300 * time.Millisecond})
	refs := newMemRefs()
	stc, counts := counted(st)
	for range 2 {
		p := NewPoller(stc, b, forge.NewMirrors(t.TempDir()), testLogger(t))
		p.Tick = 20 * time.Millisecond
		p.Refs = refs
		runLoop(t, p.Run)
	}
	waitFor(t, "the first poll", func() bool { return refs.saves() > 0 })

	// Each commit is pushed once the one before was built, so that each
	// is seen by some poll.
	var shas []string
	for i := range 5 {
		sha := origin.Commit("change "+strconv.Itoa(i), map[string]string{"f": strconv.Itoa(i)})
		shas = append(shas, sha)
		origin.Push("main")
		waitFor(t, "a build of commit "+strconv.Itoa(i), func() bool {
			return slices.ContainsFunc(b.Events(), func(ev *Event) bool { return ev.SHA == sha })
		})
	}
	// Room for a duplicate to show up: a few more polls.
	waitPolls(t, counts, 3)
	count := map[string]int{}
	for _, ev := range b.Events() {
		count[ev.SHA]++
	}
	for sha, n := range count {
		if n != 1 {
			t.Errorf("commit %s was built %d times, want once", sha, n)
		}
		if !slices.Contains(shas, sha) {
			t.Errorf("built %s, which was never pushed", sha)
		}
	}
	if len(count) != len(shas) {
		t.Errorf("built %d of %d commits, want each", len(count), len(shas))
	}
}

// memRefs is a RefStore in memory, shared by several pollers as a
// database-backed one would be.
type memRefs struct {
	mu    sync.Mutex
	refs  map[int64]map[string]string
	saved int
}

func newMemRefs() *memRefs { return &memRefs{refs: map[int64]map[string]string{}} }

func (m *memRefs) LoadRefs(_ context.Context, repo *store.Repo) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.refs[repo.ID]), nil
}

func (m *memRefs) SaveRefs(_ context.Context, repo *store.Repo, refs map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs[repo.ID] = maps.Clone(refs)
	m.saved++
	return nil
}

func (m *memRefs) saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saved
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPolls waits until n more polls have started than had when it was
// called: then at least n-1 have finished, since polls of one repo never
// overlap.
func waitPolls(t *testing.T, c *countingRepos, n int) {
	t.Helper()
	_, before := c.counts()
	waitCount(t, fmt.Sprintf("%d more polls", n), before+n, func() int { _, p := c.counts(); return p })
}

// TestPollLeaseCoversSlowPolls checks that a poll that takes longer than
// the repo's interval keeps other pollers off the repo until it is over,
// and that the repo is polled again on its interval afterwards. The slow
// poll is a Builder that waits until the test lets it go; the other
// pollers' ticks are counted, not timed.
func TestPollLeaseCoversSlowPolls(t *testing.T) {
	t.Parallel()
	origin := newGitRepo(t, t.TempDir(), "app")
	st := openStore(t)
	b := newBuilder(st)
	release := make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	b.fail = func(*Event) error {
		<-release // a slow Builder
		return nil
	}
	const interval = 200 * time.Millisecond
	const tick = 10 * time.Millisecond
	createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), PollInterval: interval})
	refs := newMemRefs()
	stc, counts := counted(st)
	for range 3 {
		p := NewPoller(stc, b, forge.NewMirrors(t.TempDir()), testLogger(t))
		p.Tick = tick
		p.Refs = refs
		runLoop(t, p.Run)
	}
	t.Cleanup(letGo) // runs before the pollers are stopped: last in, first out
	waitFor(t, "the first poll", func() bool { return refs.saves() > 0 })

	sha := origin.Commit("slow change", map[string]string{"f": "1"})
	origin.Push("main")
	waitFor(t, "the slow poll to reach its Builder", func() bool { return len(b.Events()) > 0 })
	looks, polls := counts.counts()
	// Three pollers tick every 10 ms: 3*2*interval/tick more looks for due
	// repos take at least two intervals, however slowly they come.
	waitCount(t, "the pollers to look for due repos for two intervals", looks+3*int(2*interval/tick), func() int {
		l, _ := counts.counts()
		return l
	})
	if _, now := counts.counts(); now != polls {
		t.Fatalf("%d polls started while the slow poll held the repo's lease, want none", now-polls)
	}
	if n := len(b.Events()); n != 1 {
		t.Fatalf("commit %s was built %d times while its slow poll ran, want once", sha, n)
	}
	letGo()
	waitFor(t, "the slow poll to save its baseline", func() bool { return refs.saves() > 1 })
	// Once the slow poll is over, the lease is given back: polls go on
	// (at the end of the ten-minute lease they would not come within the
	// test's patience), and build nothing more.
	waitPolls(t, counts, 2)
	if n := len(b.Events()); n != 1 {
		t.Errorf("got %d builds, want 1", n)
	}
}

// TestPollKeepsToInterval checks that each poll of a repo is scheduled
// one interval after the previous one was due, not one interval after the
// tick that happened to claim it: otherwise a repo is polled every
// interval rounded up to the next tick (a 2 s interval on a 1 s tick,
// every 3 s).
func TestPollKeepsToInterval(t *testing.T) {
	t.Parallel()
	origin := newGitRepo(t, t.TempDir(), "app")
	st := openStore(t)
	const interval = 500 * time.Millisecond
	repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), PollInterval: interval})
	p := NewPoller(st, newBuilder(st), forge.NewMirrors(t.TempDir()), testLogger(t))
	p.Tick = 70 * time.Millisecond
	p.Refs = newMemRefs()
	runLoop(t, p.Run)

	// Watch NextPoll: between polls it is when the next is due; during a
	// poll it is the end of the poll's lease, ten minutes away.
	var due []time.Time
	deadline := time.Now().Add(patience)
	for len(due) < 5 && time.Now().Before(deadline) {
		got, err := st.Repos.Get(t.Context(), repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		next := got.NextPoll
		if time.Until(next) < time.Minute && (len(due) == 0 || !next.Equal(due[len(due)-1])) {
			due = append(due, next)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(due) < 5 {
		t.Fatalf("saw %d scheduled polls in %s, want 5", len(due), patience)
	}
	// The first value may be the repo's initial NextPoll; from the first
	// poll on, each is at least one interval after the one before: exactly
	// one when the poll was claimed and finished in time, more when the
	// machine was too busy for that (nextPoll, tested by TestNextPoll).
	for i := 2; i < len(due); i++ {
		if d := due[i].Sub(due[i-1]); d < interval {
			t.Errorf("poll %d was scheduled %s after the one before, want at least the %s interval (due times %v)", i, d, interval, due)
		}
	}
}

// TestNextPoll checks when the next poll is due: one interval after the
// previous poll was due, whenever in a tick it was claimed, unless the
// poll ran late or long.
func TestNextPoll(t *testing.T) {
	t.Parallel()
	const interval = 2 * time.Second
	due := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name              string
		due               time.Time
		claimed, finished time.Duration // after due
		want              time.Time
	}{
		{"claimed half a tick early", due, -ms(400), ms(100), due.Add(interval)},
		{"claimed half a tick late", due, ms(500), ms(900), due.Add(interval)},
		{"poll longer than the interval", due, ms(100), ms(2500), due.Add(ms(2500))},
		{"claimed more than an interval late", due, ms(3000), ms(3100), due.Add(ms(3000) + interval)},
		{"never polled", time.Time{}, 0, ms(100), time.Time{}.Add(interval)},
	}
	for _, tt := range tests {
		base := tt.due
		if base.IsZero() {
			base = time.Time{}
		}
		got := nextPoll(tt.due, base.Add(tt.claimed), base.Add(tt.finished), interval)
		if !got.Equal(tt.want) {
			t.Errorf("%s: next poll at %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestPollerUsesRepoCredential polls a repository that git http-backend
// serves only with HTTP basic authentication: without the poller's Auth
// the fetch is refused, with it the poll records the baseline.
func TestPollerUsesRepoCredential(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	origin := newGitRepo(t, root, "app")
	gate := &gittest.BasicAuth{User: "ci-bot", Password: "tok-poll-31c7"}
	url := gittest.Serve(t, root, gate.Wrap) + "/app.git"
	st := openStore(t)
	repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: url, PollInterval: time.Hour})
	p := NewPoller(st, newBuilder(st), forge.NewMirrors(t.TempDir()), testLogger(t))
	ctx := context.Background()

	if err := p.Poll(ctx, repo); !errors.Is(err, forge.ErrAuth) {
		t.Fatalf("Poll without a credential: %v, want an error matching forge.ErrAuth", err)
	}
	var asked []string
	p.Auth = func(_ context.Context, r *store.Repo) ([]forge.GitOption, error) {
		asked = append(asked, r.Slug)
		return []forge.GitOption{forge.WithBasicAuth(gate.User, gate.Password)}, nil
	}
	if err := p.Poll(ctx, repo); err != nil {
		t.Fatalf("Poll with the credential: %v", err)
	}
	refs, err := st.Repos.PollRefs(ctx, repo.ID)
	if err != nil || refs["refs/heads/main"] != origin.Git("rev-parse", "HEAD") {
		t.Fatalf("baseline after the poll = %v, %v; want main's head", refs, err)
	}
	if !slices.Equal(asked, []string{"acme/app"}) {
		t.Errorf("Auth was asked for %v, want acme/app once", asked)
	}
}
