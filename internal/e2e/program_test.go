package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// The same two exec pipelines as a .drone.yml, a .drone.star and a
// .drone.jsonnet, each program with a helper file it loads or imports
// from the repository at the built commit.
var programRepos = map[string]map[string]string{
	"yaml": {".drone.yml": `kind: pipeline
type: exec
name: build-a
steps:
- name: hello
  commands: [echo hello from a on main]
---
kind: pipeline
type: exec
name: build-b
depends_on: [build-a]
steps:
- name: hello
  commands: [echo hello from b on main]
`},
	"starlark": {
		".drone.star": `
load("ci/lib.star", "pipeline")

def main(ctx):
    return [pipeline("a", ctx.build.branch, []), pipeline("b", ctx.build.branch, ["build-a"])]
`,
		"ci/lib.star": `
def pipeline(n, branch, deps):
    return {"kind": "pipeline", "type": "exec", "name": "build-" + n, "depends_on": deps,
            "steps": [{"name": "hello", "commands": ["echo hello from %s on %s" % (n, branch)]}]}
`,
	},
	"woodpecker": {
		".woodpecker/build-a.yaml": `labels:
  backend: local
when:
  - event: push
  - event: manual
steps:
  hello:
    commands:
      - echo hello from a on ${CI_COMMIT_BRANCH}
`,
		".woodpecker/build-b.yaml": `labels:
  backend: local
depends_on: [build-a]
steps:
  - name: hello
    commands: echo hello from b on ${CI_COMMIT_BRANCH}
`,
	},
	"jsonnet": {
		".drone.jsonnet": `
local lib = import 'ci/lib.libsonnet';
[lib.pipeline('a', std.extVar('build.branch'), []), lib.pipeline('b', std.extVar('build.branch'), ['build-a'])]
`,
		"ci/lib.libsonnet": `
{
  pipeline(n, branch, deps):: {
    kind: 'pipeline', type: 'exec', name: 'build-' + n, depends_on: deps,
    steps: [{ name: 'hello', commands: ['echo hello from %s on %s' % [n, branch]] }],
  },
}
`,
	},
}

// TestProgramsBuildThroughServer is issue 11's acceptance test 2 for the
// server: a repository holding only a .drone.star, only a .drone.jsonnet,
// or only a .woodpecker directory, builds through the server and an agent
// with the same pipelines, steps and logs as the hand-written .drone.yml.
func TestProgramsBuildThroughServer(t *testing.T) {
	root := t.TempDir()
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	startAgent(t, srv.URL, c.agentToken("agent-1"), agentOptions{Name: "agent-1"})

	summaries := map[string][]string{}
	for _, kind := range []string{"yaml", "starlark", "jsonnet", "woodpecker"} {
		repo := gittest.NewWithOrigin(t, root, kind, programRepos[kind])
		slug := "acme/" + kind
		c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "forge": "none", "poll_interval": "0s"})
		sha := repo.Git("rev-parse", "HEAD")
		c.manualBuild(slug, "main", sha)
		b := c.waitBuild(slug, 1, 60*time.Second, nil)
		if b.Status != "success" {
			t.Fatalf("%s: build finished %s, want success: %s", kind, b.Status, describe(b))
		}
		var sum []string
		for _, p := range b.Pipelines {
			for _, s := range p.Steps {
				sum = append(sum, fmt.Sprintf("%s/%s %s %q", p.Name, s.Name, s.Status,
					lines(c.stepLog(slug, 1, p.Number, s.Number))))
			}
		}
		slices.Sort(sum)
		summaries[kind] = sum
	}
	want := strings.Join(summaries["yaml"], "\n")
	if !strings.Contains(want, "hello from b on main") {
		t.Fatalf("the YAML build is not what the test expects:\n%s", want)
	}
	for _, kind := range []string{"starlark", "jsonnet", "woodpecker"} {
		if got := strings.Join(summaries[kind], "\n"); got != want {
			t.Errorf("%s build differs from the YAML build\ngot:\n%s\nwant:\n%s", kind, got, want)
		}
	}
}
