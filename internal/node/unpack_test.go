package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
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
	)), dir, UnpackConfig{MaxBytes: DefaultMaxUnpackBytes, MaxEntries: 7})
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
			err := unpackTarGz(bytes.NewReader(tgz(t, tc.entries...)), dir, UnpackConfig{})
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

// The unpack limits stop at the entry that passes them, before writing
// it; the limits are inclusive.
func TestUnpackLimits(t *testing.T) {
	files := func(n, size int) []entry {
		var es []entry
		for i := range n {
			es = append(es, entry{name: fmt.Sprintf("f%d", i), body: strings.Repeat("x", size)})
		}
		return es
	}
	for _, tc := range []struct {
		name    string
		entries []entry
		lim     UnpackConfig
		want    string
	}{
		{"at the limits", files(4, 250), UnpackConfig{MaxBytes: 1000, MaxEntries: 4}, ""},
		{"entries", files(5, 1), UnpackConfig{MaxBytes: 1000, MaxEntries: 4}, `refusing archive entry "f4": the archive has more than 4 entries (the node's unpack.max_entries)`},
		{"bytes", files(5, 250), UnpackConfig{MaxBytes: 1000, MaxEntries: 10}, `refusing archive entry "f4": the archive unpacks to more than 1000 bytes (the node's unpack.max_bytes)`},
		{"bomb", []entry{{name: "zeros", body: strings.Repeat("\x00", 3<<20)}}, UnpackConfig{MaxBytes: 1 << 20, MaxEntries: 10}, `refusing archive entry "zeros": the archive unpacks to more than 1 MiB`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := unpackTarGz(bytes.NewReader(tgz(t, tc.entries...)), dir, tc.lim)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue *UnsafeArchiveError
			if !errors.As(err, &ue) || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
			last := tc.entries[len(tc.entries)-1].name
			if _, err := os.Lstat(filepath.Join(dir, last)); err == nil {
				t.Fatalf("%s was written", last)
			}
		})
	}
	dir := t.TempDir()
	err := writeSingle(strings.NewReader(strings.Repeat("x", 1025)), dir, "app", 1024)
	if err == nil || err.Error() != `refusing archive entry "app": the artifact is larger than 1 KiB (the node's unpack.max_bytes)` {
		t.Fatalf("single file: %v", err)
	}
	for n, want := range map[int64]string{1000: "1000 bytes", 1 << 20: "1 MiB", 3 << 29: "1.5 GiB", DefaultMaxUnpackBytes: "4 GiB"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
