package node

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferryci/ferry/internal/node/lb/lbtest"
)

// The process run mode restarts a crashed app, and the app does not
// outlive a node killed with SIGKILL; the restarted node starts it again
// without redeploying.
func TestProcessModeRestartsACrashedAppAndDiesWithTheNode(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox for the app's httpd")
	}
	srv := newArtifactServer(t)
	v1 := webRelease(t, "v1")
	srv.publish("/web.tar.gz", v1)
	addr := lbtest.FreePort(t)
	dir := sharedDir(t)
	root := filepath.Join(dir, "root")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
user: %q
services:
  web:
    watch: {url: %q, check_interval: 50ms}
    run: {mode: process, command: exec /bin/busybox httpd -f -p %s -h www, restart_delay: 50ms}
    health: {type: tcp, address: %q, interval: 20ms}
`, root, hookUser(), srv.URL+"/web.tar.gz", addr, addr))
	pidFile := filepath.Join(root, "web", "process.pid")
	pid := func() int {
		b, _ := os.ReadFile(pidFile)
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(f[0])
		return n
	}
	serves := func() (bool, string) {
		res, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b) == "v1", string(b)
	}
	n := startNode(t, cfg)
	waitCurrent(t, root, "web", releaseID(v1))
	waitFor(t, "the app serving", serves)

	first := pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app restarted", func() (bool, string) {
		p := pid()
		return p != 0 && p != first, fmt.Sprint(p)
	})
	waitFor(t, "the restarted app serving", serves)

	second := pid()
	n.kill9()
	waitFor(t, "the app gone with its node", func() (bool, string) {
		_, err := procStart(second)
		return err != nil, fmt.Sprint(err)
	})
	startNode(t, cfg)
	waitFor(t, "the app started by the restarted node", func() (bool, string) {
		p := pid()
		return p != 0 && p != second, fmt.Sprint(p)
	})
	waitFor(t, "the app serving again", serves)
	if got := srv.gets("/web.tar.gz"); got != 1 {
		t.Fatalf("%d downloads; a restart must not redeploy", got)
	}
}
