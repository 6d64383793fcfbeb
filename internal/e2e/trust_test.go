package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/testimage"

	"github.com/ferryci/ferry/internal/gittest"
)

// userToken creates a user with no role anywhere and returns its token.
func (a *api) userToken(login string) string {
	a.t.Helper()
	a.do("POST", "/api/users", map[string]any{"login": login}, http.StatusCreated, nil)
	var tok struct {
		Token string `json:"token"`
	}
	a.do("POST", "/api/users/"+login+"/tokens", map[string]string{"name": "e2e"}, http.StatusCreated, &tok)
	return tok.Token
}

// asUser returns a client of the same server with another token.
func (a *api) asUser(token string) *api {
	c := *a
	c.token = token
	return &c
}

// requireRoot skips (or, with CI=true, fails) a test that needs to run
// steps as another user.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "running host steps as another user needs root; the tests run as uid %d", os.Geteuid())
	}
}

// TestHostExecCannotReadFerrysSecrets is finding 1 of issue 7: a user
// with no role registers a repo whose exec pipeline reads the server's
// secret key. Registration is refused by default; with open registration
// the build is refused because the repo is untrusted; and a trusted repo's
// step, run by an agent as root, runs as the exec user and can read
// neither the key, nor the agent's environment, nor its token in any
// process's command line.
func TestHostExecCannotReadFerrysSecrets(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	// The exec user must reach its work dir under the test's temporary
	// directory (every directory above an agent's work dir must let it
	// through); nothing else of the test's becomes open.
	if err := os.Chmod(filepath.Dir(tmp), 0o711); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(tmp, "data")
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}

	// By default, a user with no role may not register a repository.
	closed := startServer(t, serverOptions{})
	admin := adminAPI(t, closed)
	stranger := admin.asUser(admin.userToken("stranger"))
	status, body, err := stranger.call("POST", "/api/repos", map[string]any{"git_url": "https://git.example.com/stranger/app.git", "slug": "stranger/app"})
	if err != nil || status != http.StatusForbidden || !strings.Contains(string(body), "only administrators may register repositories") {
		t.Fatalf("no-role user registers a repo: %d %s %v; want 403", status, body, err)
	}
	closed.stop()

	srv := startServer(t, serverOptions{DataDir: dataDir, Args: []string{"--open-registration"}})
	admin = adminAPI(t, srv)
	stranger = admin.asUser(admin.userToken("stranger"))
	keyFile := filepath.Join(dataDir, "secret.key")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("the server has no secret key file: %v", err)
	}
	agentToken := admin.agentToken("host")
	agent := startAgent(t, srv.URL, agentToken, agentOptions{Name: "host", Args: []string{"--exec-user", "nobody"}})
	agent.waitOutput("host_steps_run_as=nobody", 20*time.Second)

	pipeline := fmt.Sprintf(`kind: pipeline
type: exec
name: steal
steps:
- name: read
  commands:
  - id -u
  - cat %[1]s || echo key-refused
  - cat /proc/%[2]d/environ || echo agent-environment-refused
  - |
    for f in /proc/[0-9]*; do printf '%%s: ' $(basename $f); tr '\0' ' ' < $f/cmdline 2>/dev/null || true; echo; done > %[3]s/cmdlines
  - echo "HOME=$HOME"
`, keyFile, agent.pid(), out)
	repo := gittest.NewWithOrigin(t, tmp, "app", map[string]string{".ferry.yml": pipeline})
	sha := repo.Git("rev-parse", "HEAD")

	const slug = "stranger/app"
	var r repoJSON
	// The server reads a repo when it is added: the stranger's is served over http.
	stranger.do("POST", "/api/repos", map[string]any{"git_url": gittest.Serve(t, tmp, nil) + "/app.git", "slug": slug},
		http.StatusCreated, &r)
	// Only an administrator may point a repo at the server's disk.
	admin.do("PATCH", "/api/repos/"+slug, map[string]any{"git_url": repo.URL()}, http.StatusOK, nil)

	// Untrusted: the build ends in error at once, naming the rule.
	b := stranger.manualBuild(slug, "main", sha)
	b = stranger.waitBuild(slug, b.Number, 30*time.Second, nil)
	want := `pipeline "steal": type: exec runs its steps as processes on the agent's host, which needs a trusted repository (an administrator marks it with ferry repo update --trusted)`
	if b.Status != "error" || !strings.Contains(b.Error, want) || len(b.Pipelines) != 0 {
		t.Fatalf("untrusted exec build: status %s, error %q, %d pipelines; want error %q", b.Status, b.Error, len(b.Pipelines), want)
	}
	// The repo's admin may not trust it; a server administrator may.
	if status, body, _ := stranger.call("PATCH", "/api/repos/"+slug, map[string]any{"trusted": true}); status != http.StatusForbidden {
		t.Fatalf("repo admin marks the repo trusted: %d %s, want 403", status, body)
	}
	admin.do("PATCH", "/api/repos/"+slug, map[string]any{"trusted": true}, http.StatusOK, nil)

	// Trusted, on an agent running as root: the step runs as nobody.
	b = stranger.manualBuild(slug, "main", sha)
	b = stranger.waitBuild(slug, b.Number, 60*time.Second, nil)
	if b.Status != "success" {
		t.Fatalf("trusted exec build: %s (%s) %s", b.Status, b.Error, describe(b))
	}
	p := b.Pipelines[0]
	log := stranger.stepLog(slug, b.Number, p.Number, p.step(t, "read").Number)
	for _, w := range []string{"\n65534\n", "Permission denied", "key-refused", "agent-environment-refused", "HOME=/"} {
		if !strings.Contains(log, w) {
			t.Errorf("step log lacks %q:\n%s", w, log)
		}
	}
	if strings.Contains(log, "HOME=/root\n") {
		t.Errorf("the step's HOME is root's:\n%s", log)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log, strings.TrimSpace(string(key))) || strings.Contains(log, agentToken) || strings.Contains(log, adminToken) {
		t.Errorf("the step's log holds the secret key or a token:\n%s", log)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode: %v %v, want 0700", fi.Mode().Perm(), err)
	}

	// The step read every process's command line: ferry's are there, and
	// hold no token.
	data, err := os.ReadFile(filepath.Join(out, "cmdlines"))
	if err != nil {
		t.Fatal(err)
	}
	cmdlines := string(data)
	// Other tests' processes may run on this machine, with the same admin
	// token; the agent token is this test's own.
	if strings.Contains(cmdlines, agentToken) {
		t.Errorf("the agent token is in a command line the step could read")
	}
	for _, pr := range []*proc{srv.proc, agent} {
		line := ""
		for l := range strings.SplitSeq(cmdlines, "\n") {
			if strings.HasPrefix(l, strconv.Itoa(pr.pid())+": ") {
				line = l
			}
		}
		if !strings.Contains(line, ferryBin+" ") {
			t.Fatalf("the step did not see the command line of %s (pid %d):\n%s", pr.name, pr.pid(), cmdlines)
		}
		if strings.Contains(line, adminToken) || strings.Contains(line, agentToken) {
			t.Errorf("the command line of %s holds a token: %s", pr.name, line)
		}
	}

	// A token on the command line is refused outright.
	bad := startProc(t, "agent-argv", "agent", "--server", srv.URL, "--token", agentToken)
	<-bad.done
	if bad.err == nil || !strings.Contains(bad.output(), "readable by every process") {
		t.Errorf("agent --token: %v\n%s", bad.err, bad.output())
	}
}

// TestDevicesAndNetworkModeNeedTrust is findings 2 and 4 of issue 7 on
// the docker backend: a device named after a temp volume is refused; a
// host-volume device and network_mode are refused for an untrusted repo;
// for a trusted one the device maps the host volume's path (reading
// /dev/zero) and network_mode: host reaches a service on the host's
// loopback interface.
func TestDevicesAndNetworkModeNeedTrust(t *testing.T) {
	cli := testimage.Client(t)
	image, err := testimage.Busybox(context.Background(), cli)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "loopback-only-service")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	trustedOnly := fmt.Sprintf(`kind: pipeline
type: docker
name: device
clone: {disable: true}
volumes:
- name: zero
  host: {path: /dev/zero}
steps:
- name: read
  image: %[1]s
  devices:
  - {name: zero, path: /dev/hostzero}
  commands:
  - head -c 4 /dev/hostzero | od -An -tx1
---
kind: pipeline
type: docker
name: net
clone: {disable: true}
steps:
- name: probe
  image: %[1]s
  network_mode: host
  commands:
  - wget -qO- http://127.0.0.1:%[2]s/
`, image, port)
	kmsg := fmt.Sprintf(`kind: pipeline
type: docker
name: kmsg
clone: {disable: true}
volumes:
- name: /dev/kmsg
  temp: {}
steps:
- name: write
  image: %s
  devices:
  - {name: /dev/kmsg, path: /dev/hostkmsg}
  commands:
  - echo ferry-was-here > /dev/hostkmsg
`, image)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "devices", map[string]string{".drone.yml": trustedOnly})
	shaTrusted := repo.Git("rev-parse", "HEAD")
	shaKmsg := repo.Commit("Map /dev/kmsg through a temp volume", map[string]string{".drone.yml": kmsg})
	repo.Push("main")

	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/devices"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s", "trusted": false})
	startAgent(t, srv.URL, c.agentToken("docker"), agentOptions{Name: "docker", Backend: "docker"})

	b := c.manualBuild(slug, "main", shaKmsg)
	b = c.waitBuild(slug, b.Number, 30*time.Second, nil)
	if want := `maps device volume "/dev/kmsg", which is not a host volume`; b.Status != "error" || !strings.Contains(b.Error, want) {
		t.Errorf("temp-volume device: status %s, error %q; want error %q", b.Status, b.Error, want)
	}

	b = c.manualBuild(slug, "main", shaTrusted)
	b = c.waitBuild(slug, b.Number, 30*time.Second, nil)
	for _, want := range []string{
		`pipeline "device": step "read" maps host devices, which needs a trusted repository`,
		`pipeline "device": volume "zero" mounts host path /dev/zero, which needs a trusted repository`,
		`pipeline "net": step "probe": network_mode needs a trusted repository (an administrator marks it with ferry repo update --trusted)`,
	} {
		if b.Status != "error" || !strings.Contains(b.Error, want) {
			t.Errorf("untrusted build: status %s, error %q; want it to say %q", b.Status, b.Error, want)
		}
	}

	c.do("PATCH", "/api/repos/"+slug, map[string]any{"trusted": true}, http.StatusOK, nil)
	b = c.manualBuild(slug, "main", shaTrusted)
	b = c.waitBuild(slug, b.Number, 120*time.Second, nil)
	if b.Status != "success" {
		t.Fatalf("trusted build: %s (%s) %s", b.Status, b.Error, describe(b))
	}
	dev := b.pipeline(t, "device")
	if log := c.stepLog(slug, b.Number, dev.Number, dev.step(t, "read").Number); !strings.Contains(log, "00 00 00 00") {
		t.Errorf("device step log:\n%s", log)
	}
	nw := b.pipeline(t, "net")
	if log := c.stepLog(slug, b.Number, nw.Number, nw.step(t, "probe").Number); !strings.Contains(log, "loopback-only-service") {
		t.Errorf("network_mode host step log:\n%s", log)
	}
}
