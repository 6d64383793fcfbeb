package node

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/node/lb/lbtest"
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
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	bodies := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get("http://" + hp.Frontend + "/")
				var body []byte
				if err == nil {
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", res.Status)
					}
				}
				mu.Lock()
				if err != nil {
					failed.Add(1)
					failures = append(failures, err.Error())
				} else {
					ok.Add(1)
					bodies[string(body)]++
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, "load flowing", func() (bool, string) { return ok.Load() > 20, fmt.Sprint(ok.Load()) })

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
		served := ok.Load()
		writeFile(t, filepath.Join(gate, "go-"+s), "")
		waitCurrent(t, roots[s], "web", releaseID(v2))
		// The state is saved before the node re-enables the server.
		waitFor(t, s+" ready and up in haproxy after its update", func() (bool, string) {
			st, err := drivers[s].State(ctx)
			return err == nil && !st.Drained() && st.Op == 2, fmt.Sprint(st, err)
		})
		waitFor(t, "requests served after "+s+"'s update", func() (bool, string) { return ok.Load() > served+20, "" })
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed: %s", failed.Load(), failed.Load()+ok.Load(), strings.Join(failures[:min(len(failures), 5)], "; "))
	}
	if bodies["v1"] == 0 || bodies["v2"] == 0 || len(bodies) != 2 {
		t.Fatalf("responses: %v, want v1 and v2 only", bodies)
	}
	t.Logf("%d requests, none failed: %v", ok.Load(), bodies)
}
