package server_test

import (
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
