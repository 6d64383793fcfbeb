package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry for tgz.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

// tgz builds a gzip-compressed tar of the entries.
func tgz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUnpackKeepsFilesDirectoriesAndInnerLinks(t *testing.T) {
	dir := t.TempDir()
	err := unpackTarGz(bytes.NewReader(tgz(t,
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/app", body: "#!/bin/sh\necho hi\n", mode: 0o755},
		entry{name: "./conf/app.ini", body: "x=1"},
		entry{name: "conf/current.ini", typ: tar.TypeSymlink, link: "app.ini"},
		entry{name: "bin/app2", typ: tar.TypeLink, link: "bin/app"},
		entry{name: "top", typ: tar.TypeSymlink, link: "conf/../bin"},
		entry{name: "open", body: "x", mode: 0o4777},
	)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/app")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/app: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "open")); err != nil || fi.Mode() != 0o755 {
		t.Fatalf("a 4777 file unpacked as %v, %v; want 0755", fi.Mode(), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "conf/current.ini")); err != nil || string(b) != "x=1" {
		t.Fatalf("conf/current.ini through its link: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin/app2")); err != nil || !strings.Contains(string(b), "echo hi") {
		t.Fatalf("hard link: %q %v", b, err)
	}
}

func TestUnpackRefusesEntriesThatEscape(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot-dot", []entry{{name: "../evil", body: "x"}}, `refusing archive entry "../evil": ".." in the path`},
		{"dot-dot inside", []entry{{name: "a/../../evil", body: "x"}}, `".." in the path`},
		{"absolute", []entry{{name: "/tmp/evil", body: "x"}}, "absolute path"},
		{"symlink out", []entry{{name: "link", typ: tar.TypeSymlink, link: "../../etc"}}, `symbolic link to "../../etc" leaves the release directory`},
		{"symlink absolute", []entry{{name: "link", typ: tar.TypeSymlink, link: "/etc"}}, `symbolic link to the absolute path "/etc"`},
		{"symlink nested out", []entry{{name: "a/b/link", typ: tar.TypeSymlink, link: "../../../x"}}, "leaves the release directory"},
		{"write through a symlink", []entry{
			{name: "d", typ: tar.TypeSymlink, link: "."},
			{name: "d/x", body: "through"},
		}, "its path goes through a symbolic link"},
		{"hard link out", []entry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}, "hard link"},
		{"hard link absolute", []entry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, "hard link"},
		{"device", []entry{{name: "dev", typ: tar.TypeChar}}, "entry type"},
		{"fifo", []entry{{name: "fifo", typ: tar.TypeFifo}}, "entry type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a", "b", "release")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := unpackTarGz(bytes.NewReader(tgz(t, tc.entries...)), dir)
			var ue *UnsafeArchiveError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an UnsafeArchiveError containing %q", err, tc.want)
			}
			// Nothing was written outside the release directory.
			var outside []string
			_ = filepath.Walk(parent, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !strings.HasPrefix(p, dir) && !fi.IsDir() {
					outside = append(outside, p)
				}
				return nil
			})
			if len(outside) > 0 {
				t.Fatalf("written outside the release: %v", outside)
			}
		})
	}
}
