package trigger

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

func TestNextRun(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		expr, want, err string
	}{
		{expr: "*/15 * * * *", want: "2026-03-14T15:15:00Z"},
		{expr: "0 3 * * *", want: "2026-03-15T03:00:00Z"},
		{expr: "0 0 1 1 *", want: "2027-01-01T00:00:00Z"},
		{expr: "30 9 * * MON-FRI", want: "2026-03-16T09:30:00Z"}, // the 14th is a Saturday
		{expr: "@hourly", want: "2026-03-14T16:00:00Z"},
		{expr: "@daily", want: "2026-03-15T00:00:00Z"},
		{expr: "CRON_TZ=Europe/Berlin 0 3 * * *", want: "2026-03-15T02:00:00Z"},
		{expr: "  5 4 * * *  ", want: "2026-03-15T04:05:00Z"},
		{expr: "* * * *", err: "expected exactly 5 fields"},
		{expr: "61 * * * *", err: "parsing cron expression"},
		{expr: "0 0 30 2 *", err: "never fires"},
		{expr: "@sometimes", err: "unrecognized descriptor"},
		{expr: "", err: "parsing cron expression"},
	}
	for _, tt := range tests {
		got, err := NextRun(tt.expr, at)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NextRun(%q) = %v, %v; want error containing %q", tt.expr, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tt.want {
			t.Errorf("NextRun(%q) = %v, %v; want %s", tt.expr, got.Format(time.RFC3339), err, tt.want)
		}
	}
}

// TestCronFires runs two cron loops, as two servers would, against one
// store and a real git repository: a due cron fires once, on the head of
// its branch, and is moved to its next run.
func TestCronFires(t *testing.T) {
	t.Parallel()
	origin := newGitRepo(t, t.TempDir(), "app")
	origin.Git("checkout", "--quiet", "-b", "release")
	release := origin.Commit("Release branch", map[string]string{"VERSION": "1.0\n"})
	origin.Push("release")
	origin.Git("checkout", "--quiet", "main")
	main := origin.Commit("Main moves on", map[string]string{"x": "1"})
	origin.Push("main")

	st := openStore(t)
	b := newBuilder(st)
	ctx := t.Context()
	repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), DefaultBranch: "main"})
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	crons := map[string]*store.Cron{
		"nightly": {RepoID: repo.ID, Name: "nightly", Expr: "0 3 * * *", Branch: "release", Next: past},
		"hourly":  {RepoID: repo.ID, Name: "hourly", Expr: "@hourly", Next: past},
		"off":     {RepoID: repo.ID, Name: "off", Expr: "* * * * *", Next: past, Disabled: true},
		"future":  {RepoID: repo.ID, Name: "future", Expr: "* * * * *", Next: time.Now().Add(time.Hour)},
		"broken":  {RepoID: repo.ID, Name: "broken", Expr: "every tuesday", Next: past},
		"unset":   {RepoID: repo.ID, Name: "unset", Expr: "@yearly"},
		"gone":    {RepoID: repo.ID, Name: "gone", Expr: "@daily", Branch: "nope", Next: past},
	}
	for _, c := range crons {
		if err := st.Crons.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	var loops atomic.Int32
	cst := *st
	looks := &countingCrons{CronStore: st.Crons}
	cst.Crons = looks
	for range 2 {
		c := NewCron(&cst, b, testLogger(t))
		c.Tick = 20 * time.Millisecond
		runLoop(t, c.Run)
		loops.Add(1)
	}
	b.waitEvents(t, 2)
	// Room for a second firing to show up: each loop looks again a few
	// times.
	waitCount(t, "more ticks of the cron loops", looks.count()+6, looks.count)
	evs := b.Events()
	if len(evs) != 2 {
		t.Fatalf("got %d builds from %d cron loops, want 2 (each due cron once): %+v", len(evs), loops.Load(), evs)
	}
	got := map[string]*Event{}
	for _, ev := range evs {
		got[ev.Cron] = ev
	}
	if ev := got["nightly"]; ev == nil || ev.Kind != "cron" || ev.Branch != "release" || ev.Ref != "refs/heads/release" || ev.SHA != release {
		t.Errorf("nightly event = %+v, want a cron build of release at %s", ev, release)
	}
	if ev := got["hourly"]; ev == nil || ev.Branch != "main" || ev.SHA != main {
		t.Errorf("hourly event = %+v, want a cron build of the default branch at %s", ev, main)
	}
	if bs := listBuilds(t, st, repo.ID); len(bs) != 2 || bs[0].Cron == "" || bs[0].Event != "cron" {
		t.Errorf("stored builds %+v, want 2 cron builds", bs)
	}

	now := time.Now()
	check := func(name string, ok func(c *store.Cron) bool, want string) {
		t.Helper()
		c, err := st.Crons.Get(ctx, crons[name].ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok(c) {
			t.Errorf("cron %s: Next %v, Disabled %v; want %s", name, c.Next, c.Disabled, want)
		}
	}
	check("nightly", func(c *store.Cron) bool { return c.Next.After(now) && c.Next.Hour() == 3 && c.Next.Minute() == 0 },
		"the next 03:00")
	check("hourly", func(c *store.Cron) bool { return c.Next.After(now) && c.Next.Sub(now) <= time.Hour },
		"within the next hour")
	check("off", func(c *store.Cron) bool { return c.Next.Equal(past) && c.Disabled }, "untouched")
	check("broken", func(c *store.Cron) bool { return c.Disabled }, "disabled for its invalid expression")
	check("unset", func(c *store.Cron) bool {
		return !c.Disabled && c.Next.Month() == time.January && c.Next.Day() == 1 && c.Next.After(now)
	}, "scheduled for next New Year by the sweep")
	check("gone", func(c *store.Cron) bool { return c.Next.After(now) }, "moved on although its branch is missing")
}

func TestCronBranch(t *testing.T) {
	t.Parallel()
	refs := map[string]string{"refs/heads/main": "a", "refs/heads/dev": "b", "refs/tags/v1": "c"}
	tests := []struct {
		branch, def, want, sha, err string
	}{
		{branch: "dev", def: "main", want: "dev", sha: "b"},
		{def: "dev", want: "dev", sha: "b"},
		{want: "main", sha: "a"},
		{def: "trunk", err: `branch "trunk" does not exist`},
		{branch: "v1", err: `branch "v1" does not exist`},
	}
	for _, tt := range tests {
		b, sha, err := cronBranch(tt.branch, tt.def, refs)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("cronBranch(%q, %q) error %v, want %q", tt.branch, tt.def, err, tt.err)
			}
			continue
		}
		if b != tt.want || sha != tt.sha || err != nil {
			t.Errorf("cronBranch(%q, %q) = %q, %q, %v; want %q, %q", tt.branch, tt.def, b, sha, err, tt.want, tt.sha)
		}
	}
	if _, _, err := cronBranch("", "", map[string]string{"refs/heads/x": "a"}); err == nil {
		t.Error("cronBranch found a branch where there is none to pick")
	}
}
