package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The same two exec pipelines, as YAML, as Starlark and as Jsonnet (with a
// helper file loaded or imported from the repository).
const (
	programYAML = `kind: pipeline
type: exec
name: build-a
clone: {disable: true}
steps:
- name: hello
  commands: [echo hello from a on main]
---
kind: pipeline
type: exec
name: build-b
clone: {disable: true}
steps:
- name: hello
  commands: [echo hello from b on main]
`
	programStar = `
load("ci/lib.star", "pipeline")

def main(ctx):
    return [pipeline(n, ctx.build.branch) for n in ["a", "b"]]
`
	programStarLib = `
def pipeline(n, branch):
    return {"kind": "pipeline", "type": "exec", "name": "build-" + n, "clone": {"disable": True},
            "steps": [{"name": "hello", "commands": ["echo hello from %s on %s" % (n, branch)]}]}
`
	programJsonnet = `
local lib = import 'ci/lib.libsonnet';
[lib.pipeline(n, std.extVar('build.branch')) for n in ['a', 'b']]
`
	programJsonnetLib = `
{
  pipeline(n, branch):: {
    kind: 'pipeline', type: 'exec', name: 'build-' + n, clone: { disable: true },
    steps: [{ name: 'hello', commands: ['echo hello from %s on %s' % [n, branch]] }],
  },
}
`
)

// The same pipelines as Woodpecker workflows, one file each, on
// Woodpecker's local backend, with its forms: steps as a map, a list of
// conditions, CI_* variables.
const (
	woodpeckerA = `labels:
  backend: local
skip_clone: true
when:
  - event: push
  - event: manual
steps:
  hello:
    commands:
      - echo hello from a on ${CI_COMMIT_BRANCH}
`
	woodpeckerB = `labels:
  backend: local
skip_clone: true
steps:
  - name: hello
    commands: echo hello from b on ${CI_COMMIT_BRANCH}
`
)

// execEvents runs ferry exec --json in dir and returns its events without
// times and durations, sorted (pipelines run in parallel).
func execEvents(t *testing.T, dir string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Exec(context.Background(), ExecOptions{Dir: dir, JSON: true, Branch: "main",
		Commit: "0123456789abcdef0123456789abcdef01234567", Stdout: &out, Stderr: &errOut})
	if code != ExitOK {
		t.Fatalf("exec exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	var events []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad event %q: %v", sc.Text(), err)
		}
		line := ""
		if e.Line != nil {
			line = *e.Line
		}
		events = append(events, fmt.Sprintf("%s %s %s %s %s", e.Type, e.Pipeline, e.Step, e.Status, line))
	}
	sort.Strings(events)
	return events
}

// TestExecRunsStarlarkAndJsonnet checks that a repository holding only a
// .drone.star, only a .drone.jsonnet, or only a .woodpecker directory,
// runs the same steps with the same output as the hand-written .drone.yml.
func TestExecRunsStarlarkAndJsonnet(t *testing.T) {
	want := execEvents(t, writeFiles(t, map[string]string{".drone.yml": programYAML}))
	if !strings.Contains(strings.Join(want, "\n"), "hello from b on main") {
		t.Fatalf("the YAML run is not what the test expects:\n%s", strings.Join(want, "\n"))
	}
	for name, files := range map[string]map[string]string{
		"starlark":   {".drone.star": programStar, "ci/lib.star": programStarLib},
		"jsonnet":    {".drone.jsonnet": programJsonnet, "ci/lib.libsonnet": programJsonnetLib},
		"woodpecker": {".woodpecker/build-a.yaml": woodpeckerA, ".woodpecker/build-b.yml": woodpeckerB},
	} {
		t.Run(name, func(t *testing.T) {
			got := execEvents(t, writeFiles(t, files))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("events differ from the YAML run\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLintReportsProgramErrorsWithPosition(t *testing.T) {
	dir := writeFiles(t, map[string]string{".drone.star": "def main(ctx):\n    return [\n"})
	var out, errOut bytes.Buffer
	if code := Lint(dir, "", false, &out, &errOut); code != ExitInvalid {
		t.Fatalf("lint exited %d, want 2", code)
	}
	if !strings.HasPrefix(out.String(), ".drone.star:3:1: ") {
		t.Errorf("lint printed %q, want the error at .drone.star:3:1", out.String())
	}
	dir = writeFiles(t, map[string]string{".drone.jsonnet": programJsonnet, "ci/lib.libsonnet": programJsonnetLib})
	out.Reset()
	errOut.Reset()
	if code := Lint(dir, "", false, &out, &errOut); code != ExitOK {
		t.Fatalf("lint of a valid .drone.jsonnet exited %d: %s%s", code, out.String(), errOut.String())
	}
}

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

func TestPrintGenerated(t *testing.T) {
	dir := writeFiles(t, map[string]string{".drone.star": programStar, "ci/lib.star": programStarLib})
	var out, errOut bytes.Buffer
	if code := PrintGenerated(dir, "", &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"---\nkind: pipeline\n", "name: build-a", "name: build-b", "echo hello from b on"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("generated YAML lacks %q:\n%s", want, out.String())
		}
	}
}
