package forge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Commit describes one commit.
type Commit struct {
	SHA       string
	Parents   []string
	Message   string
	Author    Signature
	Committer Signature
}

// Signature is who made a commit, and when.
type Signature struct {
	Name  string
	Email string
	Date  time.Time
}

// Mirror is a bare copy of a remote repository's branches and tags on
// disk. Fetch brings it up to date, transferring only what changed, so
// polling a repository every minute costs little; ReadFile and Commit then
// answer from disk.
//
// A Mirror is safe for concurrent use. Fetches are serialised; reads run
// alongside them. Only one Mirror, in one process, may use a directory at a
// time: use Mirrors to share them.
type Mirror struct {
	dir string

	mu sync.Mutex // serialises fetches and initialisation

	cfgMu  sync.Mutex // guards remote and opts, which Mirrors.Get may replace
	remote string
	opts   gitOptions
}

// NewMirror returns a Mirror of the repository at remote, kept in dir. It
// touches nothing until the first Fetch, which creates dir.
func NewMirror(dir, remote string, opts ...GitOption) *Mirror {
	return &Mirror{dir: dir, remote: remote, opts: newGitOptions(opts)}
}

// Dir returns the directory of the mirror's bare repository.
func (m *Mirror) Dir() string { return m.dir }

// config returns the remote and the git options to use now.
func (m *Mirror) config() (string, gitOptions) {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	return m.remote, m.opts
}

func (m *Mirror) setConfig(remote string, opts gitOptions) {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	m.remote, m.opts = remote, opts
}

// mirrorRefspecs are what a Mirror copies: branches and tags, pruned when
// they disappear from the remote. Pull request refs are fetched on demand
// by commit (see ReadFile).
var mirrorRefspecs = []string{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}

// Fetch creates the mirror if needed and brings its branches and tags up
// to date with the remote, removing those the remote no longer has.
func (m *Mirror) Fetch(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fetchLocked(ctx)
}

func (m *Mirror) fetchLocked(ctx context.Context) error {
	remote, o := m.config()
	if err := checkRemote(remote); err != nil {
		return fmt.Errorf("fetching mirror: %w", err)
	}
	if err := m.initLocked(ctx, o); err != nil {
		return fmt.Errorf("fetching %s: %w", redactURL(remote), err)
	}
	args := append([]string{"fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--", remote}, mirrorRefspecs...)
	if _, err := o.git(ctx, remote, m.dir, nil, args...); err != nil {
		return fmt.Errorf("fetching %s: %w", redactURL(remote), err)
	}
	return nil
}

// initLocked creates the bare repository unless it exists. It is made in
// a temporary directory beside it and renamed into place when complete:
// readers that do not take the lock (ReadFirst) look for HEAD, which git
// init writes before the repository is usable.
func (m *Mirror) initLocked(ctx context.Context, o gitOptions) error {
	if _, err := os.Stat(filepath.Join(m.dir, "HEAD")); err == nil {
		return nil
	}
	parent := filepath.Dir(m.dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("creating mirror: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(m.dir)+".init-*")
	if err != nil {
		return fmt.Errorf("creating mirror: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left to remove once renamed
	if _, err := o.git(ctx, "", tmp, nil, "init", "--quiet", "--bare"); err != nil {
		return fmt.Errorf("creating mirror: %w", err)
	}
	// Fetch runs gc when the repository needs it. Keep it in the
	// foreground, inside the fetch's process group and context, rather than
	// detached where it would outlive both. Commits fetched by id, which
	// no ref keeps, survive gc for gc.pruneExpire (two weeks).
	for _, kv := range [][2]string{{"gc.autoDetach", "false"}, {"maintenance.autoDetach", "false"}} {
		if _, err := o.git(ctx, "", tmp, nil, "config", kv[0], kv[1]); err != nil {
			return fmt.Errorf("creating mirror: %w", err)
		}
	}
	// What is in the way has no HEAD, so it is no repository: the
	// remains of an earlier, failed start. rename(2) replaces an empty
	// directory but not a non-empty one.
	err = os.Rename(tmp, m.dir)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(m.dir, "HEAD")); serr == nil {
			return nil // made meanwhile by another process
		}
		if rerr := os.RemoveAll(m.dir); rerr == nil {
			err = os.Rename(tmp, m.dir)
		}
	}
	if err != nil {
		return fmt.Errorf("creating mirror: %w", err)
	}
	return nil
}

// initialised reports whether the first Fetch has created the mirror.
func (m *Mirror) initialised() bool {
	_, err := os.Stat(filepath.Join(m.dir, "HEAD"))
	return err == nil
}

// Refs lists the mirror's branches and tags as of the last Fetch, in the
// form LsRemote returns. It reports an error before the first Fetch.
func (m *Mirror) Refs(ctx context.Context) (map[string]string, error) {
	if !m.initialised() {
		return nil, errors.New("listing mirror refs: the mirror has not been fetched yet")
	}
	_, o := m.config()
	out, err := o.git(ctx, "", m.dir, nil, "for-each-ref",
		"--format=%(refname)%00%(objectname)%00%(*objectname)", "refs/heads", "refs/tags")
	if err != nil {
		return nil, fmt.Errorf("listing mirror refs: %w", err)
	}
	refs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\x00")
		if len(f) != 3 {
			continue
		}
		refs[f[0]] = f[1]
		if f[2] != "" {
			refs[f[0]] = f[2] // an annotated tag: the commit it points to
		}
	}
	return refs, nil
}

// ensure makes commit sha present in the mirror. A commit that no branch
// or tag reaches, such as the head of a pull request from a fork, is
// fetched by its id; if the remote refuses that, the whole mirror is
// fetched.
func (m *Mirror) ensure(ctx context.Context, sha string) error {
	if !validSHA(sha) {
		return fmt.Errorf("invalid commit sha %q", sha)
	}
	if m.initialised() && m.hasCommit(ctx, sha) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.initialised() {
		if err := m.fetchLocked(ctx); err != nil {
			return err
		}
	}
	if m.hasCommit(ctx, sha) {
		return nil
	}
	remote, o := m.config()
	_, err := o.git(ctx, remote, m.dir, nil, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", remote, sha)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("fetching %s: %w", sha, ctx.Err())
		}
		if err := m.fetchLocked(ctx); err != nil {
			return err
		}
	}
	if !m.hasCommit(ctx, sha) {
		return fmt.Errorf("%s: %w in %s", sha, errNoCommit, redactURL(remote))
	}
	return nil
}

func (m *Mirror) hasCommit(ctx context.Context, sha string) bool {
	_, o := m.config()
	_, err := o.git(ctx, "", m.dir, nil, "cat-file", "-e", sha+"^{commit}")
	return err == nil
}

// ReadFile reads the file at path in commit sha, fetching the commit first
// if the mirror does not have it. A missing file is an error wrapping
// fs.ErrNotExist.
func (m *Mirror) ReadFile(ctx context.Context, sha, path string) ([]byte, error) {
	_, data, err := m.ReadFirst(ctx, sha, path)
	return data, err
}

// ReadFirst reads the first of paths that exists in commit sha, and
// returns its path and content. It fetches the commit first if the mirror
// does not have it. One git process answers for all paths when the mirror
// has the commit, so looking for several candidate files costs no more
// than reading one. When none exists the error wraps fs.ErrNotExist; a
// path that exists but is not a file (a directory) is an error too, as it
// is for ReadFile.
func (m *Mirror) ReadFirst(ctx context.Context, sha string, paths ...string) (string, []byte, error) {
	return m.ReadFirstMax(ctx, sha, 0, paths...)
}

// ReadFirstMax is ReadFirst refusing a file larger than max bytes (no
// limit when max is 0 or less) with a *FileSizeError, before it is read
// into memory.
func (m *Mirror) ReadFirstMax(ctx context.Context, sha string, max int64, paths ...string) (string, []byte, error) {
	if !validSHA(sha) {
		return result(sha, paths, 0, nil, fmt.Errorf("invalid commit sha %q", sha))
	}
	_, o := m.config()
	if m.initialised() {
		// The usual case: the last fetch brought the commit. Look
		// without first checking that it is there, which would cost a
		// process of its own.
		i, data, err := readBlobs(ctx, o, m.dir, sha, paths, max)
		if !errors.Is(err, errNoCommit) {
			return result(sha, paths, i, data, err)
		}
	}
	if err := m.ensure(ctx, sha); err != nil {
		return result(sha, paths, 0, nil, err)
	}
	_, o = m.config()
	i, data, err := readBlobs(ctx, o, m.dir, sha, paths, max)
	return result(sha, paths, i, data, err)
}

// result turns what readBlobs found into ReadFirst's answer.
func result(sha string, paths []string, i int, data []byte, err error) (string, []byte, error) {
	if err != nil {
		return "", nil, fmt.Errorf("reading %s at %s: %w", strings.Join(paths, " or "), sha, err)
	}
	return paths[i], data, nil
}

// Commit describes commit sha, fetching it first if the mirror does not
// have it.
func (m *Mirror) Commit(ctx context.Context, sha string) (*Commit, error) {
	if err := m.ensure(ctx, sha); err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", sha, err)
	}
	_, o := m.config()
	out, err := o.git(ctx, "", m.dir, nil, "show", "--no-patch", "--no-color", "--encoding=UTF-8",
		"--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B", sha, "--")
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", sha, err)
	}
	f := strings.SplitN(string(out), "\x00", 9)
	if len(f) != 9 {
		return nil, fmt.Errorf("reading commit %s: unexpected git output", sha)
	}
	c := &Commit{
		SHA:       f[0],
		Parents:   strings.Fields(f[1]),
		Author:    Signature{Name: f[2], Email: f[3]},
		Committer: Signature{Name: f[5], Email: f[6]},
		Message:   strings.TrimRight(f[8], "\n"),
	}
	c.Author.Date, _ = time.Parse(time.RFC3339, f[4])
	c.Committer.Date, _ = time.Parse(time.RFC3339, f[7])
	return c, nil
}

// ChangedPaths lists, sorted, the files that differ between commits before
// and after, for a pipeline's `paths` conditions. An all-zeros before (a
// new branch) compares after with its first parent; a root commit lists
// every file.
func (m *Mirror) ChangedPaths(ctx context.Context, before, after string) ([]string, error) {
	if err := m.ensure(ctx, after); err != nil {
		return nil, fmt.Errorf("listing changed files: %w", err)
	}
	var args []string
	switch {
	case before == "" || isZeroSHA(before):
		args = []string{"diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", "-m", "--first-parent", after}
	default:
		if err := m.ensure(ctx, before); err != nil {
			return nil, fmt.Errorf("listing changed files: %w", err)
		}
		args = []string{"diff", "--name-only", "-z", "--no-renames", before, after, "--"}
	}
	_, o := m.config()
	out, err := o.git(ctx, "", m.dir, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("listing changed files between %s and %s: %w", before, after, err)
	}
	var paths []string
	for p := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return changedPaths(false, paths), nil
}

// Mirrors hands out one Mirror per remote, each in its own directory
// under a root. It is safe for concurrent use.
type Mirrors struct {
	root string
	opts []GitOption

	mu      sync.Mutex
	mirrors map[string]*Mirror
}

// NewMirrors returns a Mirrors keeping its mirrors under root, whose
// commands use opts.
func NewMirrors(root string, opts ...GitOption) *Mirrors {
	return &Mirrors{root: root, opts: opts, mirrors: map[string]*Mirror{}}
}

// Get returns the Mirror of remote: the same one for every call with the
// same remote, credentials in the URL aside, which the mirror's directory
// name does not depend on. The Mirrors' options and then opts apply to
// the mirror's commands from this call on, so a rotated token takes effect
// on the next Get.
func (c *Mirrors) Get(remote string, opts ...GitOption) *Mirror {
	key := remote
	if u, err := url.Parse(remote); err == nil && u.User != nil {
		u.User = nil
		key = u.String()
	}
	o := newGitOptions(append(append([]GitOption(nil), c.opts...), opts...))
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.mirrors[key]; ok {
		m.setConfig(remote, o)
		return m
	}
	sum := sha256.Sum256([]byte(key))
	m := &Mirror{dir: filepath.Join(c.root, hex.EncodeToString(sum[:12])+".git"), remote: remote, opts: o}
	c.mirrors[key] = m
	return m
}
