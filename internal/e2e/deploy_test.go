package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// The delivery tests (issue 10, server side): a real `ferry server`, real
// `ferry node` processes on loopback, artifacts served over HTTP by the
// test, and services declared in a repo's .ferry.yml.

// deployTimeout bounds how long a test waits for a deployment; only a
// broken orchestrator reaches it.
const deployTimeout = 2 * time.Minute

// artifacts serves release tarballs over HTTP and counts the downloads.
type artifacts struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	gets  map[string]int
}

func newArtifacts(t testing.TB) *artifacts {
	a := &artifacts{files: map[string][]byte{}, gets: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		b, ok := a.files[r.URL.Path]
		if ok && r.Header.Get("Range") == "" {
			a.gets[r.URL.Path]++
		}
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(a.Close)
	return a
}

// tarFile is a regular file of a release tarball.
type tarFile struct{ name, body string }

// release publishes a tarball holding a version file and health.sh, which
// exits with health, and returns its URL and sha256.
func (a *artifacts) release(t testing.TB, name string, health int) (url, sum string) {
	t.Helper()
	return a.publish(t, name, tarFile{"version", name + "\n"}, tarFile{"health.sh", fmt.Sprintf("#!/bin/sh\nexit %d\n", health)})
}

// publish serves a tarball of files as /name.tar.gz and returns its URL
// and sha256.
func (a *artifacts) publish(t testing.TB, name string, files ...tarFile) (url, sum string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	path := "/" + name + ".tar.gz"
	a.mu.Lock()
	a.files[path] = buf.Bytes()
	a.mu.Unlock()
	s := sha256.Sum256(buf.Bytes())
	return a.URL + path, hex.EncodeToString(s[:])
}

func (a *artifacts) downloads(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets["/"+name+".tar.gz"]
}

// deployJSON is the part of the API's deployment the tests read.
type deployJSON struct {
	ID          int64  `json:"id"`
	Environment string `json:"environment"`
	Release     string `json:"release"`
	State       string `json:"state"`
	Batch       int    `json:"batch"`
	Batches     int    `json:"batches"`
	Reason      string `json:"reason"`
	Nodes       []struct {
		Node     string    `json:"node"`
		Batch    int       `json:"batch"`
		State    string    `json:"state"`
		Previous string    `json:"previous"`
		Error    string    `json:"error"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
	} `json:"nodes"`
}

type nodeStatusJSON struct {
	Name     string `json:"name"`
	Services []struct {
		Service string   `json:"service"`
		Release string   `json:"release"`
		State   string   `json:"state"`
		Kept    []string `json:"kept"`
	} `json:"services"`
}

// fleet is a server with a service "app" and nodes running it.
type fleet struct {
	t     testing.TB
	srv   *ferryServer
	api   *api
	dir   string
	art   *artifacts
	nodes []*proc
}

// deployServiceYAML declares service app; envs is the environments list.
func deployServiceYAML(envs string) string {
	return `kind: pipeline
type: exec
name: build
clone: {disable: true}
steps:
- name: noop
  commands: ["true"]
---
kind: service
name: app
environments:
` + envs
}

// newFleet starts a server, declares the service through a repo's
// .ferry.yml (synced by a build of main; not when envs is empty), and
// starts n nodes labelled role=web.
func newFleet(t testing.TB, n int, envs string, opts serverOptions) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir(), art: newArtifacts(t)}
	// Hooks and checks run as nobody, who must reach the node roots.
	for p := f.dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	f.srv = startServer(t, opts)
	f.api = adminAPI(t, f.srv)
	if envs == "" {
		return f
	}
	repo := gittest.NewWithOrigin(t, t.TempDir(), "app", map[string]string{".ferry.yml": deployServiceYAML(envs)})
	f.api.createRepo(map[string]any{"git_url": repo.URL(), "slug": "acme/app", "poll_interval": "0s"})
	f.api.manualBuild("acme/app", "main", "")
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		status, body, err := f.api.call("GET", "/api/services/app", nil)
		return err == nil && status == http.StatusOK, fmt.Sprintf("service app: %d %s %v", status, body, err)
	})
	for i := range n {
		f.startNode(t, i+1)
	}
	f.waitNodes(n)
	return f
}

// startNode starts node web-i with a token of its own.
func (f *fleet) startNode(t testing.TB, i int) *proc {
	t.Helper()
	name := fmt.Sprintf("web-%d", i)
	var tok struct {
		Token string `json:"token"`
	}
	f.api.do("POST", "/api/node-tokens", map[string]string{"name": name}, http.StatusCreated, &tok)
	tokenFile := writeFile(t, f.dir, name+".token", tok.Token)
	if err := os.Chmod(tokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user: nobody\n"
	}
	cfg := writeFile(t, f.dir, name+".yml", fmt.Sprintf(`root: %s
name: %s
labels: {role: web}
%sserver: {url: %q, token_file: %q, poll_wait: 5s}
services:
  app: {}
`, filepath.Join(f.dir, name), name, user, f.srv.URL, tokenFile))
	p := startProc(t, "node-"+name, "node", "--config", cfg)
	f.nodes = append(f.nodes, p)
	return p
}

func (f *fleet) waitNodes(n int) {
	f.t.Helper()
	eventually(f.t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		var ns []nodeStatusJSON
		f.api.do("GET", "/api/nodes", nil, http.StatusOK, &ns)
		return len(ns) == n, fmt.Sprintf("%d of %d nodes registered", len(ns), n)
	})
}

// release creates a release of app from the tarball name.
func (f *fleet) release(name string, health int) string {
	f.t.Helper()
	url, sum := f.art.release(f.t, name, health)
	return f.releaseOf(name, url, sum)
}

func (f *fleet) releaseOf(version, url, sum string) string {
	f.t.Helper()
	var rel struct {
		ID string `json:"id"`
	}
	f.api.do("POST", "/api/services/app/releases", map[string]any{"version": version,
		"artifact": map[string]string{"url": url, "sha256": sum}}, http.StatusCreated, &rel)
	return rel.ID
}

func (f *fleet) deploy(env, release string) *deployJSON {
	f.t.Helper()
	var d deployJSON
	f.api.do("POST", "/api/services/app/environments/"+env+"/deployments", map[string]string{"release": release}, http.StatusCreated, &d)
	return &d
}

func (f *fleet) deployment(id int64) *deployJSON {
	f.t.Helper()
	var d deployJSON
	f.api.do("GET", fmt.Sprintf("/api/deployments/%d", id), nil, http.StatusOK, &d)
	return &d
}

// rollback rolls env back through the API, and waits until it has
// succeeded in deploying release.
func (f *fleet) rollback(env, release string) {
	f.t.Helper()
	var rb deployJSON
	f.api.do("POST", "/api/services/app/environments/"+env+"/rollback", map[string]string{"reason": "back to " + release}, http.StatusCreated, &rb)
	if rb.Release != release {
		f.t.Fatalf("rollback deploys %s, want %s", rb.Release, release)
	}
	if d := f.wait(rb.ID); d.State != "succeeded" {
		f.t.Fatalf("rollback: %s %q", d.State, d.Reason)
	}
}

// wait waits until deployment id is in a final state and returns it.
func (f *fleet) wait(id int64) *deployJSON {
	f.t.Helper()
	var d *deployJSON
	eventually(f.t, deployTimeout, 20*time.Millisecond, func() (bool, string) {
		d = f.deployment(id)
		switch d.State {
		case "succeeded", "failed", "rolled_back", "cancelled":
			return true, ""
		}
		return false, fmt.Sprintf("deployment %d is %s (batch %d/%d): %s", id, d.State, d.Batch, d.Batches, d.Reason)
	})
	return d
}

// running returns each node's release of app, by node name.
func (f *fleet) running() map[string]string {
	f.t.Helper()
	var ns []nodeStatusJSON
	f.api.do("GET", "/api/nodes", nil, http.StatusOK, &ns)
	out := map[string]string{}
	for _, n := range ns {
		for _, s := range n.Services {
			if s.Service == "app" {
				out[n.Name] = s.Release
			}
		}
	}
	return out
}

// allRun fails the test unless every one of n nodes runs release.
func (f *fleet) allRun(n int, release string) {
	f.t.Helper()
	got := f.running()
	if len(got) != n {
		f.t.Fatalf("%d nodes report app, want %d: %v", len(got), n, got)
	}
	for node, r := range got {
		if r != release {
			f.t.Fatalf("node %s runs %q, want %s (all: %v)", node, r, release, got)
		}
	}
}

const healthCheck = `    health: {type: command, command: "sh ./health.sh", interval: 100ms, healthy_deadline: 20s, progress_deadline: 5m}
`

// A rolling deploy with max_parallel 1 updates five nodes one at a time,
// in order, and ends with every node on the new release; a rollback then
// returns them to the previous one without downloading it.
func TestDeployRollingFiveNodesAndRollback(t *testing.T) {
	t.Parallel()
	const n = 5
	f := newFleet(t, n, `  - name: prod
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 1}
`+healthCheck, serverOptions{})
	v1 := f.release("v1", 0)
	d := f.wait(f.deploy("prod", v1).ID)
	if d.State != "succeeded" || d.Batches != n {
		t.Fatalf("v1: %+v", d)
	}
	f.allRun(n, v1)

	v2 := f.release("v2", 0)
	d = f.wait(f.deploy("prod", v2).ID)
	if d.State != "succeeded" || d.Batches != n || len(d.Nodes) != n {
		t.Fatalf("v2: %+v", d)
	}
	// One node at a time: each batch started after the previous ended.
	for i, dn := range d.Nodes {
		if dn.Batch != i+1 || dn.State != "succeeded" || dn.Previous != v1 {
			t.Fatalf("node %d: %+v", i, dn)
		}
		if i > 0 && dn.Started.Before(d.Nodes[i-1].Finished) {
			t.Fatalf("batch %d started at %s, before batch %d finished at %s", dn.Batch, dn.Started, i, d.Nodes[i-1].Finished)
		}
	}
	f.allRun(n, v2)

	// Rollback: back to v1, which every node kept.
	before := f.art.downloads("v1")
	f.rollback("prod", v1)
	f.allRun(n, v1)
	if got := f.art.downloads("v1"); got != before {
		t.Fatalf("v1 downloaded %d more times during the rollback; nodes must use their kept release", got-before)
	}

	var audit []struct {
		Actor, Action, Reason string
	}
	f.api.do("GET", "/api/audit?service=app&environment=prod", nil, http.StatusOK, &audit)
	var actions []string
	for i := len(audit) - 1; i >= 0; i-- {
		actions = append(actions, audit[i].Action)
	}
	want := "deploy start succeeded deploy start succeeded deploy start succeeded"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit log: %s\nwant: %s", got, want)
	}
	if m := f.api.text("/metrics"); !strings.Contains(m, `ferry_deployments_total{state="succeeded"} 3`) || !strings.Contains(m, "ferry_nodes_registered 5") {
		t.Fatal("/metrics does not count the 3 deployments and 5 nodes")
	}
}

// A canary of a release whose health check fails stops at its first
// step and rolls back automatically: the fleet ends on the previous
// release, the nodes of later steps are never touched, and the
// deployment ends rolled_back with the reason.
func TestDeployCanaryRollsBackOnFailedHealth(t *testing.T) {
	t.Parallel()
	const n = 4
	f := newFleet(t, n, `  - name: prod
    nodes: {role: web}
    strategy:
      type: canary
      steps: [{nodes: 1, pause: 1s}, {nodes: 50%}]
    health: {type: command, command: "sh ./health.sh", interval: 100ms, healthy_deadline: 2s, progress_deadline: 5m}
`, serverOptions{})
	v2 := f.release("v2", 0)
	d := f.wait(f.deploy("prod", v2).ID)
	if d.State != "succeeded" || d.Batches != 3 {
		t.Fatalf("v2: %+v", d)
	}
	f.allRun(n, v2)

	v3 := f.release("v3", 1)
	d = f.wait(f.deploy("prod", v3).ID)
	if d.State != "rolled_back" {
		t.Fatalf("v3 ended %s, want rolled_back: %+v", d.State, d)
	}
	if !strings.Contains(d.Reason, "batch 1 of 3 failed: node web-1") || !strings.Contains(d.Reason, "health check") {
		t.Fatalf("reason %q does not name the batch, the node and the health check", d.Reason)
	}
	f.allRun(n, v2)
	for _, dn := range d.Nodes {
		want := "pending"
		if dn.Batch == 1 {
			want = "rolled_back"
		}
		if dn.State != want {
			t.Fatalf("node %s of batch %d is %s, want %s", dn.Node, dn.Batch, dn.State, want)
		}
	}
	if got := f.art.downloads("v3"); got != 1 {
		t.Fatalf("v3 downloaded %d times; only the canary node may fetch it", got)
	}
}

// A tampered artifact (its sha256 does not match) is refused by the node,
// which stays on its release, and the deployment fails with the reason.
func TestDeployTamperedArtifactFails(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: prod
    nodes: {role: web}
    auto_rollback: false
`+healthCheck, serverOptions{})
	v1 := f.release("v1", 0)
	if d := f.wait(f.deploy("prod", v1).ID); d.State != "succeeded" {
		t.Fatalf("v1: %+v", d)
	}
	url, sum := f.art.release(t, "v2", 0)
	f.art.mu.Lock()
	f.art.files["/v2.tar.gz"] = append(f.art.files["/v2.tar.gz"], 0) // tampered after the release was made
	f.art.mu.Unlock()
	bad := f.releaseOf("v2", url, sum)
	d := f.wait(f.deploy("prod", bad).ID)
	if d.State != "failed" || !strings.Contains(d.Reason, "sha256") {
		t.Fatalf("tampered release: %s %q, want failed naming the sha256", d.State, d.Reason)
	}
	f.allRun(2, v1)
}

// Two deployments to one environment: with lock_timeout 0 the second is
// refused, naming the holder; with a lock_timeout it waits and runs
// after the first. A lock taken by hand refuses deployments until it is
// force-released, which the audit log records.
func TestDeployLockContention(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: prod
    nodes: {role: web}
    hooks: {before: ["sleep 1"]}
`+healthCheck+`  - name: queue
    nodes: {role: web}
    lock_timeout: 5m
    hooks: {before: ["sleep 1"]}
`+healthCheck, serverOptions{})
	v1, v2 := f.release("v1", 0), f.release("v2", 0)
	first := f.deploy("prod", v1)
	eventually(t, deployTimeout, 20*time.Millisecond, func() (bool, string) {
		d := f.deployment(first.ID)
		return d.State == "running", "first deployment is " + d.State
	})
	err := f.api.try("POST", "/api/services/app/environments/prod/deployments", map[string]string{"release": v2}, http.StatusConflict, nil)
	if err != nil {
		t.Fatalf("second deployment: %v", err)
	}
	_, body, _ := f.api.call("POST", "/api/services/app/environments/prod/deployments", map[string]string{"release": v2})
	if want := fmt.Sprintf("app/prod is locked by deployment %d (admin)", first.ID); !strings.Contains(string(body), want) {
		t.Fatalf("refusal %s does not name the holder (%s)", body, want)
	}
	if d := f.wait(first.ID); d.State != "succeeded" {
		t.Fatalf("first: %+v", d)
	}

	// lock_timeout: the second waits for the first. (The nodes run v1.)
	a := f.deploy("queue", v2)
	eventually(t, deployTimeout, 20*time.Millisecond, func() (bool, string) {
		d := f.deployment(a.ID)
		return d.State == "running", "first queue deployment is " + d.State
	})
	b := f.deploy("queue", v1)
	eventually(t, deployTimeout, 20*time.Millisecond, func() (bool, string) {
		d := f.deployment(b.ID)
		return strings.Contains(d.Reason, "waiting for the lock"), fmt.Sprintf("second is %s: %s", d.State, d.Reason)
	})
	da, db := f.wait(a.ID), f.wait(b.ID)
	if da.State != "succeeded" || db.State != "succeeded" {
		t.Fatalf("queued deployments: %+v %+v", da, db)
	}
	if db.Nodes[0].Started.Before(da.Nodes[len(da.Nodes)-1].Finished) {
		t.Fatal("the second deployment started before the first finished")
	}

	// A lock by hand, force-released.
	f.api.do("PUT", "/api/services/app/environments/prod/lock", map[string]string{"reason": "incident 42"}, http.StatusOK, nil)
	_, body, _ = f.api.call("POST", "/api/services/app/environments/prod/deployments", map[string]string{"release": v2})
	if !strings.Contains(string(body), "locked by admin") || !strings.Contains(string(body), "incident 42") {
		t.Fatalf("refusal %s does not name the holder and reason", body)
	}
	f.api.do("DELETE", "/api/services/app/environments/prod/lock?force=true&reason=resolved", nil, http.StatusOK, nil)
	var audit []struct{ Action, Reason string }
	f.api.do("GET", "/api/audit?service=app&environment=prod&limit=1", nil, http.StatusOK, &audit)
	if len(audit) != 1 || audit[0].Action != "force-unlock" || !strings.Contains(audit[0].Reason, "incident 42") {
		t.Fatalf("audit: %+v", audit)
	}
}

// A node killed in the middle of its update fails its batch within
// healthy_deadline and the deployment rolls back; without automatic
// rollback and with a long healthy deadline, progress_deadline ends it.
func TestDeployNodeLost(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3, `  - name: prod
    nodes: {role: web}
    health: {type: command, command: "sh ./health.sh", interval: 100ms, healthy_deadline: 8s, progress_deadline: 5m}
  - name: bounded
    nodes: {role: web}
    auto_rollback: false
    hooks: {before: ["sleep 600"]}
    health: {type: command, command: "sh ./health.sh", healthy_deadline: 1h, progress_deadline: 4s}
`, serverOptions{})
	v1 := f.release("v1", 0)
	if d := f.wait(f.deploy("prod", v1).ID); d.State != "succeeded" {
		t.Fatalf("v1: %+v", d)
	}
	// web-1 (the first batch) dies before it reports v2.
	f.nodes[0].kill9()
	v2 := f.release("v2", 0)
	d := f.wait(f.deploy("prod", v2).ID)
	if d.State != "rolled_back" || !strings.Contains(d.Reason, "node web-1: not healthy on "+v2+" within healthy_deadline 8s") {
		t.Fatalf("node lost: %s %q", d.State, d.Reason)
	}
	if got := f.running(); got["web-2"] != v1 || got["web-3"] != v1 {
		t.Fatalf("the nodes left must stay on v1: %v", got)
	}

	d = f.wait(f.deploy("bounded", v2).ID)
	if d.State != "failed" || !strings.Contains(d.Reason, "progress deadline exceeded") {
		t.Fatalf("bounded: %s %q", d.State, d.Reason)
	}
}

// kill -9 of the server in the middle of a deployment: a new server on
// the same database resumes it to a definite end.
func TestDeployServerCrashResumes(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3, `  - name: prod
    nodes: {role: web}
    hooks: {before: ["sleep 1"]}
`+healthCheck, serverOptions{})
	v1 := f.release("v1", 0)
	d := f.deploy("prod", v1)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(d.ID)
		return got.State == "running" && got.Batch >= 1, fmt.Sprintf("%s batch %d", got.State, got.Batch)
	})
	f.srv.kill9()
	f.srv = f.srv.restart(t)
	f.api = f.api.on(f.srv)
	got := f.wait(d.ID)
	if got.State != "succeeded" || got.Batches != 3 {
		t.Fatalf("after the crash: %+v", got)
	}
	f.allRun(3, v1)
}

// ferryCLI runs the ferry binary against the fleet's server and returns
// its exit code, stdout and stderr.
func (f *fleet) ferryCLI(args ...string) (int, string, string) {
	f.t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_SERVER="+f.srv.URL, "FERRY_TOKEN="+adminToken)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The CLI: release create, deploy --wait with its progress display,
// status, node ls, lock and unlock, with their exit codes.
func TestDeployCLI(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: prod
    nodes: {role: web}
`+healthCheck, serverOptions{})
	url, sum := f.art.release(t, "v1", 0)
	code, out, errOut := f.ferryCLI("release", "create", "app", "--url", url, "--sha256", sum, "--version", "1.0")
	if code != 0 || !strings.HasPrefix(out, "app-"+sum[:12]) {
		t.Fatalf("release create: %d %q %q", code, out, errOut)
	}
	rel := strings.TrimSpace(out)
	code, out, errOut = f.ferryCLI("deploy", "app", "prod", rel, "--wait", "--reason", "first")
	if code != 0 || !strings.Contains(out, "succeeded") || !strings.Contains(errOut, "[####################] 2/2 nodes") {
		t.Fatalf("deploy --wait: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = f.ferryCLI("status", "app")
	if code != 0 || !regexp.MustCompile(`app\s+prod\s+rolling\s+`+rel).MatchString(out) {
		t.Fatalf("status: %d\n%s", code, out)
	}
	code, out, _ = f.ferryCLI("node", "ls")
	if code != 0 || strings.Count(out, "app="+rel+" running") != 2 {
		t.Fatalf("node ls: %d\n%s", code, out)
	}
	if code, out, errOut = f.ferryCLI("lock", "app", "prod", "--reason", "incident 7"); code != 0 {
		t.Fatalf("lock: %d %s %s", code, out, errOut)
	}
	code, _, errOut = f.ferryCLI("deploy", "app", "prod", rel)
	if code != 1 || !strings.Contains(errOut, "app/prod is locked by admin") || !strings.Contains(errOut, "incident 7") {
		t.Fatalf("deploy to a locked environment: %d %s", code, errOut)
	}
	if code, _, errOut = f.ferryCLI("unlock", "app", "prod"); code != 0 {
		t.Fatalf("unlock: %d %s", code, errOut)
	}
	if code, _, errOut = f.ferryCLI("status", "--watch", "app"); code != 2 {
		t.Fatalf("status --watch SERVICE: want exit 2, got %d %s", code, errOut)
	}
}

// The CD path end to end: a green build of main whose step pushes an
// artifact with `ferry artifact push --release` creates a release named by
// the build, and the environment whose auto matches deploys it to the
// nodes; a failed build deploys nothing.
func TestDeployAutoOnGreenBuild(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	_ = os.Chmod(store, 0o755)
	pipeline := func(fail bool) string {
		exit := ""
		if fail {
			exit = "\n  - exit 1"
		}
		return fmt.Sprintf(`kind: pipeline
type: exec
name: build
clone: {disable: true}
steps:
- name: publish
  environment:
    FERRY_TOKEN: {from_secret: ferry_token}
  commands:
  - mkdir -p out && echo "build $DRONE_BUILD_NUMBER" > out/version && printf '#!/bin/sh\nexit 0\n' > out/health.sh
  - tar -C out -czf app-$DRONE_BUILD_NUMBER.tar.gz version health.sh%s
  - %s artifact push app-$DRONE_BUILD_NUMBER.tar.gz --store file://%s/ --release app --server "$SERVER"
---
kind: service
name: app
environments:
  - name: staging
    nodes: {role: web}
    auto: {branches: [main], events: [push, custom]}
`+healthCheck, exit, ferryBin, store)
	}
	f := newFleet(t, 0, "", serverOptions{Args: []string{"--log-level", "debug"}}) // the service is declared by the repo that builds
	srv := f.srv
	c := f.api
	repo := gittest.NewWithOrigin(t, t.TempDir(), "cd", map[string]string{".ferry.yml": strings.ReplaceAll(pipeline(false), `"$SERVER"`, srv.URL)})
	const slug = "acme/cd"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	var tok struct {
		Token string `json:"token"`
	}
	c.do("POST", "/api/user/tokens", map[string]string{"name": "pipeline"}, http.StatusCreated, &tok)
	c.do("POST", "/api/repos/"+slug+"/secrets", map[string]any{"name": "ferry_token", "value": tok.Token, "events": []string{"push", "custom"}}, http.StatusCreated, nil)
	startAgent(t, srv.URL, c.agentToken("cd-agent"), agentOptions{Name: "cd-agent"})
	f.startNode(t, 1)
	f.startNode(t, 2)
	f.waitNodes(2)

	b := c.manualBuild(slug, "main", "")
	if got := c.waitBuild(slug, b.Number, 2*time.Minute, nil); got.Status != "success" {
		t.Fatalf("build %d: %s", b.Number, describe(got))
	}
	var ds []deployJSON
	eventually(t, deployTimeout, 20*time.Millisecond, func() (bool, string) {
		c.do("GET", "/api/deployments?service=app", nil, http.StatusOK, &ds)
		return len(ds) == 1 && ds[0].State == "succeeded", fmt.Sprintf("deployments: %+v; releases: %s; the step's log:\n%s",
			ds, c.text("/api/services/app/releases"), c.stepLog(slug, b.Number, 1, 1))
	})
	var rel struct {
		ID      string `json:"id"`
		BuildID int64  `json:"build_id"`
		Branch  string `json:"branch"`
	}
	c.do("GET", "/api/releases/"+ds[0].Release, nil, http.StatusOK, &rel)
	if rel.Branch != "main" || rel.BuildID == 0 {
		t.Fatalf("release %+v: want the build's branch and id", rel)
	}
	f.allRun(2, rel.ID)

	// A red build deploys nothing.
	repo.Commit("fail", map[string]string{".ferry.yml": strings.ReplaceAll(pipeline(true), `"$SERVER"`, srv.URL)})
	repo.Push("main")
	b = c.manualBuild(slug, "main", "")
	if got := c.waitBuild(slug, b.Number, 2*time.Minute, nil); got.Status != "failure" {
		t.Fatalf("build %d: %s", b.Number, describe(got))
	}
	c.do("GET", "/api/deployments?service=app", nil, http.StatusOK, &ds)
	if len(ds) != 1 {
		t.Fatalf("a failed build deployed: %+v", ds)
	}
}

// Two servers share a PostgreSQL database and both run the orchestrator:
// a deployment is moved by one at a time (its lease), so every step
// happens once, and when the server that created it is killed with
// SIGKILL mid-deployment, the other finishes it.
func TestDeployTwoServersOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := postgresDatabase(t)
	key := randomHex(t, 32)
	args := []string{"--lease-ttl", "3s"}
	f := newFleet(t, 0, `  - name: prod
    nodes: {role: web}
    hooks: {before: ["sleep 1"]}
`+healthCheck, serverOptions{Database: dsn, SecretKey: key, Args: args})
	a := f.srv
	b := startServer(t, serverOptions{Database: dsn, SecretKey: key, Args: args})
	// The nodes talk to b; the deployment is created through a.
	f.srv = b
	for i := range 3 {
		f.startNode(t, i+1)
	}
	f.waitNodes(3)
	f.srv = a
	v1 := f.release("v1", 0)
	d := f.deploy("prod", v1)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(d.ID)
		return got.State == "running" && got.Batch >= 1, fmt.Sprintf("%s batch %d", got.State, got.Batch)
	})
	a.kill9()
	f.srv, f.api = b, f.api.on(b)
	got := f.wait(d.ID)
	if got.State != "succeeded" || got.Batches != 3 {
		t.Fatalf("after server a died: %+v", got)
	}
	f.allRun(3, v1)
	var audit []struct{ Action string }
	f.api.do("GET", fmt.Sprintf("/api/audit?deployment=%d", d.ID), nil, http.StatusOK, &audit)
	count := map[string]int{}
	for _, e := range audit {
		count[e.Action]++
	}
	if count["deploy"] != 1 || count["start"] != 1 || count["succeeded"] != 1 || len(audit) != 3 {
		t.Fatalf("audit of deployment %d: %+v; want deploy, start and succeeded once each", d.ID, audit)
	}
}

// Promotion through gates: prod requires what staging runs and an
// approval, and its canary waits for another approval after its first
// node; cancel stops a deployment waiting at its gate, and pause holds a
// rolling deployment after its current batch until it is resumed.
func TestDeployPromoteApprovePauseCancel(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3, `  - name: staging
    nodes: {role: web}
    hooks: {before: ["sleep 0.5"]}
`+healthCheck+`  - name: prod
    nodes: {role: web}
    strategy:
      type: canary
      steps: [{nodes: 1, pause: manual}]
    gates: {requires: [staging], approval: admin}
`+healthCheck, serverOptions{})
	v1, v2 := f.release("v1", 0), f.release("v2", 0)
	// prod needs staging to run the release first.
	_, body, _ := f.api.call("POST", "/api/services/app/environments/prod/deployments", map[string]string{"release": v1})
	if !strings.Contains(string(body), "staging must run "+v1+" first; it runs nothing yet") {
		t.Fatalf("deploying to prod first: %s", body)
	}
	// Pause holds a rolling deployment after its current batch.
	d := f.deploy("staging", v1)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(d.ID)
		return got.State == "running" && got.Batch == 1, fmt.Sprintf("%s batch %d", got.State, got.Batch)
	})
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/pause", d.ID), map[string]string{"reason": "look first"}, http.StatusOK, nil)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(d.ID)
		return strings.Contains(got.Reason, "paused after batch 1 of 3"), got.State + ": " + got.Reason
	})
	if got := f.deployment(d.ID); got.Batch != 1 || got.State != "running" {
		t.Fatalf("paused deployment moved on: %+v", got)
	}
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/resume", d.ID), nil, http.StatusOK, nil)
	if got := f.wait(d.ID); got.State != "succeeded" {
		t.Fatalf("staging: %+v", got)
	}

	// Promote: waits for approval, then for the canary's manual pause.
	var p deployJSON
	f.api.do("POST", "/api/services/app/environments/staging/promote", nil, http.StatusCreated, &p)
	if p.Environment != "prod" || p.Release != v1 {
		t.Fatalf("promoted %+v", p)
	}
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(p.ID)
		return strings.Contains(got.Reason, "waiting for approval by a user with the admin role"), got.State + ": " + got.Reason
	})
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/approve", p.ID), nil, http.StatusOK, nil)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(p.ID)
		return strings.Contains(got.Reason, "paused after batch 1 of 2"), got.State + ": " + got.Reason
	})
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/approve", p.ID), nil, http.StatusOK, nil)
	if got := f.wait(p.ID); got.State != "succeeded" {
		t.Fatalf("prod: %+v", got)
	}
	f.allRun(3, v1)

	// Cancel a deployment waiting at its gate.
	f.deploy("staging", v2)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		ds := []deployJSON{}
		f.api.do("GET", "/api/deployments?environment=staging&active=true", nil, http.StatusOK, &ds)
		return len(ds) == 0, fmt.Sprintf("%d active", len(ds))
	})
	f.api.do("POST", "/api/services/app/environments/staging/promote", nil, http.StatusCreated, &p)
	eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
		got := f.deployment(p.ID)
		return strings.Contains(got.Reason, "waiting for approval"), got.State + ": " + got.Reason
	})
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/cancel", p.ID), map[string]string{"reason": "not today"}, http.StatusOK, nil)
	if got := f.wait(p.ID); got.State != "cancelled" {
		t.Fatalf("cancelled: %+v", got)
	}
	var audit []struct{ Actor, Action, Reason string }
	f.api.do("GET", fmt.Sprintf("/api/audit?deployment=%d", p.ID), nil, http.StatusOK, &audit)
	if len(audit) != 3 || audit[1].Action != "cancel" || audit[1].Reason != "not today" || audit[1].Actor != "admin" {
		t.Fatalf("audit of the cancelled deployment: %+v", audit)
	}
}
