package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// TestRegistrationIsForAdmins checks that by default only administrators
// register repositories, and that the refusal says how to open it.
func TestRegistrationIsForAdmins(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	user := ts.userToken("someone")
	code, body := ts.call("POST", "/api/repos", user, `{"git_url":"https://git.example.com/someone/app.git","default_branch":"main"}`)
	if code != http.StatusForbidden || !strings.Contains(string(body), "--open-registration") {
		t.Fatalf("user registers a repo: %d %s, want 403 naming --open-registration", code, body)
	}
	// The server reads a repository when it is added: a real one.
	url := apitest.GitRepoHTTP(t, "ops", "app", map[string]string{"README": "x\n"})
	ts.must(http.StatusCreated, "POST", "/api/repos", adminToken, `{"git_url":"`+url+`"}`, nil)
}

// TestUntrustedBuildFailsAtCreation checks the server's half of the trust
// model: a build of an untrusted repo whose pipelines ask for host
// execution, a host volume, a device or network_mode ends in error at once,
// naming every rule broken; once an administrator trusts the repo, the
// same commit builds.
func TestUntrustedBuildFailsAtCreation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
type: exec
name: host
steps:
- name: key
  commands: [cat /etc/hostname]
---
kind: pipeline
type: docker
name: net
volumes:
- {name: zero, host: {path: /dev/zero}}
steps:
- name: probe
  image: busybox
  network_mode: host
  devices: [{name: zero, path: /dev/z}]
`})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	b := ts.build(1)
	want := []string{
		`.drone.yml:1:1: pipeline "host": type: exec runs its steps as processes on the agent's host, which needs a trusted repository (an administrator marks it with ferry repo update --trusted)`,
		`.drone.yml:14:3: pipeline "net": step "probe": network_mode`,
		`pipeline "net": volume "zero" mounts host path /dev/zero, which needs a trusted repository`,
		`pipeline "net": step "probe" maps host devices, which needs a trusted repository`,
		`pipeline "net": step "probe": network_mode needs a trusted repository`,
	}
	if b.Status != "error" || len(b.Pipelines) != 0 {
		t.Fatalf("build 1: status %s, %d pipelines, want error with none", b.Status, len(b.Pipelines))
	}
	for _, w := range want {
		if !strings.Contains(b.Error, w) {
			t.Errorf("build error lacks %q:\n%s", w, b.Error)
		}
	}

	ts.must(http.StatusOK, "PATCH", "/api/repos/acme/app", adminToken, `{"trusted":true}`, nil)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	if b := ts.build(2); b.Status == "error" || len(b.Pipelines) != 2 {
		t.Fatalf("build 2 of the trusted repo: status %s (%s), %d pipelines", b.Status, b.Error, len(b.Pipelines))
	}
}

// TestRestartAfterTrustRevoked: a restart creates a build too, and is
// checked as one. A trusted repo's build that used network_mode ran; once
// an administrator revokes the trust, restarting it ends in error at once,
// naming the rule, with no job for an agent to lease.
func TestRestartAfterTrustRevoked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": `kind: pipeline
type: docker
name: net
steps:
- name: probe
  image: busybox
  network_mode: host
  commands: [wget -qO- http://127.0.0.1:8080/]
`})
	ts.addRepo(g)
	ts.must(http.StatusOK, "PATCH", "/api/repos/acme/app", adminToken, `{"trusted":true}`, nil)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	j := mustLease(t, c, "agent-1", dockerAgent)
	if err := c.Complete(context.Background(), j.ID, &rpc.CompleteRequest{LeaseToken: j.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	if b := ts.build(1); b.Status != "success" {
		t.Fatalf("build 1 of the trusted repo: %s (%s)", b.Status, b.Error)
	}

	ts.must(http.StatusOK, "PATCH", "/api/repos/acme/app", adminToken, `{"trusted":false}`, nil)
	var nb buildJSON
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds/1/restart", adminToken, nil, &nb)
	want := `.drone.yml:5:3: pipeline "net": step "probe": network_mode needs a trusted repository`
	if b := ts.build(nb.Number); b.Status != "error" || len(b.Pipelines) != 0 || !strings.Contains(b.Error, want) {
		t.Fatalf("restart of the untrusted repo: build %d %s (%q), %d pipelines; want error %q and no pipelines",
			nb.Number, b.Status, b.Error, len(b.Pipelines), want)
	}
	if j := lease(t, c, "agent-1", dockerAgent, 0); j != nil {
		t.Fatalf("an agent leased %q of build %d after the restart was refused", j.Pipeline, j.Metadata.Build.Number)
	}
}

// TestDataDirIsPrivate checks that the server closes its data directory
// to other users (host steps run as another user must not read the key
// or the database), and refuses a shared one such as /tmp rather than
// close it.
func TestDataDirIsPrivate(t *testing.T) {
	t.Parallel()
	open := filepath.Join(t.TempDir(), "data")
	shared := filepath.Join(t.TempDir(), "shared")
	for dir, mode := range map[string]os.FileMode{open: 0o755, shared: 0o777 | os.ModeSticky} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = open
	srv, err := server.Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(open); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode after start: %v, %v; want 0700", fi.Mode(), err)
	}

	cfg.DataDir = shared
	if _, err := server.Open(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "shared directory") {
		t.Errorf("server.Open with a sticky data dir: %v", err)
	}
	if fi, err := os.Stat(shared); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("the shared dir's mode changed: %v, %v", fi.Mode(), err)
	}
}
