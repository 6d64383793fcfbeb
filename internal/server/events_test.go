package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// eventLog records the events a server's subscribers see.
type eventLog struct {
	t      *testing.T
	mu     sync.Mutex
	events []build.Event
	added  chan struct{}
}

// subscribe records srv's events until the test ends.
func subscribe(t *testing.T, srv *server.Server) *eventLog {
	l := &eventLog{t: t, added: make(chan struct{}, 1)}
	unsubscribe := srv.Subscribe(func(ev build.Event) {
		l.mu.Lock()
		l.events = append(l.events, ev)
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	})
	t.Cleanup(unsubscribe)
	return l
}

// snapshot returns the events seen so far.
func (l *eventLog) snapshot() []build.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]build.Event(nil), l.events...)
}

// wait waits up to a minute for an event that cond accepts.
func (l *eventLog) wait(what string, cond func(build.Event) bool) build.Event {
	l.t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		for _, ev := range l.snapshot() {
			if cond(ev) {
				return ev
			}
		}
		select {
		case <-l.added:
		case <-deadline.C:
			l.t.Fatalf("no event %s within a minute; saw:\n%s", what, describe(l.snapshot(), nil))
		}
	}
}

// describe writes events one a line, naming builds by number.
func describe(evs []build.Event, number map[int64]int64) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(describeOne(ev, number) + "\n")
	}
	return b.String()
}

func describeOne(ev build.Event, number map[int64]int64) string {
	s := fmt.Sprintf("%s #%d", ev.Kind, number[ev.BuildID])
	if ev.Pipeline != "" {
		s += " " + ev.Pipeline
	}
	if ev.Step != "" {
		s += "/" + ev.Step
	}
	return s + " " + string(ev.Status)
}

// TestEventsOfABuild is acceptance test 2 of issue 9, on one server: a
// subscriber sees every transition of a build with two pipelines, one of
// which fails and is restarted, exactly once and in order.
func TestEventsOfABuild(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			testEventsOfABuild(t, driver)
		})
	}
}

func testEventsOfABuild(t *testing.T, driver string) {
	ts := startServer(t, driver, nil)
	events := subscribe(t, ts.Server)
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
name: one
steps:
- name: a
  image: busybox
  commands: [true]
---
kind: pipeline
name: two
steps:
- name: b
  image: busybox
  commands: [false]
`})
	ts.addRepo(g)
	c := ts.agentClient("agents")
	ctx := context.Background()
	// run leases the next job, reports its one step running and ended
	// with status, and completes it; it returns the pipeline's name.
	run := func(status func(pipeline string) string) string {
		t.Helper()
		j := mustLease(t, c, "agent-1", dockerAgent)
		step := map[string]string{"one": "a", "two": "b"}[j.Pipeline]
		st := status(j.Pipeline)
		for _, s := range []string{"running", st} {
			if err := c.UpdateStep(ctx, j.ID, &rpc.StepUpdate{LeaseToken: j.LeaseToken, Step: step, Status: s}); err != nil {
				t.Fatal(err)
			}
		}
		// Re-sent, as an agent does when an answer is lost: no event.
		if err := c.UpdateStep(ctx, j.ID, &rpc.StepUpdate{LeaseToken: j.LeaseToken, Step: step, Status: st}); err != nil {
			t.Fatal(err)
		}
		if err := c.Complete(ctx, j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: st}); err != nil {
			t.Fatal(err)
		}
		return j.Pipeline
	}
	failTwo := func(p string) string {
		if p == "two" {
			return "failure"
		}
		return "success"
	}
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	first := run(failTwo)
	second := run(failTwo)
	if b := ts.build(1); b.Status != "failure" {
		t.Fatalf("build 1 is %s with %s, want failure", b.Status, b.pipelineStatuses())
	}
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds/1/restart", adminToken, map[string]bool{"failed_only": true}, nil)
	if p := run(func(string) string { return "success" }); p != "two" {
		t.Fatalf("the restart ran %q, want two", p)
	}
	events.wait("build 2 finished", func(ev build.Event) bool {
		return ev.Kind == build.BuildFinished && ev.Number == 2
	})

	// The first build runs one pipeline after the other; the restart
	// copies one and runs two.
	step := map[string]string{"one": "a", "two": "b"}
	status := map[string]string{first: failTwo(first), second: failTwo(second)}
	want := []string{"build_created #1 pending", "build_started #1 running"}
	for _, p := range []string{first, second} {
		want = append(want,
			"pipeline_started #1 "+p+" running",
			"step_started #1 "+p+"/"+step[p]+" running",
			"step_finished #1 "+p+"/"+step[p]+" "+status[p],
			"pipeline_finished #1 "+p+" "+status[p])
	}
	want = append(want, "build_finished #1 failure",
		"build_created #2 pending", "build_started #2 running",
		"pipeline_started #2 two running", "step_started #2 two/b running", "step_finished #2 two/b success",
		"pipeline_finished #2 two success", "build_finished #2 success")

	evs := events.snapshot()
	number := map[int64]int64{}
	for _, ev := range evs {
		if ev.Kind == build.BuildCreated {
			number[ev.BuildID] = ev.Number
		}
	}
	var got []string
	for _, ev := range evs {
		if ev.Kind == build.Resync {
			continue // the PostgreSQL relay started listening: no transition
		}
		got = append(got, describeOne(ev, number))
		if !ev.Local() || ev.Origin == "" {
			t.Errorf("event %s: local %v, origin %q; want a local event with its origin", describeOne(ev, number), ev.Local(), ev.Origin)
		}
		if ev.Time.IsZero() || ev.RepoID == 0 {
			t.Errorf("event %s has no time or repo: %+v", describeOne(ev, number), ev)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEventsOnTwoServers is acceptance test 2 of issue 9 on two servers
// sharing PostgreSQL: a build run by an agent of the first server
// produces exactly one commit status per state (the fake GitHub records
// every one) and one finish event on each server's subscribers.
func TestEventsOnTwoServers(t *testing.T) {
	t.Parallel()
	fake := &fakeGitHub{}
	gh := httptest.NewServer(fake)
	t.Cleanup(gh.Close)
	const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var ea, eb *eventLog
	a := startServerWith(t, "postgres", func(c *server.Config) {
		c.GitHubAPI, c.GitHubToken, c.SecretKey = gh.URL, "gh-token", key
	}, func(s *server.Server) { ea = subscribe(t, s) })
	b := startServerWith(t, "postgres", func(c *server.Config) {
		c.GitHubAPI, c.GitHubToken, c.SecretKey, c.Database = gh.URL, "gh-token", key, a.dsn
	}, func(s *server.Server) { eb = subscribe(t, s) })
	isResync := func(ev build.Event) bool { return ev.Kind == build.Resync }
	ea.wait("resync on the first server", isResync)
	eb.wait("resync on the second server", isResync)

	g := newGitRepo(t, map[string]string{".drone.yml": oneStep})
	sha := g.Git("rev-parse", "HEAD")
	a.must(http.StatusCreated, "POST", "/api/repos", adminToken, map[string]any{"git_url": g.URL(), "forge": "github"}, nil)
	a.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, map[string]string{"sha": sha}, nil)
	c := a.agentClient("agents")
	j := mustLease(t, c, "agent-1", dockerAgent)
	if err := c.Complete(context.Background(), j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	finished := func(ev build.Event) bool { return ev.Kind == build.BuildFinished && ev.Number == 1 }
	if ev := ea.wait("build 1 finished, on the first server", finished); !ev.Local() {
		t.Error("the first server sees the build it finished as remote")
	}
	if ev := eb.wait("build 1 finished, on the second server", finished); ev.Local() {
		t.Error("the second server sees the other's build as local")
	}

	// A barrier: the second server reports a build of its own. It would
	// have reported the first build before, had it acted on the other
	// server's events.
	sha2 := g.Commit("second", map[string]string{"README": "hi"})
	b.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, map[string]string{"sha": sha2}, nil)
	fake.wait(t, sha2+" ferry pending", time.Minute)
	created2 := func(ev build.Event) bool { return ev.Kind == build.BuildCreated && ev.Number == 2 }
	ea.wait("build 2 created, on the first server", created2)
	eb.wait("build 2 created, on the second server", created2)

	for name, l := range map[string]*eventLog{"first": ea, "second": eb} {
		n := 0
		for _, ev := range l.snapshot() {
			if finished(ev) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the %s server's subscriber saw build 1 finish %d times, want once", name, n)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	seen := map[string]int{}
	for _, s := range fake.described {
		if strings.HasPrefix(s, sha+" ") {
			seen[s]++
		}
	}
	final := map[string]int{}
	for _, s := range fake.statuses {
		final[s]++
	}
	for _, want := range []string{sha + " ferry success", sha + " ferry/build success"} {
		if final[want] != 1 {
			t.Errorf("status %q reported %d times, want once; all: %q", want, final[want], fake.described)
		}
	}
	for s, n := range seen {
		if n > 1 {
			t.Errorf("status %q reported %d times, want once; all: %q", s, n, fake.described)
		}
	}
}
