package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/node/lb/lbtest"
	"github.com/ferryci/ferry/internal/testimage"
)

// Acceptance 1 and 2 of issue 10: five target hosts run as Docker
// containers from testimage.Node (busybox, a static ferry, the webapp),
// each running `ferry node` connected to a real server and the webapp as a
// supervised process, all behind a real HAProxy. Under continuous HTTP
// load through HAProxy:
//   - a rolling deploy of v2 (max_parallel 1) ends with every node on v2,
//     each node drained in HAProxy before its switch, and no failed request;
//   - a canary of v3, whose health check fails, rolls back automatically:
//     the fleet ends on v2, the deployment rolled_back with the reason, and
//     no request fails.
//
// The containers share the host's network namespace, so that the nodes
// reach the server and the artifact server on loopback and HAProxy reaches
// each webapp on its own loopback port; HAProxy's admin socket is mounted
// into each container for the node's lb driver.
func TestDeployContainersBehindHAProxyUnderLoad(t *testing.T) {
	t.Parallel()
	const n = 5
	cli := testimage.Client(t)
	ref, err := testimage.Node(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for i := range n {
		addrs[fmt.Sprintf("web-%d", i+1)] = lbtest.FreePort(t)
	}
	hp := lbtest.Start(t, addrs)

	// Health: the release must not be marked broken, and the app must
	// answer on its port (ADDR comes from the node's service env).
	f := newFleet(t, 0, `  - name: prod
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 1}
    hooks: {before: ["sleep 0.3"]}
    health: {type: command, command: 'test ! -e broken && wget -q -O /dev/null "http://$ADDR/health"', interval: 50ms, healthy_deadline: 10s, progress_deadline: 5m}
  - name: canary
    nodes: {role: web}
    strategy:
      type: canary
      steps: [{nodes: 1, pause: 1s}, {nodes: 60%}]
    hooks: {before: ["sleep 0.3"]}
    health: {type: command, command: 'test ! -e broken && wget -q -O /dev/null "http://$ADDR/health"', interval: 50ms, healthy_deadline: 3s, progress_deadline: 5m}
`, serverOptions{})
	for i := range n {
		name := fmt.Sprintf("web-%d", i+1)
		f.startContainerNode(t, cli, ref, name, "{role: web}", addrs[name], hp.Socket)
	}
	f.waitNodes(n)

	ctx := context.Background()
	drivers := haproxyDrivers(t, hp, addrs)

	v1 := f.webRelease("v1", false)
	if d := f.wait(f.deploy("prod", v1).ID); d.State != "succeeded" {
		t.Fatalf("v1: %+v", d)
	}
	for name, drv := range drivers {
		eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
			st, err := drv.State(ctx)
			return err == nil && st.Op == 2 && !st.Drained(), fmt.Sprintf("%s in haproxy: %+v %v", name, st, err)
		})
	}

	load := lbtest.StartLoad(t, "http://"+hp.Frontend+"/", 4)
	waitServed(t, load, 50)

	// Watch each server: its HAProxy state and the version it serves
	// directly, to see that it was drained before it served v2.
	watch := watchServers(t, drivers, addrs)
	v2 := f.webRelease("v2", false)
	d := f.wait(f.deploy("prod", v2).ID)
	if d.State != "succeeded" || d.Batches != n {
		t.Fatalf("v2: %+v", d)
	}
	f.allRun(n, v2)
	// The watch samples each server in turn: on a busy machine the last
	// batch can end before it has seen that server serve v2. Stop it once
	// it has seen every server serve v2.
	for name := range addrs {
		eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
			return watch.seen(name, "v2"), fmt.Sprintf("%s seen serving v2: %s", name, watch.history(name))
		})
	}
	watch.stop()
	for name := range addrs {
		if !watch.drainedBefore(name, "v2") {
			t.Errorf("%s served v2 without having been seen drained before: %s", name, watch.history(name))
		}
	}
	waitServed(t, load, load.OK.Load()+50)

	// The canary of a broken v3 rolls back, and no request fails.
	v3 := f.webRelease("v3", true)
	d = f.wait(f.deploy("canary", v3).ID)
	if d.State != "rolled_back" || !strings.Contains(d.Reason, "batch 1 of 3 failed: node web-1") || !strings.Contains(d.Reason, "health check") {
		t.Fatalf("v3 canary: %s %q", d.State, d.Reason)
	}
	f.allRun(n, v2)
	eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
		st, err := drivers["web-1"].State(ctx)
		return err == nil && !st.Drained() && st.Op == 2, fmt.Sprintf("web-1 back in haproxy: %+v %v", st, err)
	})
	waitServed(t, load, load.OK.Load()+50)
	load.Stop()
	ok, failed, bodies, failures := load.OK.Load(), load.Failed.Load(), load.Answers(), load.Failures()
	if failed > 0 {
		t.Fatalf("%d of %d requests failed: %s", failed, failed+ok, strings.Join(failures, "; "))
	}
	if bodies["v1\n"] == 0 || bodies["v2\n"] == 0 || bodies["v3\n"] != 0 {
		t.Fatalf("responses %v: want v1 and v2, never v3", bodies)
	}
	t.Logf("%d requests through haproxy, none failed: %v", ok, bodies)
}

// haproxyDrivers returns a driver for each server of addrs in hp's
// backend, to read their state.
func haproxyDrivers(t testing.TB, hp *lbtest.HAProxy, addrs map[string]string) map[string]*lb.HAProxy {
	t.Helper()
	drivers := map[string]*lb.HAProxy{}
	for name := range addrs {
		d, err := lb.New(lb.Config{Driver: "haproxy", Socket: hp.Socket, Backend: "be", Server: name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		drivers[name] = d.(*lb.HAProxy)
	}
	return drivers
}

// webRelease publishes a release of the webapp: a version file, and with
// broken a marker the environment's health check refuses.
func (f *fleet) webRelease(version string, broken bool) string {
	f.t.Helper()
	files := []tarFile{{"version", version + "\n"}}
	if broken {
		files = append(files, tarFile{"broken", ""})
	}
	url, sum := f.art.publish(f.t, version+"-web", files...)
	return f.releaseOf(version, url, sum)
}

// startContainerNode runs `ferry node` in a container of the node image,
// on the host's network, with labels (a YAML flow map), its webapp on addr
// and HAProxy's admin socket mounted; the container is removed when the
// test ends.
func (f *fleet) startContainerNode(t testing.TB, cli *client.Client, ref, name, labels, addr, socket string) {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	f.api.do("POST", "/api/node-tokens", map[string]string{"name": name}, http.StatusCreated, &tok)
	etc := filepath.Join(f.dir, name+"-etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "token"), []byte(tok.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, etc, "node.yml", fmt.Sprintf(`root: /var/lib/ferry-node
name: %s
labels: %s
user: nobody
server: {url: %q, token_file: /etc/ferry/token, poll_wait: 5s}
services:
  app:
    env: {ADDR: %q}
    run: {mode: process, command: exec webapp, stop_timeout: 5s}
    lb: {driver: haproxy, socket: %q, backend: be, server: %s}
`, name, labels, f.srv.URL, addr, socket, name))
	ctx := context.Background()
	sockDir := filepath.Dir(socket)
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: ref}, &container.HostConfig{
		NetworkMode: "host",
		Binds:       []string{etc + ":/etc/ferry:ro", sockDir + ":" + sockDir},
	}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating the container of %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if rc, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"}); err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				t.Logf("%s (container) output:\n%s", name, b)
			}
		}
		_ = cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the container of %s: %v", name, err)
	}
}

// waitServed waits until l has had n requests answered.
func waitServed(t testing.TB, l *lbtest.Load, n int64) {
	t.Helper()
	eventually(t, time.Minute, 10*time.Millisecond, func() (bool, string) {
		return l.OK.Load() >= n, fmt.Sprintf("%d of %d requests served (%d failed)", l.OK.Load(), n, l.Failed.Load())
	})
}

// serverWatch samples, for each server, whether HAProxy has it drained and
// which version it serves when asked directly.
type serverWatch struct {
	mu      sync.Mutex
	samples map[string][]string // "drained" or the version served
	done    chan struct{}
	wg      sync.WaitGroup
}

func watchServers(t testing.TB, drivers map[string]*lb.HAProxy, addrs map[string]string) *serverWatch {
	w := &serverWatch{samples: map[string][]string{}, done: make(chan struct{})}
	tr := &http.Transport{DisableKeepAlives: true}
	hc := &http.Client{Timeout: time.Second, Transport: tr}
	for name, drv := range drivers {
		w.wg.Go(func() {
			for {
				select {
				case <-w.done:
					return
				case <-time.After(5 * time.Millisecond):
				}
				sample := ""
				if st, err := drv.State(context.Background()); err == nil && st.Drained() {
					sample = "drained"
				} else if res, err := hc.Get("http://" + addrs[name] + "/"); err == nil {
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					sample = strings.TrimSpace(string(b))
				}
				if sample == "" {
					continue
				}
				w.mu.Lock()
				if s := w.samples[name]; len(s) == 0 || s[len(s)-1] != sample {
					w.samples[name] = append(w.samples[name], sample)
				}
				w.mu.Unlock()
			}
		})
	}
	t.Cleanup(w.stop)
	return w
}

func (w *serverWatch) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// drainedBefore reports whether the server was seen drained before it was
// first seen serving version.
func (w *serverWatch) drainedBefore(name, version string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	drained := false
	for _, s := range w.samples[name] {
		if s == "drained" {
			drained = true
		}
		if s == version {
			return drained
		}
	}
	return false
}

// seen reports whether the server was seen serving version.
func (w *serverWatch) seen(name, version string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.samples[name], version)
}

func (w *serverWatch) history(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.samples[name], " → ")
}
