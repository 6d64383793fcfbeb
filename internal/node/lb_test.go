package node

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/node/lb/lbtest"
	"github.com/ferryci/ferry/internal/nodeproto"
)

// webRelease is a release of a static site served by busybox httpd.
func webRelease(t *testing.T, version string) []byte {
	return tgz(t,
		entry{name: "www/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "www/index.html", body: version},
	)
}

// A step towards acceptance 1: two nodes, each running its app as a
// supervised process behind one HAProxy, update one after the other under
// HTTP load. Each node is drained before its switch (checked in HAProxy
// while the before hook holds the update) and ready after it, and no
// request fails.
func TestHAProxyDrainAroundTheSwitchUnderLoadFailsNoRequest(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox for the app's httpd")
	}
	addrs := map[string]string{"s1": lbtest.FreePort(t), "s2": lbtest.FreePort(t)}
	hp := lbtest.Start(t, addrs)
	srv := newArtifactServer(t)
	gate := sharedDir(t)
	v1, v2 := webRelease(t, "v1"), webRelease(t, "v2")
	roots := map[string]string{}
	for _, s := range []string{"s1", "s2"} {
		srv.publish("/"+s+"/web.tar.gz", v1)
		dir := sharedDir(t)
		roots[s] = filepath.Join(dir, "root")
		cfg := filepath.Join(dir, "node.yml")
		writeFile(t, cfg, fmt.Sprintf(`root: %s
user: %q
services:
  web:
    watch: {url: %q, check_interval: 50ms}
    env: {GATE: %q, SRV: %s}
    hooks:
      before:
        - '[ -z "$FERRY_PREVIOUS_RELEASE" ] || { touch "$GATE/before-$SRV"; while [ ! -e "$GATE/go-$SRV" ]; do sleep 0.01; done; }'
    run:
      mode: process
      command: exec /bin/busybox httpd -f -p %s -h www
      stop_timeout: 5s
    health: {type: http, url: "http://%s/", interval: 20ms, healthy_threshold: 2}
    lb: {driver: haproxy, socket: %s, backend: be, server: %s}
`, roots[s], hookUser(), srv.URL+"/"+s+"/web.tar.gz", gate, s, addrs[s], addrs[s], hp.Socket, s))
		startNode(t, cfg)
	}
	ctx := context.Background()
	drivers := map[string]*lb.HAProxy{}
	for s := range addrs {
		waitCurrent(t, roots[s], "web", releaseID(v1))
		d, err := lb.New(lb.Config{Driver: "haproxy", Socket: hp.Socket, Backend: "be", Server: s}, nil)
		if err != nil {
			t.Fatal(err)
		}
		drivers[s] = d.(*lb.HAProxy)
		waitFor(t, s+" up in haproxy", func() (bool, string) {
			st, err := drivers[s].State(ctx)
			return err == nil && st.Op == 2 && !st.Drained(), fmt.Sprint(st, err)
		})
	}

	// The load: 4 clients, each sending requests one after another.
	load := lbtest.StartLoad(t, "http://"+hp.Frontend+"/", 4)
	waitFor(t, "load flowing", func() (bool, string) { return load.OK.Load() > 20, fmt.Sprint(load.OK.Load()) })

	for _, s := range []string{"s1", "s2"} {
		other := map[string]string{"s1": "s2", "s2": "s1"}[s]
		srv.publish("/"+s+"/web.tar.gz", v2)
		waitFor(t, s+"'s before hook", func() (bool, string) {
			_, err := os.Stat(filepath.Join(gate, "before-"+s))
			return err == nil, fmt.Sprint(err)
		})
		st, err := drivers[s].State(ctx)
		if err != nil || !st.Drained() {
			t.Fatalf("%s during its before hook: %+v, %v; want drained", s, st, err)
		}
		if st, _ := drivers[other].State(ctx); st.Drained() {
			t.Fatalf("%s is drained while %s updates", other, s)
		}
		if got := currentTarget(t, roots[s], "web"); got != releaseID(v1) {
			t.Fatalf("%s switched before its before hook ended: current -> %s", s, got)
		}
		served := load.OK.Load()
		writeFile(t, filepath.Join(gate, "go-"+s), "")
		waitCurrent(t, roots[s], "web", releaseID(v2))
		// The state is saved before the node re-enables the server.
		waitFor(t, s+" ready and up in haproxy after its update", func() (bool, string) {
			st, err := drivers[s].State(ctx)
			return err == nil && !st.Drained() && st.Op == 2, fmt.Sprint(st, err)
		})
		waitFor(t, "requests served after "+s+"'s update", func() (bool, string) { return load.OK.Load() > served+20, "" })
	}
	load.Stop()
	if load.Failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed: %s", load.Failed.Load(), load.Failed.Load()+load.OK.Load(), strings.Join(load.Failures(), "; "))
	}
	if load.Served("v1") == 0 || load.Served("v2") == 0 || len(load.Answers()) != 2 {
		t.Fatalf("responses: %s, want v1 and v2 only", fmt.Sprint(load.Answers()))
	}
	t.Logf("%d requests, none failed: %s", load.OK.Load(), fmt.Sprint(load.Answers()))
}

// serveText answers every request on addr with body until the test ends.
func serveText(t *testing.T, addr, body string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
}

// The serving bit of the desired state (blue-green), with a real HAProxy
// in front of a connected node (s1) and another server (s2): told not to
// serve, the node drains before anything else, installs and checks the
// release out of rotation and stays out, reporting serving false; told to
// serve the same release, it only re-enables (no download, no hook); told
// not to serve a new release, it drains first, and the new release never
// answers a request through HAProxy; when HAProxy puts it back in rotation
// (as a reload does), the node drains it again. A service without a load
// balancer refuses the bit, naming the key to set.
func TestConnectedServingBitKeepsTheNodeOutOfHAProxy(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox for the app's httpd")
	}
	addrs := map[string]string{"s1": lbtest.FreePort(t), "s2": lbtest.FreePort(t)}
	serveText(t, addrs["s2"], "other")
	hp := lbtest.Start(t, addrs)
	ps := newProtoServer(t, "tok")
	art := newArtifactServer(t)
	v1, v2 := webRelease(t, "v1"), webRelease(t, "v2")
	art.publish("/v1.tar.gz", v1)
	art.publish("/v2.tar.gz", v2)
	dir, gate := sharedDir(t), sharedDir(t)
	root := filepath.Join(dir, "root")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hookLog := filepath.Join(gate, "hooks.log")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
name: web-1
user: %q
server: {url: %q, token_file: %q, poll_wait: 2s}
services:
  web:
    env: {GATE: %q}
    hooks:
      before:
        - 'echo "before $FERRY_RELEASE" >> "$GATE/hooks.log"; touch "$GATE/before-$FERRY_RELEASE"; while [ ! -e "$GATE/go-$FERRY_RELEASE" ]; do sleep 0.01; done'
    run:
      mode: process
      command: exec /bin/busybox httpd -f -p %s -h www
      stop_timeout: 5s
    health: {type: http, url: "http://%s/", interval: 20ms, healthy_threshold: 2}
    lb: {driver: haproxy, socket: %s, backend: be, server: s1}
  plain: {}
`, root, hookUser(), ps.URL, tokenFile, gate, addrs["s1"], addrs["s1"], hp.Socket))
	node := startNode(t, cfg)
	d, err := lb.New(lb.Config{Driver: "haproxy", Socket: hp.Socket, Backend: "be", Server: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	drv := d.(*lb.HAProxy)
	ctx := context.Background()
	drained := func() bool {
		st, err := drv.State(ctx)
		return err == nil && st.Drained()
	}

	// Requests through HAProxy, counting who answered.
	load := lbtest.StartLoad(t, "http://"+hp.Frontend+"/", 1)
	served, answers := load.Served, func() string { return fmt.Sprint(load.Answers()) }
	waitFor(t, "requests answered by s2", func() (bool, string) { return served("other") > 10, "" })

	off, on := false, true
	rel := func(id string, body []byte, serving *bool) nodeproto.Release {
		return nodeproto.Release{ID: id, Artifact: &nodeproto.Artifact{URL: art.URL + "/" + map[string]string{"r1": "v1", "r2": "v2"}[id] + ".tar.gz", SHA256: sha(body)}, Serving: serving}
	}
	servingIs := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			st, _ := ps.status("web")
			return st.Serving != nil && *st.Serving == want && st.State == nodeproto.StateRunning, fmt.Sprintf("%+v", st)
		}
	}

	// standby sets release id out of rotation and checks that the node is
	// drained before its before hook, and stays out once it runs it.
	standby := func(id string, body []byte) {
		t.Helper()
		ps.setDesired("web", rel(id, body, &off))
		waitFor(t, id+"'s before hook", func() (bool, string) {
			_, err := os.Stat(filepath.Join(gate, "before-"+id))
			return err == nil, fmt.Sprint(err)
		})
		if !drained() {
			t.Fatalf("s1 is not drained while %s's before hook runs", id)
		}
		writeFile(t, filepath.Join(gate, "go-"+id), "")
		ps.waitRunning(t, "web", id)
		waitFor(t, id+" reported out of rotation", servingIs(false))
		if st, _ := ps.status("web"); st.LB != "haproxy" || !st.Healthy || !drained() {
			t.Fatalf("reported %+v; haproxy has s1 drained: %v", st, drained())
		}
		before := served("other")
		waitFor(t, "more requests through haproxy", func() (bool, string) { return served("other") > before+20, "" })
	}

	standby("r1", v1)
	if n := served("v1"); n != 0 {
		t.Fatalf("r1 answered %d requests through haproxy while out of rotation", n)
	}

	// The switch: r1 serving; the node only re-enables it.
	ps.setDesired("web", rel("r1", v1, &on))
	waitFor(t, "r1 reported serving", servingIs(true))
	waitFor(t, "r1 answering through haproxy", func() (bool, string) { return served("v1") > 10, answers() })
	if drained() {
		t.Fatal("s1 is drained after serving true")
	}
	if n := art.gets("/v1.tar.gz"); n != 1 {
		t.Fatalf("v1 downloaded %d times", n)
	}

	// r2, out of rotation: the node drains first, then installs.
	standby("r2", v2)
	load.Stop()
	if served("v2") != 0 || load.Failed.Load() != 0 {
		t.Fatalf("through haproxy: %s, %d failed (%s); want no v2 and no failure", answers(), load.Failed.Load(), strings.Join(load.Failures(), "; "))
	}
	if got := strings.Join(readLines(t, hookLog), ","); got != "before r1,before r2" {
		t.Fatalf("before hooks ran for %s; want r1 and r2 once each", got)
	}

	// A reload of HAProxy's configuration puts every server back in
	// rotation (it forgets "set server … state drain", unless a
	// server-state-file keeps it); the node, told to keep r2 out, drains
	// it again at its next poll.
	if out, err := drv.Command(ctx, "set server be/s1 state ready"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set server be/s1 state ready: %q %v", out, err)
	}
	// The node's warning shows it found s1 in rotation (it may drain it
	// again before this test reads HAProxy's state).
	waitFor(t, "the node finding s1 back in rotation", func() (bool, string) {
		return strings.Contains(node.out.String(), "the load balancer put the service back in rotation"), ""
	})
	waitFor(t, "the node draining s1 again", func() (bool, string) { return drained(), "" })
	if st, _ := ps.status("web"); st.Serving == nil || *st.Serving || st.Error != "" || st.Release != "r2" {
		t.Fatalf("after draining again, reported %+v", st)
	}

	// A service without a load balancer refuses the bit.
	ps.setDesired("plain", nodeproto.Release{ID: "p1", Artifact: &nodeproto.Artifact{URL: art.URL + "/v1.tar.gz", SHA256: sha(v1)}, Serving: &off})
	waitFor(t, "plain reported failed", func() (bool, string) {
		st, _ := ps.status("plain")
		return st.State == nodeproto.StateFailed && st.Desired == "p1", fmt.Sprintf("%+v", st)
	})
	if st, _ := ps.status("plain"); !strings.Contains(st.Error, "configure services.plain.lb") || st.Release != "" {
		t.Fatalf("plain reported %+v", st)
	}
}
