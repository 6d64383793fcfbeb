package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

func testBuilds(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	started := time.Now().Add(-time.Second)
	b := &store.Build{
		RepoID: r.ID, Event: store.EventPullRequest, Ref: "refs/pull/7/head", Branch: "main",
		SourceBranch: "feature", Commit: "c0ffee", Before: "bad", Message: "fix: things\n\nbody",
		Author: "alice", AuthorEmail: "alice@example.com", Sender: "alice", PullRequest: 7, Fork: true,
		Params: map[string]string{"DEPLOY": "yes"}, Approval: store.ApprovalPending,
		Warnings: []string{".drone.yml:3:1: warning: unknown key \"stpes\" in pipeline is ignored"},
		Status:   store.StatusBlocked, Started: started,
	}
	ps := []*store.Pipeline{
		{Name: "build", Steps: []*store.Step{{Name: "clone"}, {Name: "test"}}, Job: &store.Job{Status: store.StatusBlocked}},
		{Name: "deploy", DependsOn: []string{"build"}, Steps: []*store.Step{{Name: "push"}}},
	}
	must(t, s.Builds.Create(c, b, ps))
	eq(t, "number", b.Number, 1)
	eq(t, "version", b.Version, 1)
	if b.ID == 0 || ps[0].ID == 0 || ps[1].Steps[0].ID == 0 || ps[0].Job.ID == 0 {
		t.Fatalf("Create did not set IDs")
	}
	eq(t, "pipeline number", ps[1].Number, 2)
	eq(t, "step number", ps[0].Steps[1].Number, 2)
	eq(t, "pipeline status default", ps[1].Status, store.StatusPending)
	eq(t, "job build", ps[0].Job.BuildID, b.ID)
	eq(t, "job pipeline", ps[0].Job.PipelineID, ps[0].ID)

	got, err := s.Builds.Get(c, b.ID)
	must(t, err)
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("Get = %+v\nwant %+v", got, b)
	}
	got, gotRepo, err := s.Builds.GetWithRepo(c, b.ID)
	must(t, err)
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("GetWithRepo build = %+v\nwant %+v", got, b)
	}
	wantRepo, err := s.Repos.Get(c, r.ID)
	must(t, err)
	if !reflect.DeepEqual(gotRepo, wantRepo) {
		t.Fatalf("GetWithRepo repo = %+v\nwant %+v", gotRepo, wantRepo)
	}
	_, _, err = s.Builds.GetWithRepo(c, b.ID+1000)
	wantErr(t, err, store.ErrNotFound)
	got, err = s.Builds.GetNumber(c, r.ID, 1)
	must(t, err)
	eq(t, "GetNumber id", got.ID, b.ID)
	_, err = s.Builds.GetNumber(c, r.ID, 2)
	wantErr(t, err, store.ErrNotFound)

	jobs, err := s.Jobs.List(c, store.JobFilter{BuildID: b.ID})
	must(t, err)
	if len(jobs) != 1 || jobs[0].PipelineID != ps[0].ID || jobs[0].Status != store.StatusBlocked {
		t.Fatalf("jobs of the build = %+v, want one blocked job for the first pipeline", jobs)
	}

	// A build for a missing repo is refused and leaves nothing behind.
	err = s.Builds.Create(c, &store.Build{RepoID: r.ID + 100, Event: store.EventPush}, nil)
	wantErr(t, err, store.ErrNotFound)

	b2 := &store.Build{RepoID: r.ID, Event: store.EventPush}
	must(t, s.Builds.Create(c, b2, nil))
	eq(t, "second number", b2.Number, 2)
	eq(t, "default status", b2.Status, store.StatusPending)
	rr, err := s.Repos.Get(c, r.ID)
	must(t, err)
	eq(t, "repo build counter", rr.BuildCounter, 2)
}

func testBuildList(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	other := newRepo(t, s, "a/two")
	mk := func(repo *store.Repo, branch string, pr int64, event string, status store.Status) {
		sha := strings.Repeat(string(rune('a'+int(pr))), 40)
		must(t, s.Builds.Create(c, &store.Build{RepoID: repo.ID, Branch: branch, PullRequest: pr, Event: event, Status: status, Commit: sha}, nil))
	}
	mk(r, "main", 0, store.EventPush, store.StatusSuccess)        // 1
	mk(r, "dev", 0, store.EventPush, store.StatusFailure)         // 2
	mk(r, "main", 3, store.EventPullRequest, store.StatusSuccess) // 3
	mk(r, "main", 0, store.EventPush, store.StatusRunning)        // 4
	mk(other, "main", 0, store.EventPush, store.StatusSuccess)
	numbers := func(f store.BuildFilter) []int64 {
		t.Helper()
		bs, err := s.Builds.List(c, r.ID, f)
		must(t, err)
		var ns []int64
		for _, b := range bs {
			ns = append(ns, b.Number)
		}
		return ns
	}
	for _, tc := range []struct {
		name string
		f    store.BuildFilter
		want []int64
	}{
		{"all", store.BuildFilter{}, []int64{4, 3, 2, 1}},
		{"branch", store.BuildFilter{Branch: "main"}, []int64{4, 3, 1}},
		{"pull request", store.BuildFilter{PullRequest: 3}, []int64{3}},
		{"event", store.BuildFilter{Event: store.EventPush}, []int64{4, 2, 1}},
		{"commit", store.BuildFilter{Commit: strings.Repeat("d", 40)}, []int64{3}},
		{"status", store.BuildFilter{Status: store.StatusSuccess}, []int64{3, 1}},
		{"page", store.BuildFilter{Before: 4, Limit: 2}, []int64{3, 2}},
		{"combined", store.BuildFilter{Branch: "main", Status: store.StatusSuccess, Event: store.EventPush}, []int64{1}},
	} {
		got := numbers(tc.f)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}

func testBuildOptimisticUpdate(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	b, _ := newBuild(t, s, r, false, nil)
	first, err := s.Builds.Get(c, b.ID)
	must(t, err)
	second, err := s.Builds.Get(c, b.ID)
	must(t, err)

	finished := time.Now()
	first.Status, first.Finished, first.Error = store.StatusError, finished, "boom"
	must(t, s.Builds.Update(c, first))
	eq(t, "version after update", first.Version, 2)

	// The second copy is stale now: its update must not overwrite the first.
	second.Status = store.StatusSuccess
	wantErr(t, s.Builds.Update(c, second), store.ErrConflict)
	got, err := s.Builds.Get(c, b.ID)
	must(t, err)
	eq(t, "status", got.Status, store.StatusError)
	eq(t, "error", got.Error, "boom")
	eq(t, "version", got.Version, 2)
	sameTime(t, "finished", got.Finished, finished)

	got.Approval, got.ApprovedBy = store.ApprovalApproved, "bob"
	must(t, s.Builds.Update(c, got))
	got, err = s.Builds.Get(c, b.ID)
	must(t, err)
	eq(t, "approval", got.Approval, store.ApprovalApproved)
	eq(t, "approved by", got.ApprovedBy, "bob")

	wantErr(t, s.Builds.Update(c, &store.Build{ID: b.ID + 100, Version: 1}), store.ErrNotFound)
}

// testBuildNumbersConcurrent creates builds of two repos from many
// goroutines at once: each repo's numbers must be exactly 1..n.
func testBuildNumbersConcurrent(t *testing.T, s *store.Store) {
	c := ctx(t)
	repos := []*store.Repo{newRepo(t, s, "a/one"), newRepo(t, s, "a/two")}
	const workers, perWorker = 8, 10
	var mu sync.Mutex
	seen := map[int64]map[int64]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				r := repos[(w+i)%2]
				b := &store.Build{RepoID: r.ID, Event: store.EventPush}
				p := &store.Pipeline{Name: "p", Steps: []*store.Step{{Name: "s"}}}
				if err := s.Builds.Create(c, b, []*store.Pipeline{p}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[r.ID] == nil {
					seen[r.ID] = map[int64]int{}
				}
				seen[r.ID][b.Number]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, r := range repos {
		n := len(seen[r.ID])
		total += n
		for num := int64(1); num <= int64(n); num++ {
			if seen[r.ID][num] != 1 {
				t.Fatalf("repo %s: build number %d was given %d times (numbers %v)", r.Slug, num, seen[r.ID][num], seen[r.ID])
			}
		}
		bs, err := s.Builds.List(c, r.ID, store.BuildFilter{Limit: 1000})
		must(t, err)
		eq(t, "stored builds of "+r.Slug, len(bs), n)
	}
	eq(t, "builds created", total, workers*perWorker)
}

func testPipelinesAndSteps(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	b, ps := newBuild(t, s, r, false, map[string][]string{"a": {"clone", "build"}, "b": {"clone", "lint", "test"}})

	got, err := s.Pipelines.List(c, b.ID)
	must(t, err)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("List = %+v", got)
	}
	if len(got[0].Steps) != 2 || len(got[1].Steps) != 3 || got[1].Steps[2].Name != "test" || got[1].Steps[2].Number != 3 {
		t.Fatalf("steps = %+v / %+v", got[0].Steps, got[1].Steps)
	}

	p := got[1]
	started := time.Now()
	p.Status, p.Agent, p.Started = store.StatusRunning, "runner-1", started
	must(t, s.Pipelines.Update(c, p))
	p2, err := s.Pipelines.Get(c, ps[1].ID)
	must(t, err)
	eq(t, "status", p2.Status, store.StatusRunning)
	eq(t, "agent", p2.Agent, "runner-1")
	sameTime(t, "started", p2.Started, started)
	eq(t, "steps loaded by Get", len(p2.Steps), 3)

	st := p2.Steps[1]
	finished := started.Add(1500 * time.Millisecond)
	st.Status, st.ExitCode, st.Error, st.Started, st.Finished = store.StatusFailure, 2, "exit status 2", started, finished
	must(t, s.Steps.Update(c, st))
	gs, err := s.Steps.Get(c, st.ID)
	must(t, err)
	if *gs != *st {
		t.Fatalf("step after Update = %+v\nwant %+v", gs, st)
	}
	wantErr(t, s.Steps.Update(c, &store.Step{ID: st.ID + 1000}), store.ErrNotFound)

	// Advance moves an unfinished step on, and never a finished one back.
	next := *p2.Steps[2]
	next.Status, next.Started = store.StatusRunning, started
	ok, err := s.Steps.Advance(c, &next)
	must(t, err)
	eq(t, "Advance of a pending step wrote", ok, true)
	again := next
	again.Started = started.Add(time.Second)
	ok, err = s.Steps.Advance(c, &again)
	must(t, err)
	eq(t, "Advance of a running step to running wrote", ok, false)
	next.Status, next.ExitCode, next.Finished = store.StatusSuccess, 0, finished
	ok, err = s.Steps.Advance(c, &next)
	must(t, err)
	eq(t, "Advance of a running step wrote", ok, true)
	back := next
	back.Status, back.Finished = store.StatusRunning, time.Time{}
	ok, err = s.Steps.Advance(c, &back)
	must(t, err)
	eq(t, "Advance of a finished step wrote", ok, false)
	gs, err = s.Steps.Get(c, next.ID)
	must(t, err)
	if *gs != next {
		t.Fatalf("step after Advance = %+v\nwant %+v", gs, next)
	}
	_, err = s.Steps.Advance(c, &store.Step{ID: st.ID + 1000, Status: store.StatusRunning})
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Pipelines.Get(c, ps[1].ID+1000)
	wantErr(t, err, store.ErrNotFound)

	// Rerun writes only while the pipeline runs since the given time:
	// of two callers re-running one attempt, one wins.
	{
		rp, err := s.Pipelines.Get(c, ps[1].ID)
		must(t, err)
		since := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
		rp.Status, rp.Started, rp.Agent = store.StatusRunning, since, "runner-1"
		must(t, s.Pipelines.Update(c, rp))
		again := *rp
		again.Status, again.Started, again.Agent = store.StatusPending, time.Time{}, ""
		ok, err := s.Pipelines.Rerun(c, &again, since)
		must(t, err)
		eq(t, "first Rerun wrote", ok, true)
		late := *rp
		late.Started = since.Add(time.Second)
		ok, err = s.Pipelines.Rerun(c, &late, since)
		must(t, err)
		eq(t, "second Rerun of the same attempt wrote", ok, false)
		got, err := s.Pipelines.Get(c, rp.ID)
		must(t, err)
		eq(t, "pipeline status after Rerun", got.Status, store.StatusPending)
		eq(t, "pipeline started after Rerun", got.Started.IsZero(), true)
		_, err = s.Pipelines.Rerun(c, &store.Pipeline{ID: rp.ID + 1000, Status: store.StatusPending}, since)
		wantErr(t, err, store.ErrNotFound)
		got.Status = ps[1].Status
		must(t, s.Pipelines.Update(c, got))
	}

	// Finish writes only while the pipeline is unfinished: of two racing
	// callers, one wins.
	p.Status, p.Finished = store.StatusFailure, finished
	ok, err = s.Pipelines.Finish(c, p)
	must(t, err)
	eq(t, "first Finish wrote", ok, true)
	late := *p
	late.Status, late.Error = store.StatusError, "too late"
	ok, err = s.Pipelines.Finish(c, &late)
	must(t, err)
	eq(t, "second Finish wrote", ok, false)
	p3, err := s.Pipelines.Get(c, p.ID)
	must(t, err)
	eq(t, "status after two Finish calls", p3.Status, store.StatusFailure)
	eq(t, "error after two Finish calls", p3.Error, "")
	_, err = s.Pipelines.Finish(c, &store.Pipeline{ID: p.ID + 1000, Status: store.StatusSuccess})
	wantErr(t, err, store.ErrNotFound)
}

func testPipelineStart(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	b, ps := newBuild(t, s, r, false, map[string][]string{"a": {"clone"}, "b": {"clone"}, "c": {"clone"}})
	at := time.Now().Add(-time.Minute)

	// The first pipeline to start starts its pending build too.
	p, bs, err := s.Pipelines.Start(c, ps[0].ID, "runner-1", at)
	must(t, err)
	eq(t, "first Start marked the pipeline", p, true)
	eq(t, "first Start marked the build", bs, true)
	got, err := s.Pipelines.Get(c, ps[0].ID)
	must(t, err)
	eq(t, "pipeline status", got.Status, store.StatusRunning)
	eq(t, "pipeline agent", got.Agent, "runner-1")
	sameTime(t, "pipeline started", got.Started, at)
	gb, err := s.Builds.Get(c, b.ID)
	must(t, err)
	eq(t, "build status", gb.Status, store.StatusRunning)
	sameTime(t, "build started", gb.Started, at)
	eq(t, "build version", gb.Version, b.Version+1)

	// A second pipeline leaves the running build alone.
	p, bs, err = s.Pipelines.Start(c, ps[1].ID, "runner-2", at.Add(time.Second))
	must(t, err)
	eq(t, "second Start marked the pipeline", p, true)
	eq(t, "second Start marked the build", bs, false)
	gb2, err := s.Builds.Get(c, b.ID)
	must(t, err)
	sameTime(t, "build started after the second Start", gb2.Started, at)
	eq(t, "build version after the second Start", gb2.Version, gb.Version)

	// A pipeline that is not pending (running, or missing) is not touched.
	p, bs, err = s.Pipelines.Start(c, ps[0].ID, "runner-3", at.Add(2*time.Second))
	must(t, err)
	eq(t, "Start of a running pipeline marked it", p, false)
	eq(t, "Start of a running pipeline marked the build", bs, false)
	got, err = s.Pipelines.Get(c, ps[0].ID)
	must(t, err)
	eq(t, "agent after a second Start", got.Agent, "runner-1")
	p, _, err = s.Pipelines.Start(c, ps[2].ID+1000, "runner-3", at)
	must(t, err)
	eq(t, "Start of a missing pipeline marked it", p, false)

	// A build waiting for approval does not start.
	b2 := &store.Build{RepoID: r.ID, Event: store.EventPush, Approval: store.ApprovalPending, Status: store.StatusPending}
	ps2 := []*store.Pipeline{{Name: "a"}}
	must(t, s.Builds.Create(c, b2, ps2))
	p, bs, err = s.Pipelines.Start(c, ps2[0].ID, "runner-1", at)
	must(t, err)
	eq(t, "Start in a build awaiting approval marked the pipeline", p, true)
	eq(t, "Start in a build awaiting approval marked the build", bs, false)
}

func testDeleteCascades(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	b, ps := newBuild(t, s, r, true, map[string][]string{"a": {"one"}})
	stepID := ps[0].Steps[0].ID
	must(t, s.Logs.Append(c, stepID, store.LogLine{Seq: 0, Text: "hello"}))
	must(t, s.Secrets.Create(c, &store.Secret{RepoID: r.ID, Name: "x", Value: []byte("y")}))

	must(t, s.Builds.Delete(c, b.ID))
	_, err := s.Steps.Get(c, stepID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Jobs.Get(c, ps[0].Job.ID)
	wantErr(t, err, store.ErrNotFound)
	info, err := s.Logs.Info(c, stepID)
	must(t, err)
	eq(t, "log lines after delete", info.Lines, 0)

	must(t, s.Repos.Delete(c, r.ID))
	ss, err := s.Secrets.List(c, r.ID)
	must(t, err)
	eq(t, "secrets after repo delete", len(ss), 0)
}

func testPipelineComplete(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/complete")
	b, ps := newBuild(t, s, r, true, map[string][]string{"a": {"clone"}, "b": {"clone", "test"}})
	ag := newAgent(t, s, "runner-1", label("os", "linux"))
	jobs := map[int64]*store.Job{}
	for range ps {
		j, err := s.Jobs.Lease(c, ag.ID, ag.Labels, 10, time.Minute)
		must(t, err)
		jobs[j.PipelineID] = j
		_, _, err = s.Pipelines.Start(c, j.PipelineID, "", j.Started)
		must(t, err)
	}
	ja, jb := jobs[ps[0].ID], jobs[ps[1].ID]

	// Another pipeline still runs: nothing changes.
	must(t, s.Jobs.Complete(c, ja.ID, ja.LeaseToken, store.StatusSuccess, ""))
	done, err := s.Pipelines.Complete(c, ja.ID, "runner-1")
	must(t, err)
	eq(t, "Complete with another pipeline running", done == nil, true)
	got, err := s.Pipelines.Get(c, ps[0].ID)
	must(t, err)
	eq(t, "pipeline status after a refused Complete", got.Status, store.StatusRunning)
	got.Status, got.Finished = store.StatusSuccess, time.Now()
	_, err = s.Pipelines.Finish(c, got)
	must(t, err)

	// The last pipeline ends its steps; the build is left to the caller.
	before, err := s.Builds.Get(c, b.ID)
	must(t, err)
	test := ps[1].Steps[1]
	test.Status, test.Started = store.StatusRunning, time.Now()
	must(t, s.Steps.Update(c, test))
	must(t, s.Jobs.Complete(c, jb.ID, jb.LeaseToken, store.StatusError, "boom"))
	done, err = s.Pipelines.Complete(c, jb.ID, "runner-1")
	must(t, err)
	if done == nil {
		t.Fatal("Complete of the last pipeline did nothing")
	}
	eq(t, "completed pipeline status", done.Pipeline.Status, store.StatusError)
	eq(t, "completed pipeline agent", done.Pipeline.Agent, "runner-1")
	eq(t, "ended steps", len(done.Steps), 2)
	for _, st := range done.Steps {
		eq(t, "ended step "+st.Name+" is final", st.Status.Done(), true)
	}
	eq(t, "completed build ID", done.Build.ID, b.ID)
	eq(t, "completed build version", done.Build.Version, before.Version)
	eq(t, "completed build status", done.Build.Status, before.Status)
	eq(t, "completion pipelines", len(done.Pipelines), 2)
	for _, p := range done.Pipelines {
		eq(t, "completion pipeline "+p.Name+" is final", p.Status.Done(), true)
	}
	gb, err := s.Builds.Get(c, b.ID)
	must(t, err)
	eq(t, "stored build status after Complete", gb.Status, before.Status)
	eq(t, "stored build version after Complete", gb.Version, before.Version)
	// The caller finishes the build at the version Complete read.
	done.Build.Status, done.Build.Error, done.Build.Finished = store.StatusError, "b: boom", time.Now()
	must(t, s.Builds.Update(c, done.Build))
	gb, err = s.Builds.Get(c, b.ID)
	must(t, err)
	eq(t, "stored build status", gb.Status, store.StatusError)
	eq(t, "stored build error", gb.Error, "b: boom")
	eq(t, "stored build version", gb.Version, done.Build.Version)
	eq(t, "stored build finished", gb.Finished.IsZero(), false)
	gp, err := s.Pipelines.Get(c, ps[1].ID)
	must(t, err)
	eq(t, "stored pipeline error", gp.Error, "boom")
	stored, err := s.Jobs.Get(c, jb.ID)
	must(t, err)
	sameTime(t, "stored pipeline finished", gp.Finished, stored.Finished)
	eq(t, "running step status", gp.Steps[1].Status, store.StatusError)
	eq(t, "running step error", gp.Steps[1].Error, "boom")
	eq(t, "pending step status", gp.Steps[0].Status, store.StatusSkipped)

	// A second Complete finds the pipeline finished.
	done, err = s.Pipelines.Complete(c, jb.ID, "runner-1")
	must(t, err)
	eq(t, "second Complete", done == nil, true)
}

// testBuildEffects claims, completes and lists the side effects of
// finished builds: one claim at a time, a claim that ran out can be taken
// again, and done effects are never pending.
func testBuildEffects(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/effects")
	finish := func(at time.Time) int64 {
		b, _ := newBuild(t, s, r, false, nil)
		got, err := s.Builds.Get(c, b.ID)
		must(t, err)
		got.Status, got.Started, got.Finished = store.StatusSuccess, at, at
		must(t, s.Builds.Update(c, got))
		return b.ID
	}
	t0 := time.Now().Add(-time.Hour)
	newBuild(t, s, r, false, nil) // unfinished: never pending
	finish(t0.Add(-time.Hour))    // before the window
	a := finish(t0.Add(time.Minute))
	b := finish(t0.Add(2 * time.Minute))
	now := t0.Add(10 * time.Minute)

	pending, err := s.BuildEffects.Pending(c, t0, now, now, 10)
	must(t, err)
	eq(t, "pending", fmt.Sprint(pending), fmt.Sprint([]int64{a, b}))

	ok, err := s.BuildEffects.Claim(c, a, "one", now, now.Add(time.Minute))
	must(t, err)
	eq(t, "first claim", ok, true)
	ok, err = s.BuildEffects.Claim(c, a, "two", now.Add(time.Second), now.Add(time.Minute))
	must(t, err)
	eq(t, "second claim while the first runs", ok, false)
	pending, err = s.BuildEffects.Pending(c, t0, now, now.Add(time.Second), 10)
	must(t, err)
	eq(t, "pending while claimed", fmt.Sprint(pending), fmt.Sprint([]int64{b}))

	// The first claimer died: once its claim ran out, another takes it.
	later := now.Add(2 * time.Minute)
	pending, err = s.BuildEffects.Pending(c, t0, now, later, 10)
	must(t, err)
	eq(t, "pending after the claim ran out", fmt.Sprint(pending), fmt.Sprint([]int64{a, b}))
	ok, err = s.BuildEffects.Claim(c, a, "two", later, later.Add(time.Minute))
	must(t, err)
	eq(t, "claim after the first ran out", ok, true)
	must(t, s.BuildEffects.Done(c, a))
	ok, err = s.BuildEffects.Claim(c, a, "three", later.Add(time.Hour), later.Add(2*time.Hour))
	must(t, err)
	eq(t, "claim when done", ok, false)
	pending, err = s.BuildEffects.Pending(c, t0, now, later.Add(time.Hour), 1)
	must(t, err)
	eq(t, "pending when one is done (limit 1)", fmt.Sprint(pending), fmt.Sprint([]int64{b}))
	wantErr(t, s.BuildEffects.Done(c, b+100), store.ErrNotFound)
}

// testBuildEffectsClaimedOnce claims one build's side effects from many
// goroutines at once (on PostgreSQL, as many servers would): exactly one
// claim succeeds.
func testBuildEffectsClaimedOnce(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/claims")
	b, _ := newBuild(t, s, r, false, nil)
	now := time.Now()
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 16 {
		wg.Go(func() {
			ok, err := s.BuildEffects.Claim(c, b.ID, fmt.Sprint("server-", i), now, now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	eq(t, "claims won", won.Load(), int32(1))
}
