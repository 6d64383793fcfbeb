package program

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/pipeline"
)

var pushMain = Input{
	Repo:  Repo{Slug: "example/app", Name: "app", Namespace: "example", Branch: "main", Config: ".drone.star"},
	Build: Build{Event: "push", Branch: "main", Target: "main", Ref: "refs/heads/main", Commit: "abc123", After: "abc123"},
}

// readDir reads repository files from dir, as exec and lint do.
func readDir(dir string) ReadFile {
	return func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, p)) }
}

// steps lists "pipeline/step image commands" for every step of a parsed
// config, to compare what a program generates with hand-written YAML.
func steps(t *testing.T, name string, data []byte) string {
	t.Helper()
	cfg, err := pipeline.Parse(name, data)
	if err != nil {
		t.Fatalf("the generated YAML does not parse:\n%v\n%s", err, data)
	}
	var b strings.Builder
	for _, p := range cfg.Pipelines {
		fmt.Fprintf(&b, "pipeline %s type=%s platform=%s/%s depends_on=%v trigger.branch=%v\n", p.Name, p.Type,
			p.Platform.OS, p.Platform.Arch, p.DependsOn, p.Trigger.Branch.Include)
		for _, s := range p.Steps {
			fmt.Fprintf(&b, "  step %s image=%s commands=%q env=%v when.event=%v\n", s.Name, s.Image, s.Commands, s.Environment, s.When.Event.Include)
		}
	}
	return b.String()
}

// handWritten is the YAML the generator programs below must be equal to.
const handWritten = `
kind: pipeline
type: docker
name: test-amd64
platform: {os: linux, arch: amd64}
steps:
- name: test
  image: golang:1.22
  commands: [go test ./..., echo main]
  environment:
    GOARCH: amd64
    TOKEN: {from_secret: token}
trigger:
  branch: [main]
---
kind: pipeline
type: docker
name: test-arm64
platform: {os: linux, arch: arm64}
steps:
- name: test
  image: golang:1.22
  commands: [go test ./..., echo main]
  environment:
    GOARCH: arm64
    TOKEN: {from_secret: token}
trigger:
  branch: [main]
---
kind: pipeline
type: docker
name: release
depends_on: [test-amd64, test-arm64]
steps:
- name: publish
  image: plugins/docker
  when:
    event: [tag]
`

const starProgram = `
load("ci/lib.star", "pipeline")

def main(ctx):
    platforms = ["amd64", "arm64"]
    out = [pipeline(arch, ctx.build.branch) for arch in platforms]
    out.append({
        "kind": "pipeline",
        "type": "docker",
        "name": "release",
        "depends_on": ["test-" + arch for arch in platforms],
        "steps": [{"name": "publish", "image": "plugins/docker", "when": {"event": ["tag"]}}],
    })
    return out
`

const starLib = `
def pipeline(arch, branch):
    return {
        "kind": "pipeline",
        "type": "docker",
        "name": "test-%s" % arch,
        "platform": {"os": "linux", "arch": arch},
        "steps": [{
            "name": "test",
            "image": "golang:1.22",
            "commands": ["go test ./...", "echo " + branch],
            "environment": {"GOARCH": arch, "TOKEN": {"from_secret": "token"}},
        }],
        "trigger": {"branch": [branch]},
    }
`

const jsonnetProgram = `
local lib = import 'ci/lib.libsonnet';
local platforms = ['amd64', 'arm64'];
[lib.pipeline(arch, std.extVar('build.branch')) for arch in platforms] + [
  {
    kind: 'pipeline',
    type: 'docker',
    name: 'release',
    depends_on: ['test-' + arch for arch in platforms],
    steps: [{ name: 'publish', image: 'plugins/docker', when: { event: ['tag'] } }],
  },
]
`

const jsonnetLib = `
{
  pipeline(arch, branch):: {
    kind: 'pipeline',
    type: 'docker',
    name: 'test-' + arch,
    platform: { os: 'linux', arch: arch },
    steps: [{
      name: 'test',
      image: 'golang:1.22',
      commands: ['go test ./...', 'echo ' + branch],
      environment: { GOARCH: arch, TOKEN: { from_secret: 'token' } },
    }],
    trigger: { branch: [branch] },
  },
}
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestProgramsGenerateTheSamePipelinesAsYAML(t *testing.T) {
	want := steps(t, ".drone.yml", []byte(handWritten))
	for _, tc := range []struct{ file, lib, src, libSrc string }{
		{".drone.star", "ci/lib.star", starProgram, starLib},
		{".drone.jsonnet", "ci/lib.libsonnet", jsonnetProgram, jsonnetLib},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{tc.lib: tc.libSrc})
			out, _, err := Convert(context.Background(), tc.file, []byte(tc.src), Options{Input: pushMain, Read: readDir(dir)})
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(t, tc.file, out); got != want {
				t.Errorf("generated pipelines differ from the hand-written YAML\ngot:\n%s\nwant:\n%s\nYAML:\n%s", got, want, out)
			}
		})
	}
}

func TestStarlarkContext(t *testing.T) {
	src := `
def main(ctx):
    return {"kind": "pipeline", "name": ctx.repo.slug, "steps": [{"name": "s", "image": "alpine", "commands": [
        "event=" + ctx.build.event, "ref=" + ctx.build.ref, "commit=" + ctx.build.commit,
        "trusted=%s" % ctx.repo.trusted, "param=" + ctx.build.params.get("DEPLOY", "none"),
        "input=" + ctx.input.DEPLOY]}]}
`
	in := pushMain
	in.Params = map[string]string{"DEPLOY": "yes"}
	out, _, err := Convert(context.Background(), ".drone.star", []byte(src), Options{Input: in})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: example/app", "event=push", "ref=refs/heads/main", "commit=abc123", "trusted=False", "param=yes", "input=yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestJsonnetExternalVariables(t *testing.T) {
	src := `{kind: 'pipeline', name: std.extVar('repo.slug'), steps: [{name: 's', image: 'alpine', commands: [
  'event=' + std.extVar('build.event'), 'commit=' + std.extVar('build.commit'),
  'private=' + std.extVar('repo.private'), 'param=' + std.extVar('build.param.DEPLOY')]}]}`
	in := pushMain
	in.Params = map[string]string{"DEPLOY": "yes"}
	out, _, err := Convert(context.Background(), ".drone.jsonnet", []byte(src), Options{Input: in})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: example/app", "event=push", "commit=abc123", "private=false", "param=yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// noDeadline is the Timeout of the cases that test another limit (output
// size, memory): on a busy machine a 100 MB program can take longer than
// the default 10 s, and would be stopped by the clock instead.
const noDeadline = time.Hour

// TestProgramErrors checks that a failing program is reported at its
// file, line and column, and that runaway programs are stopped.
func TestProgramErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, src string
		opts            Options
		want            string
	}{
		{"starlark syntax", ".drone.star", "def main(ctx):\n    return [\n", Options{}, ".drone.star:3:1: "},
		{"starlark runtime", ".drone.star", "def main(ctx):\n    return ctx.build.nope\n", Options{}, ".drone.star:2:21: "},
		{"starlark no main", ".drone.star", "x = 1\n", Options{}, ".drone.star:1:1: the program has no main function"},
		{"starlark wrong return", ".drone.star", "def main(ctx):\n    return 3\n", Options{}, "main returned a int"},
		{"starlark loops forever", ".drone.star", "def main(ctx):\n    for i in range(1 << 62):\n        pass\n", Options{MaxSteps: 100_000},
			".drone.star:2:5: the program ran more than 100000 steps and was stopped"},
		{"starlark recurses", ".drone.star", "def f(n):\n    return f(n + 1)\ndef main(ctx):\n    return f(0)\n", Options{}, "called recursively"},
		{"starlark 100 MB of output", ".drone.star", "def main(ctx):\n    return [{'kind': 'pipeline', 'name': 'x' * (100 << 20)}]\n", Options{Timeout: noDeadline},
			"generated configuration is too large"},
		{"starlark grows memory", ".drone.star", "def main(ctx):\n    s = 'x'\n    for i in range(40):\n        s = s + s\n    return {}\n",
			Options{MaxMemory: 64 << 20, Timeout: noDeadline}, "used more than 64 MB of memory and was stopped"},
		{"starlark deadline", ".drone.star", "def main(ctx):\n    for i in range(1 << 62):\n        pass\n", Options{MaxSteps: 1 << 62, Timeout: 50 * time.Millisecond},
			"ran too long and was stopped"},
		{"starlark load refused", ".drone.star", "load('lib.star', 'x')\ndef main(ctx):\n    return {}\n", Options{}, ".drone.star:1:1: "},
		{"starlark load escapes", ".drone.star", "load('../secret.star', 'x')\ndef main(ctx):\n    return {}\n", Options{Read: readDir(t.TempDir())}, "outside the repository"},
		{"jsonnet syntax", ".drone.jsonnet", "{\n  kind: 'pipeline',\n  steps: [\n}\n", Options{}, ".drone.jsonnet:4:1"},
		{"jsonnet runtime", ".drone.jsonnet", "{\n  kind: std.extVar('nope'),\n}\n", Options{}, ".drone.jsonnet:2:9"},
		{"jsonnet recurses", ".drone.jsonnet", "local f(n) = f(n + 1) + 1;\n{ kind: f(0) }\n", Options{}, "max stack frames exceeded"},
		{"jsonnet 100 MB of output", ".drone.jsonnet", "local double(s, n) = if n == 0 then s else double(s + s, n - 1);\n[{ kind: 'pipeline', name: double('x', 27) }]\n", Options{Timeout: noDeadline},
			"generated configuration is too large|used more than 512 MB of memory"},
		{"jsonnet recurses deeply", ".drone.jsonnet", "local f(n, acc) = if n == 0 then acc else f(n - 1, acc + 1) tailstrict;\n{ kind: f(3000000000, 0) }\n",
			Options{Timeout: 2 * time.Second}, "recursed too deeply and was stopped|ran longer than 2s and was stopped"},
		{"jsonnet deadline", ".drone.jsonnet", "{ kind: 'pipeline' }\n", Options{Timeout: time.Millisecond}, "ran longer than 1ms and was stopped"},
		{"jsonnet scalar", ".drone.jsonnet", "'pipeline'\n", Options{}, "returned a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Convert(context.Background(), tc.file, []byte(tc.src), tc.opts)
			if err == nil {
				t.Fatal("Convert succeeded")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T (%v), want *Error", err, err)
			}
			if !containsAny(err.Error(), strings.Split(tc.want, "|")) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
			if pe.Line < 1 || pe.Column < 1 || pe.File == "" {
				t.Errorf("error has no position: %#v", pe)
			}
		})
	}
}

func TestKind(t *testing.T) {
	for name, want := range map[string]string{".drone.star": "starlark", "ci.starlark": "starlark", "x.script": "starlark",
		".drone.jsonnet": "jsonnet", ".drone.yml": "", ".ferry.yaml": ""} {
		if got := Kind(name); got != want {
			t.Errorf("Kind(%q) = %q, want %q", name, got, want)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func readDirNames(dir, p string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, p))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// TestStarlarkShapesOfRealFiles runs the shapes real .drone.star files
// have (docs/compatibility.md): module constants, helpers with keyword
// arguments, loops over platforms, getattr with a default, str.format and
// removeprefix, and pipelines whose depends_on lists are filled in after
// they are built.
func TestStarlarkShapesOfRealFiles(t *testing.T) {
	src := `
TAG = "${DRONE_TAG:-${DRONE_COMMIT_SHA:0:7}}"
ARCHES = ["amd64", "arm64"]

def branch(ctx):
    return getattr(ctx.repo, "branch", "main")

def version(ctx):
    if ctx.build.event != "tag":
        return "git-{}".format(ctx.build.commit[:7])
    return ctx.build.ref.removeprefix("refs/tags/")

def pipeline(name, arch, **kwargs):
    p = {"kind": "pipeline", "type": "docker", "name": name, "platform": {"os": "linux", "arch": arch},
         "depends_on": [], "steps": []}
    p.update(kwargs)
    return p

def main(ctx):
    before = [pipeline("test", "amd64", steps = [{"name": "test", "image": "golang", "commands": ["go test ./..."]}])]
    stages = []
    for arch in ARCHES:
        s = pipeline("build-%s" % arch, arch)
        s["steps"].append({"name": "build", "image": "golang", "commands": ["echo %s %s %s" % (version(ctx), branch(ctx), TAG)]})
        stages.append(s)
    after = [pipeline("manifest", "amd64", steps = [{"name": "manifest", "image": "plugins/manifest"}])]
    for b in before:
        for s in stages:
            s["depends_on"].append(b["name"])
    for s in stages:
        for a in after:
            a["depends_on"].append(s["name"])
    return before + stages + after
`
	out, _, err := Convert(context.Background(), ".drone.star", []byte(src), Options{Input: pushMain})
	if err != nil {
		t.Fatal(err)
	}
	got := steps(t, ".drone.star", out)
	want := `pipeline test type=docker platform=linux/amd64 depends_on=[] trigger.branch=[]
  step test image=golang commands=["go test ./..."] env=map[] when.event=[]
pipeline build-amd64 type=docker platform=linux/amd64 depends_on=[test] trigger.branch=[]
  step build image=golang commands=["echo git-abc123 main ${DRONE_TAG:-${DRONE_COMMIT_SHA:0:7}}"] env=map[] when.event=[]
pipeline build-arm64 type=docker platform=linux/arm64 depends_on=[test] trigger.branch=[]
  step build image=golang commands=["echo git-abc123 main ${DRONE_TAG:-${DRONE_COMMIT_SHA:0:7}}"] env=map[] when.event=[]
pipeline manifest type=docker platform=linux/amd64 depends_on=[build-amd64 build-arm64] trigger.branch=[]
  step manifest image=plugins/manifest commands=[] env=map[] when.event=[]
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestStarlarkLoadsAreRootRelative checks that load() names files from the
// repository's root, also from a loaded file in a subdirectory, as large
// real programs (a tree of files under scripts/drone/) expect.
func TestStarlarkLoadsAreRootRelative(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"scripts/drone/pipelines/build.star": "load('scripts/drone/steps/lib.star', 'step')\ndef build():\n    return {'kind': 'pipeline', 'name': 'build', 'steps': [step('go')]}\n",
		"scripts/drone/steps/lib.star":       "def step(n):\n    return {'name': n, 'image': 'golang', 'commands': ['go test']}\n",
	})
	src := "load('scripts/drone/pipelines/build.star', 'build')\ndef main(ctx):\n    return [build()]\n"
	out, _, err := Convert(context.Background(), ".drone.star", []byte(src), Options{Input: pushMain, Read: readDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "image: golang") {
		t.Errorf("output:\n%s", out)
	}
}
