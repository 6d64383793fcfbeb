package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tar bomb (a small download that unpacks to more than unpack.max_bytes)
// and an archive of too many entries are refused by a real node with a
// clear error; it stays on its release, runs no hook, and keeps no part
// of the refused one.
func TestStandaloneRefusesTarBombs(t *testing.T) {
	srv := newArtifactServer(t)
	v1 := appRelease(t, "v1")
	id1 := releaseID(v1)
	srv.publish("/app.tar.gz", v1)
	log := filepath.Join(sharedDir(t), "hooks.log")
	cfg, root := standaloneConfig(t, srv.URL+"/app.tar.gz", log, "")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("unpack: {max_bytes: 1048576, max_entries: 20}\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	startNode(t, cfg)
	waitCurrent(t, root, "app", id1)
	hooksBefore := len(readLines(t, log))

	var many []entry
	for i := range 20 {
		many = append(many, entry{name: fmt.Sprintf("f%02d", i), body: "x"})
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"bomb", appRelease(t, "v2", entry{name: "zeros", body: strings.Repeat("\x00", 8<<20)}), `refusing archive entry "zeros": the archive unpacks to more than 1 MiB (the node's unpack.max_bytes)`},
		{"entries", appRelease(t, "v3", many...), `refusing archive entry "f17": the archive has more than 20 entries (the node's unpack.max_entries)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.body) > 64<<10 {
				t.Fatalf("the bomb is %d bytes compressed; it should be small", len(tc.body))
			}
			sum := sha(tc.body)
			srv.publish("/app.tar.gz", tc.body)
			st := waitFailed(t, root, sum)
			if !strings.Contains(st.Failed.Error, "service app: release "+sum[:16]+": install: ") || !strings.Contains(st.Failed.Error, tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", st.Failed.Error, tc.want)
			}
			if st.Current != id1 || currentTarget(t, root, "app") != id1 {
				t.Fatalf("current moved: %+v -> %s", st, currentTarget(t, root, "app"))
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
