package program

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/pipeline"
)

// TestWoodpeckerConversion converts Woodpecker's constructs (as real
// Woodpecker files write them, docs/compatibility.md) and compares the
// pipelines with what Woodpecker runs.
func TestWoodpeckerConversion(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".woodpecker/build.yaml": `
variables:
  - &golang golang:1.22
when:
  - event: push
    branch: main
  - event: manual
matrix:
  GO: ["1.21", "1.22"]
labels:
  platform: linux/arm64
  pool: fast
skip_clone: true
services:
  database:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: secret
steps:
  - name: test
    image: golang:${GO}
    commands:
      - go test ./...
    environment:
      TOKEN:
        from_secret: token
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
  - name: script
    image: alpine
    commands: |
      echo one
      echo two
    depends_on: [test]
    when:
      - status: [success, failure]
`,
		".woodpecker/deploy.yml": `
depends_on: [build]
runs_on: [success]
steps:
  publish:
    image: plugins/docker
    secrets: [docker_password, {source: token, target: api_token}]
    settings:
      repo: example/app
    pull: true
    group: publish
    when:
      event: [tag, deployment]
      path:
        include: ["src/**"]
        on_empty: false
`,
		".woodpecker/notes.txt": "not a workflow",
	})
	in := pushMain
	out, warnings, err := Convert(context.Background(), ".woodpecker", nil, Options{Input: in, Read: readDir(dir), List: listDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	got := steps(t, ".woodpecker (generated YAML)", out)
	want := `pipeline build (GO=1.21) type=docker platform=linux/arm64 depends_on=[] trigger.branch=[]
  step test image=golang:1.21 commands=["go test ./..."] env=map[TOKEN:{token <nil>}] when.event=[]
  step script image=alpine commands=["echo one\necho two\n"] env=map[] when.event=[]
pipeline build (GO=1.22) type=docker platform=linux/arm64 depends_on=[] trigger.branch=[]
  step test image=golang:1.22 commands=["go test ./..."] env=map[TOKEN:{token <nil>}] when.event=[]
  step script image=alpine commands=["echo one\necho two\n"] env=map[] when.event=[]
pipeline deploy type=docker platform=/ depends_on=[build (GO=1.21) build (GO=1.22)] trigger.branch=[]
  step publish image=plugins/docker commands=[] env=map[API_TOKEN:{token <nil>} DOCKER_PASSWORD:{docker_password <nil>}] when.event=[tag promote]
`
	if got != want {
		t.Errorf("pipelines:\n%s\nwant:\n%s\nYAML:\n%s", got, want, out)
	}
	// A group is run as Woodpecker 1.x ran it (TestWoodpeckerGroupsRunInParallel), without a warning.
	if strings.Contains(strings.Join(warnings, "\n"), "group") {
		t.Errorf("a warning about group:\n%s", strings.Join(warnings, "\n"))
	}
	for _, w := range []string{
		"any:", "- event: custom", "status:", "- success", "clone:\n  disable: true", "pool: fast", "GO: \"1.21\"",
		"host:\n      path: /var/run/docker.sock", "pull: always", "paths:\n",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("generated YAML lacks %q:\n%s", w, out)
		}
	}
}

func TestWoodpeckerErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"no steps", "when:\n  event: push\n", ".woodpecker.yml:1:1: the workflow has no steps"},
		{"yaml", "steps:\n  - name: a\n    image: [\n", ".woodpecker.yml:4:1: invalid YAML"},
		{"steps shape", "steps: 3\n", ".woodpecker.yml:1:8: steps must be a list or a map of steps"},
		{"matrix shape", "matrix:\n  GO: 1\nsteps: [{name: a, image: b}]\n", ".woodpecker.yml:2:7: matrix axis \"GO\" must be a list"},
		// Woodpecker's yaml.v3 refuses a repeated key where Drone keeps the later value.
		{"duplicate key", "steps:\n  build:\n    image: alpine\n    image: golang\n", ".woodpecker.yml:4:5: key \"image\" is defined twice (first at line 3)"},
		{"duplicate step", "steps:\n  build:\n    image: alpine\n  build:\n    image: golang\n", ".woodpecker.yml:4:3: key \"build\" is defined twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Convert(context.Background(), ".woodpecker.yml", []byte(tc.src), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func listDir(dir string) func(string) ([]string, error) {
	return func(p string) ([]string, error) {
		entries, err := readDirNames(dir, p)
		return entries, err
	}
}

func TestWoodpeckerAliasBombs(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := range 9 {
		name := string(rune('b' + i))
		bomb += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	bomb += "steps:\n  - name: s\n    image: alpine\n    settings:\n      x: *" + prev + "\n"
	_, _, err := Convert(context.Background(), ".woodpecker.yml", []byte(bomb), Options{})
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("err = %v, want the expansion refused", err)
	}
}

func TestWoodpeckerMergesListsIntoLists(t *testing.T) {
	src := `variables:
  - &paths ['go.*', '**/*.go']
steps:
  - name: test
    image: golang
    commands: [go test ./...]
    when:
      path:
        - <<: *paths
        - '.woodpecker/**'
`
	out, _, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Parse("w", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := cfg.Pipelines[0].Steps[0].When.Paths.Include
	if want := []string{"go.*", "**/*.go", ".woodpecker/**"}; !slices.Equal(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}
}

func TestWoodpeckerEmptyDependsOnStartsAtOnce(t *testing.T) {
	src := "steps:\n  a:\n    image: x\n    depends_on: []\n  b:\n    image: x\n    depends_on: []\n"
	out, _, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Parse("w", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, st := range cfg.Pipelines[0].Steps {
		if !slices.Equal(st.DependsOn, []string{"clone"}) {
			t.Errorf("step %s depends on %q, want [clone] (parallel after the clone)", st.Name, st.DependsOn)
		}
	}
}

func TestWoodpeckerEventNames(t *testing.T) {
	in := pushMain
	in.Build.Event = "custom"
	out, _, err := Convert(context.Background(), ".woodpecker.yml", []byte("steps:\n  a:\n    image: x\n"), Options{Input: in})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Parse("w", out)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Pipelines[0].Environment["CI_PIPELINE_EVENT"].Raw; got != "manual" {
		t.Errorf("CI_PIPELINE_EVENT = %v, want manual (Woodpecker's name for a manual build)", got)
	}
	out, _, _ = Convert(context.Background(), ".woodpecker.yml", []byte("steps:\n  a:\n    image: x\n"), Options{Input: pushMain})
	if strings.Contains(string(out), "CI_PIPELINE_EVENT") {
		t.Errorf("a push needs no override:\n%s", out)
	}
}

// TestWoodpeckerBranchesJoinWhen checks that the "branches" of Woodpecker
// before 1.0 is added to the workflow's when, as Woodpecker 1.x did,
// whichever of the two keys is written first.
func TestWoodpeckerBranchesJoinWhen(t *testing.T) {
	for _, src := range []string{
		"branches: main\nwhen:\n  event: push\nsteps:\n  a:\n    image: x\n",
		"when:\n  event: push\nbranches: main\nsteps:\n  a:\n    image: x\n",
	} {
		out, warnings, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{Input: pushMain})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pipeline.Parse("w", out)
		if err != nil {
			t.Fatal(err)
		}
		tr := cfg.Pipelines[0].Trigger
		if !slices.Equal(tr.Branch.Include, []string{"main"}) || !slices.Equal(tr.Event.Include, []string{"push"}) {
			t.Errorf("%q: trigger branch %v event %v, want [main] and [push]", src, tr.Branch.Include, tr.Event.Include)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], `"branches" is Woodpecker's form before 1.0`) {
			t.Errorf("warnings = %q", warnings)
		}
	}
}

// TestWoodpeckerGroupsRunInParallel checks the step groups of Woodpecker
// before 2.0: consecutive steps of one group run in parallel, each group
// after the steps before it, the first after the clone.
func TestWoodpeckerGroupsRunInParallel(t *testing.T) {
	src := `pipeline:
  deps:
    image: x
  style:
    image: x
    group: tests
  unit:
    image: x
    group: tests
  build:
    image: x
    group: build
  publish:
    image: x
`
	out, warnings, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{Input: pushMain})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Parse("w", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := map[string][]string{
		"deps":    {"clone"},
		"style":   {"deps"},
		"unit":    {"deps"},
		"build":   {"style", "unit"},
		"publish": {"build"},
	}
	for _, st := range cfg.Pipelines[0].Steps {
		if !slices.Equal(st.DependsOn, want[st.Name]) {
			t.Errorf("step %s depends on %v, want %v", st.Name, st.DependsOn, want[st.Name])
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"pipeline"`) || strings.Contains(string(out), "x-woodpecker-group") {
		t.Errorf("warnings = %q\n%s", warnings, out)
	}
}

func TestWoodpeckerGroupWithDependsOn(t *testing.T) {
	src := "steps:\n  a:\n    image: x\n    group: g\n  b:\n    image: x\n    depends_on: [a]\n"
	_, warnings, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{Input: pushMain})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], ".woodpecker.yml:4:12: warning: group is ignored") {
		t.Errorf("warnings = %q", warnings)
	}
}
