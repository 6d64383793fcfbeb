// Package storetest is the conformance suite that every store driver must
// pass. A driver's tests call Run with a function that opens a fresh, empty
// store, and BenchmarkLease for the queue benchmark:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t testing.TB) *store.Store { return openFresh(t) })
//	}
//
// The suite runs its tests one after another (never in parallel), because
// the large-log test measures the heap.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// Opener returns a new, empty, migrated store that the caller may use until
// the test ends; the opener registers its cleanup with t.
type Opener func(t testing.TB) *store.Store

// Run runs the whole conformance suite against stores made by open. Each
// subtest gets its own store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *store.Store)
	}{
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"Passwords", testPasswords},
		{"Repos", testRepos},
		{"RepoPolling", testRepoPolling},
		{"RepoPollRefs", testRepoPollRefs},
		{"Perms", testPerms},
		{"Builds", testBuilds},
		{"BuildList", testBuildList},
		{"BuildOptimisticUpdate", testBuildOptimisticUpdate},
		{"BuildNumbersConcurrent", testBuildNumbersConcurrent},
		{"BuildEffects", testBuildEffects},
		{"BuildEffectsClaimedOnce", testBuildEffectsClaimedOnce},
		{"PipelinesAndSteps", testPipelinesAndSteps},
		{"PipelineStart", testPipelineStart},
		{"PipelineComplete", testPipelineComplete},
		{"DeleteCascades", testDeleteCascades},
		{"Logs", testLogs},
		{"LogAppendIdempotent", testLogAppendIdempotent},
		{"LogLargeStreamed", testLogLargeStreamed},
		{"Secrets", testSecrets},
		{"Credentials", testCredentials},
		{"Agents", testAgents},
		{"Crons", testCrons},
		{"JobLeaseMatching", testJobLeaseMatching},
		{"JobLeaseCapacity", testJobLeaseCapacity},
		{"JobBlockedAndDelayed", testJobBlockedAndDelayed},
		{"JobLeaseConcurrent", func(t *testing.T, s *store.Store) { LeaseExactlyOnce(t, []*store.Store{s}, 200, 16) }},
		{"JobComplete", testJobComplete},
		{"JobLeaseExpiry", testJobLeaseExpiry},
		{"JobCancel", testJobCancel},
		{"JobFailStalePending", testJobFailStalePending},
		{"JobStats", testJobStats},
	}
	tests = append(tests, deployTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// ctx returns a context for one test, cancelled when it ends or after a
// minute.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func eq[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// sameTime compares times at the stores' microsecond precision.
func sameTime(t testing.TB, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want.Truncate(time.Microsecond)) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// fixture creates a repo and returns it.
func newRepo(t testing.TB, s *store.Store, slug string) *store.Repo {
	t.Helper()
	r := &store.Repo{Slug: slug, GitURL: "https://git.example.com/" + slug + ".git", Active: true}
	must(t, s.Repos.Create(ctx(t), r))
	return r
}

// newBuild creates a build of repo with one pipeline per name, each with
// the given steps, and a pending job per pipeline when withJobs is set.
func newBuild(t testing.TB, s *store.Store, repo *store.Repo, withJobs bool, pipelines map[string][]string) (*store.Build, []*store.Pipeline) {
	t.Helper()
	b := &store.Build{RepoID: repo.ID, Event: store.EventPush, Ref: "refs/heads/main", Branch: "main", Commit: "abc123"}
	var ps []*store.Pipeline
	for _, name := range slices.Sorted(maps.Keys(pipelines)) {
		p := &store.Pipeline{Name: name}
		for _, st := range pipelines[name] {
			p.Steps = append(p.Steps, &store.Step{Name: st})
		}
		if withJobs {
			p.Job = &store.Job{Labels: map[string]string{"os": "linux"}, Payload: []byte("plan:" + name)}
		}
		ps = append(ps, p)
	}
	must(t, s.Builds.Create(ctx(t), b, ps))
	return b, ps
}

// newAgent registers an agent.
func newAgent(t testing.TB, s *store.Store, name string, labels map[string]string) *store.Agent {
	t.Helper()
	a := &store.Agent{Name: name, Labels: labels, Capacity: 1, LastSeen: time.Now()}
	must(t, s.Agents.Register(ctx(t), a))
	return a
}

func label(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func fmtIDs(js []*store.Job) string {
	s := ""
	for _, j := range js {
		s += fmt.Sprintf("%d:%s ", j.ID, j.Status)
	}
	return s
}
