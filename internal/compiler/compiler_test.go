package compiler

import (
	"slices"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/pipeline"
)

func TestEncodeLikeDrone(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"plain", "plain"},
		{true, "true"},
		{42, "42"},
		{1.5, "1.5"},
		{nil, ""},
		{[]any{"a", "b", 3}, "a,b,3"},
		{[]any{map[string]any{"k": "v"}}, `[{"k":"v"}]`},
		{map[string]any{"b": []any{1, 2}, "a": "x"}, `{"a":"x","b":[1,2]}`},
	}
	for _, tt := range tests {
		if got := Encode(tt.in); got != tt.want {
			t.Errorf("Encode(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func compile(t *testing.T, yml string, opts Options) *backend.Spec {
	t.Helper()
	cfg, err := pipeline.Parse("test.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(cfg.Pipelines[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.Spec
}

func TestEnvironmentPrecedenceAndSettings(t *testing.T) {
	spec := compile(t, `
kind: pipeline
name: p
environment: {A: pipeline, B: pipeline}
steps:
- name: s
  image: img
  environment: {B: step, TOKEN: {from_secret: tok}}
  settings: {tags: [latest, v1], dry_run: true, password: {from_secret: tok}, empty: null}
`, Options{Env: map[string]string{"A": "flag", "C": "flag", "DRONE_BRANCH": "override"}, Secrets: map[string]string{"tok": "s3cret"},
		Metadata: &Metadata{Commit: Commit{Branch: "main", SHA: "abc"}, Build: Build{Event: "push"}}})
	env := spec.Steps[0].Env
	want := map[string]string{
		"A": "pipeline", "B": "step", "C": "flag", "TOKEN": "s3cret",
		"PLUGIN_TAGS": "latest,v1", "PLUGIN_DRY_RUN": "true", "PLUGIN_PASSWORD": "s3cret",
		"DRONE_BRANCH": "override", "DRONE_COMMIT_SHA": "abc", "FERRY_COMMIT_SHA": "abc", "CI_COMMIT_SHA": "abc",
		"DRONE_STEP_NAME": "s", "DRONE_STAGE_NAME": "p", "DRONE_WORKSPACE": "/drone/src",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["PLUGIN_EMPTY"]; ok {
		t.Error("a null setting must be skipped")
	}
	if strings.Join(spec.Steps[0].Secrets, ",") != "s3cret" {
		t.Errorf("secrets to mask = %v", spec.Steps[0].Secrets)
	}
}

func TestGraphSerialUnlessDependsOn(t *testing.T) {
	serial := compile(t, "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i}\n- {name: b, image: i}\n- {name: c, image: i}\n", Options{})
	if got := serial.Steps[2].DependsOn; len(got) != 1 || got[0] != "b" {
		t.Errorf("serial c depends on %v, want [b]", got)
	}
	dag := compile(t, "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i}\n- {name: b, image: i}\n- {name: c, image: i, depends_on: [a]}\n", Options{})
	if len(dag.Steps[1].DependsOn) != 0 || dag.Steps[2].DependsOn[0] != "a" {
		t.Errorf("dag deps: b %v, c %v", dag.Steps[1].DependsOn, dag.Steps[2].DependsOn)
	}
}

// TestDependsOnCloneAndServices checks the dependencies on what starts
// before the steps, as real Drone files write them (grafana's loki, a step
// waiting for its database service): they are met at once, where the
// runtime, which waits only for steps, skipped those steps before.
func TestDependsOnCloneAndServices(t *testing.T) {
	spec := compile(t, `
kind: pipeline
name: p
steps:
- {name: a, image: i, depends_on: [clone]}
- {name: b, image: i, depends_on: [clone, db, a]}
services:
- {name: db, image: postgres}
`, Options{})
	if len(spec.Steps[0].DependsOn) != 0 || !slices.Equal(spec.Steps[1].DependsOn, []string{"a"}) {
		t.Errorf("deps: a %v, b %v; want [] and [a]", spec.Steps[0].DependsOn, spec.Steps[1].DependsOn)
	}
	// With the automatic clone disabled, "clone" is a step of the file.
	spec = compile(t, `
kind: pipeline
name: p
clone: {disable: true}
steps:
- {name: clone, image: alpine/git}
- {name: b, image: i, depends_on: [clone]}
`, Options{})
	if !slices.Equal(spec.Steps[1].DependsOn, []string{"clone"}) {
		t.Errorf("b depends on %v, want [clone]", spec.Steps[1].DependsOn)
	}
}

func TestRunPolicyAndWhen(t *testing.T) {
	spec := compile(t, `
kind: pipeline
name: p
steps:
- {name: default, image: i}
- {name: fail, image: i, when: {status: [failure]}}
- {name: always, image: i, when: {status: [success, failure]}}
- {name: tags-only, image: i, when: {event: [tag]}}
- {name: main-only, image: i, when: {branch: {include: [main], exclude: [feature/*]}}}
`, Options{Metadata: &Metadata{Commit: Commit{Branch: "main"}, Build: Build{Event: "push"}}})
	want := []backend.RunPolicy{backend.RunOnSuccess, backend.RunOnFailure, backend.RunAlways, backend.RunNever, backend.RunOnSuccess}
	for i, w := range want {
		if spec.Steps[i].RunPolicy != w {
			t.Errorf("%s: policy %s, want %s", spec.Steps[i].Name, spec.Steps[i].RunPolicy, w)
		}
	}
}

func TestPrivilegedNeedsTrust(t *testing.T) {
	cfg, err := pipeline.Parse("t.yml", []byte("kind: pipeline\nname: p\nsteps:\n- {name: a, image: i, privileged: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(cfg.Pipelines[0], Options{}); err == nil || !strings.Contains(err.Error(), "--trusted") {
		t.Fatalf("err = %v, want a --trusted hint", err)
	}
	if _, err := Compile(cfg.Pipelines[0], Options{Trusted: true}); err != nil {
		t.Fatal(err)
	}
}

func TestSemverAndPullRequestEnv(t *testing.T) {
	env := Environ(&Metadata{Commit: Commit{Ref: "refs/tags/v1.2.3-rc.1+build.5"}, Build: Build{Event: "tag"}})
	want := map[string]string{"DRONE_TAG": "v1.2.3-rc.1+build.5", "DRONE_SEMVER": "1.2.3-rc.1+build.5", "DRONE_SEMVER_MAJOR": "1",
		"DRONE_SEMVER_PRERELEASE": "rc.1", "DRONE_SEMVER_BUILD": "build.5", "DRONE_SEMVER_SHORT": "1.2.3"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if env := Environ(&Metadata{Commit: Commit{Ref: "refs/tags/release-x"}}); env["DRONE_SEMVER_ERROR"] == "" {
		t.Error("a non-semver tag must set DRONE_SEMVER_ERROR")
	}
	if env := Environ(&Metadata{Commit: Commit{Ref: "refs/pull/42/head"}, Build: Build{Event: "pull_request"}}); env["DRONE_PULL_REQUEST"] != "42" {
		t.Errorf("DRONE_PULL_REQUEST = %q", env["DRONE_PULL_REQUEST"])
	}
}
