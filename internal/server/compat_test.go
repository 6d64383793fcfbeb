package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// tolerantConfig holds forms Drone runs and ferry warns about.
const tolerantConfig = `kind: pipeline
type: docker
name: build
steps:
- name: test
  image: golang:1.22
  pull: default
  secrets: [token]
  commands: [go test ./...]
  volumes:
  - name: cache
    path: /go/pkg
`

// TestBuildKeepsWarnings checks that a pipeline file with warnings builds,
// and that the build carries the warnings through the API.
func TestBuildKeepsWarnings(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, driver, nil)
			ts.addRepo(newGitRepo(t, map[string]string{".drone.yml": tolerantConfig}))
			ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
			var b struct {
				Status    string   `json:"status"`
				Warnings  []string `json:"warnings"`
				Pipelines []struct {
					Name  string `json:"name"`
					Steps []struct {
						Name string `json:"name"`
					} `json:"steps"`
				} `json:"pipelines"`
			}
			ts.must(http.StatusOK, "GET", "/api/repos/acme/app/builds/1", adminToken, nil, &b)
			if b.Status != "pending" || len(b.Pipelines) != 1 || len(b.Pipelines[0].Steps) != 1 {
				t.Fatalf("build = %+v, want one pending pipeline with its step", b)
			}
			want := []string{
				`.drone.yml:8:3: warning: "secrets" on a step is Drone 0.8's form`,
				`.drone.yml:11:5: warning: step "test" mounts volume "cache", which the pipeline does not declare, so the mount is skipped`,
			}
			if len(b.Warnings) != len(want) {
				t.Fatalf("warnings = %q, want %d", b.Warnings, len(want))
			}
			for i, w := range want {
				if !strings.HasPrefix(b.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to start with %q", i, b.Warnings[i], w)
				}
			}
		})
	}
}

// TestRunawayProgramsEndInError is issue 11's acceptance test 3 on the
// server: a .drone.star that loops forever or returns 100 MB, and a
// .drone.jsonnet that recurses without end, each give a build in status
// error that says why, and the server goes on serving.
func TestRunawayProgramsEndInError(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	for i, tc := range []struct{ file, src, want string }{
		{".drone.star", "def main(ctx):\n    for i in range(1 << 62):\n        pass\n", "steps and was stopped"},
		{".drone.star", "def main(ctx):\n    return [{'kind': 'pipeline', 'name': 'x' * (100 << 20)}]\n", "too large"},
		{".drone.jsonnet", "local f(n) = if n == 0 then 0 else f(n - 1) tailstrict;\n{ kind: f(1e12) }\n", "was stopped"},
	} {
		g := newGitRepo(t, map[string]string{tc.file: tc.src})
		var r repoJSON
		slug := fmt.Sprintf("acme/runaway-%d", i)
		ts.must(http.StatusCreated, "POST", "/api/repos", adminToken,
			map[string]any{"git_url": g.URL(), "slug": slug, "forge": "none", "poll_interval": "0s"}, &r)
		ts.must(http.StatusCreated, "POST", "/api/repos/"+slug+"/builds", adminToken, nil, nil)
		var b buildJSON
		ts.must(http.StatusOK, "GET", "/api/repos/"+slug+"/builds/1", adminToken, nil, &b)
		if b.Status != "error" || !strings.Contains(b.Error, tc.file+":") || !strings.Contains(b.Error, tc.want) {
			t.Errorf("%s: build %s %q, want error naming the file and %q", tc.file, b.Status, b.Error, tc.want)
		}
	}
	// The server is still up and builds a sound repository.
	ts.addRepo(newGitRepo(t, map[string]string{".drone.yml": tolerantConfig}))
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	if b := ts.build(1); b.Status != "pending" {
		t.Errorf("after the runaway programs a sound build is %s (%s), want pending", b.Status, b.Error)
	}
}
