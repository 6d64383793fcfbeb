package node

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// standaloneConfig writes a node configuration for one standalone service
// "app" watching url every 50 ms, whose hooks append to log, and returns
// its path and root.
func standaloneConfig(t *testing.T, url, log, extra string) (cfg, root string) {
	t.Helper()
	dir := sharedDir(t)
	root = filepath.Join(dir, "root")
	cfg = filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
user: %q
keep: 3
services:
  app:
    watch: {url: %q, check_interval: 50ms}
    env: {LOG: %q}
    hooks:
      before:
        - echo "before $FERRY_RELEASE $(id -un) current=$(basename "$(readlink "$FERRY_CURRENT")") prev=$FERRY_PREVIOUS_RELEASE token=${FERRY_NODE_TOKEN:-none}" >> "$LOG"
        - test -f "$FERRY_RELEASE_DIR/version"
      after:
        - echo "after $FERRY_RELEASE current=$(basename "$(readlink "$FERRY_CURRENT")") version=$(cat "$FERRY_CURRENT/version")" >> "$LOG"
      rollback:
        - echo "rollback to $FERRY_RELEASE from $FERRY_FAILED_RELEASE" >> "$LOG"
    health: {type: command, command: 'test -f version', interval: 20ms, healthy_threshold: 2}
%s`, root, hookUser(), url, log, extra))
	return cfg, root
}

func appRelease(t *testing.T, version string, more ...entry) []byte {
	return tgz(t, append([]entry{
		{name: "version", body: version + "\n"},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/run", body: "#!/bin/sh\necho " + version + "\n", mode: 0o755},
	}, more...)...)
}

// Acceptance 9: a standalone node picks up a new checksum, runs the hooks
// in order (before with the old release current, after with the new),
// and a restart does not redeploy.
func TestStandalonePicksUpNewChecksumRunsHooksInOrderAndRestartDoesNotRedeploy(t *testing.T) {
	srv := newArtifactServer(t)
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	id1, id2 := releaseID(v1), releaseID(v2)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")

	n := startNode(t, cfg)
	waitCurrent(t, root, "app", id1)
	srv.publish("/app.tar.gz", v2)
	st := waitCurrent(t, root, "app", id2)
	if st.Previous != id1 || currentTarget(t, root, "app") != id2 {
		t.Fatalf("state %+v, current -> %s", st, currentTarget(t, root, "app"))
	}
	user := hookUser()
	if user == "" {
		user = os.Getenv("USER")
	}
	want := []string{
		fmt.Sprintf("before %s %s current= prev= token=none", id1, user),
		fmt.Sprintf("after %s current=%s version=v1", id1, id1),
		fmt.Sprintf("before %s %s current=%s prev=%s token=none", id2, user, id1, id1),
		fmt.Sprintf("after %s current=%s version=v2", id2, id2),
	}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("hooks ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := srv.gets("/app.tar.gz"); n != 2 {
		t.Fatalf("%d downloads of the artifact, want 2", n)
	}

	// Restart: the node reads the unchanged checksum several times and
	// neither downloads nor runs a hook again.
	n.stop()
	sidecarReads := func() int { return srv.gets("/app.tar.gz.sha256") }
	before := sidecarReads()
	startNode(t, cfg)
	waitFor(t, "three checksum reads after the restart", func() (bool, string) {
		return sidecarReads() >= before+3, fmt.Sprint(sidecarReads())
	})
	if n := srv.gets("/app.tar.gz"); n != 2 {
		t.Fatalf("the restarted node downloaded again (%d downloads)", n)
	}
	if got := readLines(t, log); len(got) != 4 {
		t.Fatalf("the restarted node ran hooks again:\n%s", strings.Join(got, "\n"))
	}
	if st := readState(t, root, "app"); st.Current != id2 || st.Failed != nil {
		t.Fatalf("state after restart: %+v", st)
	}
}

// Acceptance 8, node side: a tampered artifact, a tarball with "../" and
// one with an escaping symlink are refused with a clear error, and the
// node stays on its release.
func TestStandaloneRefusesTamperedAndEscapingArtifacts(t *testing.T) {
	srv := newArtifactServer(t)
	v1 := appRelease(t, "v1")
	id1 := releaseID(v1)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	startNode(t, cfg)
	waitCurrent(t, root, "app", id1)
	hooksBefore := len(readLines(t, log))

	good := appRelease(t, "v2")
	tampered := appRelease(t, "v2-with-a-backdoor")
	outside := filepath.Join(filepath.Dir(root), "evil")
	for _, tc := range []struct {
		name string
		body []byte
		sum  string
		want string
	}{
		{"tampered", tampered, sha(good), "sha256 mismatch for " + srv.URL + "/app.tar.gz: want " + sha(good) + ", got " + sha(tampered)},
		{"dot-dot", appRelease(t, "v3", entry{name: "../../evil", body: "x"}), "", `refusing archive entry "../../evil": ".." in the path`},
		{"symlink", appRelease(t, "v4", entry{name: "escape", typ: tar.TypeSymlink, link: "../../../evil"}), "", `refusing archive entry "escape": symbolic link to "../../../evil" leaves the release directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := tc.sum
			if sum == "" {
				sum = sha(tc.body)
			}
			srv.publishWithSum("/app.tar.gz", tc.body, sum)
			var st *State
			waitFor(t, "the failure recorded", func() (bool, string) {
				st = readState(t, root, "app")
				return st.Failed != nil && st.Failed.SHA256 == sum, fmt.Sprintf("%+v", st)
			})
			if !strings.Contains(st.Failed.Error, "service app: release "+sum[:16]+": install: ") || !strings.Contains(st.Failed.Error, tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", st.Failed.Error, tc.want)
			}
			if st.Current != id1 || currentTarget(t, root, "app") != id1 {
				t.Fatalf("current moved: %+v -> %s", st, currentTarget(t, root, "app"))
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Fatal("the archive wrote outside the release directory")
			}
			entries, _ := os.ReadDir(filepath.Join(root, "app", "releases"))
			if len(entries) != 1 || entries[0].Name() != id1 {
				t.Fatalf("releases/ holds %v, want only %s", entries, id1)
			}
		})
	}
	if got := readLines(t, log); len(got) != hooksBefore {
		t.Fatalf("hooks ran for a refused artifact:\n%s", strings.Join(got, "\n"))
	}
}
