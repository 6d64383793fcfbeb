package forge

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMirrorPolling walks through what a poller does: fetch, list, diff
// against the last listing, and read the config and commit of each change.
func TestMirrorPolling(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, o *origin, url string) {
		ctx := context.Background()
		first, second := o.seed()
		m := NewMirror(filepath.Join(t.TempDir(), "mirror.git"), url)
		if _, err := m.Refs(ctx); err == nil {
			t.Fatal("Refs before the first Fetch succeeded")
		}
		if err := m.Fetch(ctx); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		before, err := m.Refs(ctx)
		if err != nil {
			t.Fatalf("Refs: %v", err)
		}
		remote, err := LsRemote(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, remote) {
			t.Fatalf("mirror refs %v differ from the remote's %v", before, remote)
		}

		// Upstream: main moves on, a tag and a branch appear, feature goes.
		third := o.commit("Build on arm64 too", map[string]string{".drone.yml": "kind: pipeline\nname: v3\n", "README.md": "", "arch.txt": "arm64\n"})
		o.run(o.work, "tag", "-a", "v2.0.0", "-m", "Release 2.0.0")
		o.run(o.work, "branch", "hotfix", first)
		o.push("main", "v2.0.0", "hotfix")
		o.run(o.work, "push", "--quiet", "origin", "--delete", "feature")

		if err := m.Fetch(ctx); err != nil {
			t.Fatalf("second Fetch: %v", err)
		}
		after, err := m.Refs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, o.refs()) {
			t.Fatalf("mirror refs %v differ from the origin's %v (deleted branches must be pruned)", after, o.refs())
		}
		zero := strings.Repeat("0", 40)
		want := []RefChange{
			{Event: EventPush, Ref: "refs/heads/hotfix", Before: zero, After: first},
			{Event: EventPush, Ref: "refs/heads/main", Before: second, After: third},
			{Event: EventTag, Ref: "refs/tags/v2.0.0", Before: zero, After: third},
		}
		changes := DiffRefs(before, after)
		if !reflect.DeepEqual(changes, want) {
			t.Fatalf("DiffRefs = %v\nwant %v", changes, want)
		}

		data, err := m.ReadFile(ctx, third, ".drone.yml")
		if err != nil || string(data) != "kind: pipeline\nname: v3\n" {
			t.Fatalf("ReadFile(third) = %q, %v", data, err)
		}
		data, err = m.ReadFile(ctx, first, ".drone.yml")
		if err != nil || string(data) != "kind: pipeline\nname: v1\n" {
			t.Fatalf("ReadFile(first) = %q, %v", data, err)
		}
		if _, err := m.ReadFile(ctx, third, "README.md"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("deleted file: err = %v, want fs.ErrNotExist", err)
		}

		c, err := m.Commit(ctx, second)
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		wantDate := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("", 3600))
		if c.SHA != second || !reflect.DeepEqual(c.Parents, []string{first}) ||
			c.Message != "Rename the pipeline\n\nIt is the default one." ||
			c.Author.Name != "Ada Lovelace" || c.Author.Email != "ada@example.com" || !c.Author.Date.Equal(wantDate) ||
			c.Committer.Name != "Charles Babbage" || c.Committer.Email != "charles@example.com" {
			t.Errorf("Commit = %+v", c)
		}

		paths, err := m.ChangedPaths(ctx, second, third)
		if err != nil {
			t.Fatalf("ChangedPaths: %v", err)
		}
		if want := []string{".drone.yml", "README.md", "arch.txt"}; !reflect.DeepEqual(paths, want) {
			t.Errorf("ChangedPaths = %q, want %q", paths, want)
		}
		paths, err = m.ChangedPaths(ctx, zero, first)
		if err != nil {
			t.Fatalf("ChangedPaths of a root commit: %v", err)
		}
		if want := []string{".drone.yml", "README.md"}; !reflect.DeepEqual(paths, want) {
			t.Errorf("ChangedPaths of the root commit = %q, want %q", paths, want)
		}

		h := changes[1].Hook(Repo{Slug: "o/r", CloneURL: url}, c)
		if h.Branch != "main" || h.Message != c.Message || h.Author.Name != "Ada Lovelace" {
			t.Errorf("Hook = %+v", h)
		}
	})
}

// TestMirrorFetchesUnknownCommit reads a commit no branch or tag reaches,
// as a pull request from a fork is: GitHub keeps it under refs/pull/.
func TestMirrorFetchesUnknownCommit(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, o *origin, url string) {
		ctx := context.Background()
		o.seed()
		m := NewMirror(filepath.Join(t.TempDir(), "mirror.git"), url)
		if err := m.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		o.run(o.work, "checkout", "--quiet", "-b", "contribution")
		pr := o.commit("Contribution from a fork", map[string]string{".drone.yml": "kind: pipeline\nname: fork\n"})
		o.push("contribution:refs/pull/1/head")

		data, err := m.ReadFile(ctx, pr, ".drone.yml")
		if err != nil {
			t.Fatalf("ReadFile of a pull request commit: %v", err)
		}
		if string(data) != "kind: pipeline\nname: fork\n" {
			t.Errorf("ReadFile = %q", data)
		}
		c, err := m.Commit(ctx, pr)
		if err != nil || c.Message != "Contribution from a fork" {
			t.Errorf("Commit = %+v, %v", c, err)
		}
		refs, err := m.Refs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for ref := range refs {
			if strings.HasPrefix(ref, "refs/pull/") {
				t.Errorf("the mirror lists %s; it copies branches and tags only", ref)
			}
		}
		if _, err := m.ReadFile(ctx, strings.Repeat("cd", 20), ".drone.yml"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unknown commit: err = %v, want an error that is not fs.ErrNotExist", err)
		}
	})
}

// TestMirrorReadWithoutFetch reads from a mirror nobody fetched yet.
func TestMirrorReadWithoutFetch(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	first, _ := o.seed()
	m := NewMirror(filepath.Join(t.TempDir(), "deep", "mirror.git"), o.fileURL())
	data, err := m.ReadFile(context.Background(), first, ".drone.yml")
	if err != nil || string(data) != "kind: pipeline\nname: v1\n" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if refs, err := m.Refs(context.Background()); err != nil || len(refs) != 4 {
		t.Errorf("Refs after ReadFile = %v, %v; want the four refs", refs, err)
	}
}

// TestMirrorConcurrentUse fetches and reads from many goroutines at once;
// run it with -race.
func TestMirrorConcurrentUse(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	first, second := o.seed()
	m := NewMirrors(t.TempDir()).Get(o.fileURL())
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				if err := m.Fetch(ctx); err != nil {
					errs <- err
				}
				return
			}
			sha := first
			if i%4 == 1 {
				sha = second
			}
			if _, err := m.ReadFile(ctx, sha, ".drone.yml"); err != nil {
				errs <- err
			}
			if _, err := m.Commit(ctx, sha); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMirrors(t *testing.T) {
	root := t.TempDir()
	ms := NewMirrors(root)
	a := ms.Get("https://git.example.com/a.git")
	if ms.Get("https://git.example.com/a.git") != a {
		t.Error("Get returned a second Mirror for the same URL")
	}
	withCreds := ms.Get("https://bot:token@git.example.com/a.git")
	if withCreds != a {
		t.Error("credentials in the URL gave another Mirror")
	}
	if remote, _ := a.config(); remote != "https://bot:token@git.example.com/a.git" {
		t.Errorf("the mirror did not take the new URL: %s", remote)
	}
	b := ms.Get("https://git.example.com/b.git")
	if b == a || b.Dir() == a.Dir() {
		t.Error("two URLs share a Mirror")
	}
	for _, m := range []*Mirror{a, b} {
		if filepath.Dir(m.Dir()) != root || strings.Contains(m.Dir(), "example") {
			t.Errorf("mirror directory %s: want a hashed name under %s", m.Dir(), root)
		}
	}
}

func TestMirrorRespectsContext(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	o.seed()
	m := NewMirror(filepath.Join(t.TempDir(), "m.git"), o.fileURL())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: %v", err)
	}
}

// TestMirrorReadFirst looks for the first of several candidate files, as
// the server does for the pipeline file.
func TestMirrorReadFirst(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, o *origin, url string) {
		ctx := context.Background()
		o.seed()
		m := NewMirror(filepath.Join(t.TempDir(), "mirror.git"), url)
		if err := m.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		// Pushed after the fetch: ReadFirst fetches it.
		sha := o.commit("Two pipeline files", map[string]string{
			".ferry.yaml":     "kind: pipeline\nname: ferry\n",
			".drone.yml":      "kind: pipeline\nname: drone\n",
			".drone.yaml/x":   "a directory, not a file\n",
			"deep/dir/ci.yml": "kind: pipeline\nname: deep\n",
		})
		o.push("main")

		tests := []struct {
			paths    []string
			wantPath string
			wantData string
		}{
			{[]string{".ferry.yml", ".ferry.yaml", ".drone.yml"}, ".ferry.yaml", "kind: pipeline\nname: ferry\n"},
			{[]string{".ferry.yml", ".drone.yml", ".ferry.yaml"}, ".drone.yml", "kind: pipeline\nname: drone\n"},
			{[]string{"/deep/dir/ci.yml"}, "/deep/dir/ci.yml", "kind: pipeline\nname: deep\n"},
			{[]string{"missing.yml", "README.md"}, "README.md", "hello\n"},
		}
		for _, tt := range tests {
			path, data, err := m.ReadFirst(ctx, sha, tt.paths...)
			if err != nil || path != tt.wantPath || string(data) != tt.wantData {
				t.Errorf("ReadFirst(%q) = %q, %q, %v; want %q, %q", tt.paths, path, data, err, tt.wantPath, tt.wantData)
			}
		}
		if _, _, err := m.ReadFirst(ctx, sha, ".ferry.yml", "nope.yml"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("no candidate exists: err = %v, want fs.ErrNotExist", err)
		}
		if _, _, err := m.ReadFirst(ctx, sha, ".drone.yaml", ".drone.yml"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("first candidate is a directory: err = %v, want an error that is not fs.ErrNotExist", err)
		}
		if _, _, err := m.ReadFirst(ctx, strings.Repeat("cd", 20), ".drone.yml"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unknown commit: err = %v, want an error that is not fs.ErrNotExist", err)
		}
		if _, _, err := m.ReadFirst(ctx, sha, "a\nb"); err == nil {
			t.Error("a path with a newline was accepted")
		}
	})
}

// TestMirrorReadFirstMax refuses a file over the limit with a
// *FileSizeError, without holding it in memory, and reads one within it.
func TestMirrorReadFirstMax(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	o := newOrigin(t)
	o.seed()
	sha := o.commit("big", map[string]string{".drone.yml": strings.Repeat("x", 50<<20), "small.yml": "a: b\n"})
	o.push("main")
	m := NewMirror(filepath.Join(t.TempDir(), "mirror.git"), o.fileURL())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := m.ReadFirstMax(ctx, sha, 4<<20, ".ferry.yml", ".drone.yml")
	runtime.ReadMemStats(&after)
	var size *FileSizeError
	if !errors.As(err, &size) || size.Path != ".drone.yml" || size.Size != 50<<20 || size.Max != 4<<20 {
		t.Fatalf("err = %v, want a *FileSizeError for .drone.yml of 50 MiB", err)
	}
	// Reading it whole would take 50 MiB, and growing a buffer to it
	// about twice that.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 40<<20 {
		t.Errorf("refusing the 50 MiB file allocated %d MiB", alloc>>20)
	}
	if _, data, err := m.ReadFirstMax(ctx, sha, 4<<20, "small.yml"); err != nil || string(data) != "a: b\n" {
		t.Errorf("small file: %q, %v", data, err)
	}
}
