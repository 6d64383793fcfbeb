package node

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The command run mode restarts the app with its command after the switch
// and before the after hooks, as the service's user; a failing restart
// switches back.
func TestCommandModeRestartsBetweenTheSwitchAndTheAfterHooks(t *testing.T) {
	srv := newArtifactServer(t)
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	broken := appRelease(t, "v3", entry{name: "broken", body: "x"})
	srv.publish("/app.tar.gz", v1)
	dir := sharedDir(t)
	log := filepath.Join(dir, "log")
	root := filepath.Join(dir, "root")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
user: %q
services:
  app:
    watch: {url: %q, check_interval: 50ms}
    env: {LOG: %q}
    hooks:
      before: ['echo "before $(cat "$FERRY_CURRENT/version" 2>/dev/null)" >> "$LOG"']
      after: ['echo "after $(cat "$FERRY_CURRENT/version")" >> "$LOG"']
    run: {mode: command, restart: 'test ! -f broken && echo "restart $(cat version) as $(id -un)" >> "$LOG"'}
`, root, hookUser(), srv.URL+"/app.tar.gz", log))
	startNode(t, cfg)
	waitCurrent(t, root, "app", releaseID(v1))
	srv.publish("/app.tar.gz", v2)
	waitCurrent(t, root, "app", releaseID(v2))
	user := hookUser()
	if user == "" {
		user = "root"
	}
	want := []string{"before ", "restart v1 as " + user, "after v1", "before v1", "restart v2 as " + user, "after v2"}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	srv.publish("/app.tar.gz", broken)
	st := waitFailed(t, root, sha(broken))
	if !strings.Contains(st.Failed.Error, "run: run.restart: ") || st.Current != releaseID(v2) || currentTarget(t, root, "app") != releaseID(v2) {
		t.Fatalf("after a failed restart: %+v %+v", st, st.Failed)
	}
	// Switched back, the previous release was restarted again.
	if got := readLines(t, log); got[len(got)-1] != "restart v2 as "+user {
		t.Fatalf("last command %q, want v2's restart", got[len(got)-1])
	}
}
