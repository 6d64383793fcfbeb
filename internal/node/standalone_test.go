package node

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// standaloneConfig writes a node configuration for one standalone service
// "app" watching url every 50 ms, whose hooks append to log, and returns
// its path and root. The after hooks of release block (if not empty)
// create the file "after" next to log, then wait for a file "go" there.
func standaloneConfig(t *testing.T, url, log, block string) (cfg, root string) {
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
    env: {LOG: %q, GATE: %q, BLOCK: %q}
    hooks:
      before:
        - echo "before $FERRY_RELEASE $(id -un) current=$(basename "$(readlink "$FERRY_CURRENT")") prev=$FERRY_PREVIOUS_RELEASE token=${FERRY_NODE_TOKEN:-none}" >> "$LOG"
        - test -f "$FERRY_RELEASE_DIR/version"
      after:
        - echo "after $FERRY_RELEASE current=$(basename "$(readlink "$FERRY_CURRENT")") version=$(cat "$FERRY_CURRENT/version")" >> "$LOG"
        - '[ "$FERRY_RELEASE" != "$BLOCK" ] || { touch "$GATE/after"; while [ ! -e "$GATE/go" ]; do sleep 0.01; done; }'
      rollback:
        - echo "rollback to $FERRY_RELEASE from $FERRY_FAILED_RELEASE" >> "$LOG"
    health: {type: command, command: 'test -f version && test ! -f unhealthy', interval: 20ms, healthy_threshold: 2, healthy_deadline: 5s}
`, root, hookUser(), url, log, filepath.Dir(log), block))
	return cfg, root
}

// waitFailed waits until the state records the failure of the artifact
// with the given sha256.
func waitFailed(t *testing.T, root, sum string) *State {
	t.Helper()
	var st *State
	waitFor(t, "the failure recorded", func() (bool, string) {
		st = readState(t, root, "app")
		return st.Failed != nil && st.Failed.SHA256 == sum, fmt.Sprintf("%+v", st)
	})
	return st
}

func appRelease(t testing.TB, version string, more ...entry) []byte {
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
			st := waitFailed(t, root, sum)
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

// A hook failure before the switch, and a health check failing after it,
// both leave the previous release running; the second runs the rollback
// hooks.
func TestStandaloneFailedUpdateLeavesThePreviousReleaseRunning(t *testing.T) {
	srv := newArtifactServer(t)
	v1 := appRelease(t, "v1")
	id1 := releaseID(v1)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	startNode(t, cfg)
	waitCurrent(t, root, "app", id1)

	noVersion := tgz(t, entry{name: "other", body: "x"})
	unhealthy := appRelease(t, "v3", entry{name: "unhealthy", body: "x"})
	for _, tc := range []struct {
		name     string
		body     []byte
		want     string
		lastHook string
	}{
		{"before hook", noVersion, "before hook 2: \"test -f \\\"$FERRY_RELEASE_DIR/version\\\"\": exit status 1", "before " + releaseID(noVersion)},
		{"health check", unhealthy, "health check: health check command: not healthy within healthy_deadline 5s: ", "rollback to " + id1 + " from " + releaseID(unhealthy)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.publish("/app.tar.gz", tc.body)
			st := waitFailed(t, root, sha(tc.body))
			if !strings.Contains(st.Failed.Error, tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", st.Failed.Error, tc.want)
			}
			if st.Current != id1 || currentTarget(t, root, "app") != id1 || st.Applying != "" {
				t.Fatalf("not on the previous release: %+v -> %s", st, currentTarget(t, root, "app"))
			}
			lines := readLines(t, log)
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tc.lastHook) {
				t.Fatalf("last hook %q, want %q…", last, tc.lastHook)
			}
		})
	}
}

// Acceptance 7, node side: going back to a kept release downloads
// nothing; it runs the hooks and switches.
func TestStandaloneRollbackToAKeptReleaseDownloadsNothing(t *testing.T) {
	srv := newArtifactServer(t)
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	id1, id2 := releaseID(v1), releaseID(v2)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	startNode(t, cfg)
	waitCurrent(t, root, "app", id1)
	srv.publish("/app.tar.gz", v2)
	waitCurrent(t, root, "app", id2)
	downloads := srv.gets("/app.tar.gz")

	srv.publish("/app.tar.gz", v1)
	st := waitCurrent(t, root, "app", id1)
	if n := srv.gets("/app.tar.gz"); n != downloads {
		t.Fatalf("the rollback downloaded the artifact again (%d GETs, want %d)", n, downloads)
	}
	if st.Previous != id2 || currentTarget(t, root, "app") != id1 {
		t.Fatalf("state %+v", st)
	}
	lines := readLines(t, log)
	if got := lines[len(lines)-1]; got != "after "+id1+" current="+id1+" version=v1" {
		t.Fatalf("last hook %q", got)
	}
}

// Acceptance 5: kill -9 of the node while it unpacks leaves current on
// the previous release; restarted, the node resumes the download where it
// stopped and converges.
func TestKillDuringUnpackLeavesCurrentOnThePreviousReleaseAndConverges(t *testing.T) {
	srv := newArtifactServer(t)
	v1 := appRelease(t, "v1")
	id1 := releaseID(v1)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	n := startNode(t, cfg)
	waitCurrent(t, root, "app", id1)

	// A 2 MB release of incompressible files: its first half unpacks
	// dozens of them before the server stalls.
	var files []entry
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 64 {
		b := make([]byte, 32<<10)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		files = append(files, entry{name: fmt.Sprintf("data/%02d.bin", i), body: string(b)})
	}
	v2 := appRelease(t, "v2", files...)
	id2 := releaseID(v2)
	release := srv.stallNext("/app.tar.gz")
	srv.publish("/app.tar.gz", v2)
	<-srv.stalled
	releases := filepath.Join(root, "app", "releases")
	waitFor(t, "files unpacked into a temporary directory", func() (bool, string) {
		tmps, _ := filepath.Glob(filepath.Join(releases, ".tmp-"+id2+"-*", "data", "*.bin"))
		return len(tmps) > 0, fmt.Sprint(tmps)
	})
	n.kill9()

	if got := currentTarget(t, root, "app"); got != id1 {
		t.Fatalf("after kill -9 during unpack, current -> %q, want %s", got, id1)
	}
	if b, err := os.ReadFile(filepath.Join(root, "app", "current", "version")); err != nil || string(b) != "v1\n" {
		t.Fatalf("current/version = %q, %v", b, err)
	}
	if st := readState(t, root, "app"); st.Current != id1 || st.Applying != "" {
		t.Fatalf("state after the kill: %+v", st)
	}
	partial, err := os.Stat(filepath.Join(root, "app", "downloads", sha(v2)+".partial"))
	if err != nil || partial.Size() == 0 {
		t.Fatalf("no partial download kept: %v", err)
	}

	release()
	startNode(t, cfg)
	waitCurrent(t, root, "app", id2)
	reqs := srv.requestsOf("/app.tar.gz")
	last := reqs[len(reqs)-1]
	if want := fmt.Sprintf("GET /app.tar.gz bytes=%d-", partial.Size()); last != want {
		t.Fatalf("the restarted node fetched with %q, want %q (resuming the download)", last, want)
	}
	if tmps, _ := filepath.Glob(filepath.Join(releases, ".tmp-*")); len(tmps) > 0 {
		t.Fatalf("unfinished unpacks left: %v", tmps)
	}
	if b, err := os.ReadFile(filepath.Join(root, "app", "current", "data", "63.bin")); err != nil || len(b) != 32<<10 {
		t.Fatalf("current/data/63.bin: %d bytes, %v", len(b), err)
	}
	var v2hooks []string
	for _, l := range readLines(t, log) {
		if strings.Contains(l, " "+id2+" ") {
			v2hooks = append(v2hooks, l)
		}
	}
	if len(v2hooks) != 2 {
		t.Fatalf("hooks of v2: %q, want one before and one after", v2hooks)
	}
}

// A node stopped (SIGTERM) in the middle of a download does not count the
// release as failed: restarted, it resumes and applies it.
func TestStopDuringADownloadIsNotAFailedRelease(t *testing.T) {
	srv := newArtifactServer(t)
	v1 := appRelease(t, "v1")
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	n := startNode(t, cfg)
	waitCurrent(t, root, "app", releaseID(v1))

	v2 := appRelease(t, "v2", entry{name: "big", body: strings.Repeat("x", 1<<20)})
	release := srv.stallNext("/app.tar.gz")
	srv.publish("/app.tar.gz", v2)
	<-srv.stalled
	n.stop()
	if st := readState(t, root, "app"); st.Failed != nil || st.Current != releaseID(v1) {
		t.Fatalf("state after a stop mid-download: %+v %+v", st, st.Failed)
	}
	release()
	startNode(t, cfg)
	waitCurrent(t, root, "app", releaseID(v2))
}

// Acceptance 5, after the switch: kill -9 of the node while an after hook
// runs. The restarted node puts `current` back on the last release that
// completed, then applies the new one again from the kept directory.
func TestKillAfterTheSwitchConvergesFromTheLastCompleteRelease(t *testing.T) {
	srv := newArtifactServer(t)
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	id1, id2 := releaseID(v1), releaseID(v2)
	srv.publish("/app.tar.gz", v1)
	gate := sharedDir(t)
	log := filepath.Join(gate, "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, id2)
	n := startNode(t, cfg)
	waitCurrent(t, root, "app", id1)

	srv.publish("/app.tar.gz", v2)
	waitFor(t, "v2's after hook", func() (bool, string) {
		_, err := os.Stat(filepath.Join(gate, "after"))
		return err == nil, fmt.Sprint(err)
	})
	if st := readState(t, root, "app"); st.Applying != id2 || st.Current != id1 || currentTarget(t, root, "app") != id2 {
		t.Fatalf("during the after hook: %+v, current -> %s", st, currentTarget(t, root, "app"))
	}
	n.kill9()
	if err := os.Remove(filepath.Join(gate, "after")); err != nil {
		t.Fatal(err)
	}

	startNode(t, cfg)
	waitFor(t, "v2's after hook, again", func() (bool, string) {
		_, err := os.Stat(filepath.Join(gate, "after"))
		return err == nil, fmt.Sprint(err)
	})
	writeFile(t, filepath.Join(gate, "go"), "")
	waitCurrent(t, root, "app", id2)
	var befores []string
	for _, l := range readLines(t, log) {
		if strings.HasPrefix(l, "before "+id2) {
			befores = append(befores, l)
		}
	}
	// Both before hooks of v2 ran with v1 current: the restarted node had
	// switched back to it.
	want := fmt.Sprintf("current=%s prev=%s", id1, id1)
	if len(befores) != 2 || !strings.Contains(befores[0], want) || !strings.Contains(befores[1], want) {
		t.Fatalf("v2's before hooks: %q, want two with %q", befores, want)
	}
	if n := srv.gets("/app.tar.gz"); n != 2 {
		t.Fatalf("%d downloads; the re-apply must use the kept release", n)
	}
}
