package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/pipeline"
)

// configFiles are the pipeline files looked for at a commit when the repo
// names none, in order (the same order as pipeline.Load), but for
// Woodpecker's directory, looked for when none of them exists.
var configFiles = slices.DeleteFunc(pipeline.DefaultFiles(), func(f string) bool { return f == pipeline.WoodpeckerDir })

// errNoConfig means a commit has no pipeline file.
var errNoConfig = build.ErrNoConfig

// gitReader reads repositories through bare mirrors kept under the data
// directory, shared with the poller.
type gitReader struct {
	mirrors *forge.Mirrors
	log     *slog.Logger
}

func newGitReader(dir string, log *slog.Logger) *gitReader {
	return &gitReader{mirrors: forge.NewMirrors(dir), log: log}
}

// readConfig reads the pipeline file at commit sha: path when it is set,
// otherwise the first of configFiles that exists. The error wraps
// errNoConfig when there is none. A file larger than max bytes is refused
// with a *pipeline.SizeError before it is read into memory.
func (g *gitReader) readConfig(ctx context.Context, remote, sha, path string, max int64, opts ...forge.GitOption) (string, []byte, error) {
	names := configFiles
	if path != "" {
		names = []string{path}
	}
	if path == pipeline.WoodpeckerDir {
		return g.woodpeckerDir(ctx, remote, sha, opts...)
	}
	name, data, err := g.mirrors.Get(remote, opts...).ReadFirstMax(ctx, sha, max, names...)
	var size *forge.FileSizeError
	if errors.As(err, &size) {
		return size.Path, nil, &pipeline.SizeError{File: size.Path, Size: size.Size, Max: size.Max}
	}
	if errors.Is(err, fs.ErrNotExist) && path == "" {
		return g.woodpeckerDir(ctx, remote, sha, opts...)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("%w at commit %s (looked for %s)", errNoConfig, sha, strings.Join(names, ", "))
	}
	if err != nil {
		return "", nil, err
	}
	return name, data, nil
}

// woodpeckerDir finds Woodpecker's .woodpecker directory at commit sha:
// its name, with no content (package program reads its files).
func (g *gitReader) woodpeckerDir(ctx context.Context, remote, sha string, opts ...forge.GitOption) (string, []byte, error) {
	if _, err := g.mirrors.Get(remote, opts...).Commit(ctx, sha); err != nil { // fetches the commit
		return "", nil, err
	}
	files, err := g.listDir(ctx, remote, sha, pipeline.WoodpeckerDir, opts...)
	if err != nil || len(files) == 0 {
		return "", nil, fmt.Errorf("%w at commit %s (looked for %s)", errNoConfig, sha, strings.Join(pipeline.DefaultFiles(), ", "))
	}
	return pipeline.WoodpeckerDir, nil, nil
}

// listDir lists the names of the files in directory dir at commit sha
// (which the mirror has fetched already: readConfig read it).
func (g *gitReader) listDir(ctx context.Context, remote, sha, dir string, opts ...forge.GitOption) ([]string, error) {
	if !validSHA(sha) {
		return nil, fmt.Errorf("invalid commit sha %q", sha)
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir", g.mirrors.Get(remote, opts...).Dir(), "ls-tree", "--name-only", sha, dir+"/")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing %s at %s: %w", dir, sha, err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			names = append(names, strings.TrimPrefix(l, dir+"/"))
		}
	}
	return names, nil
}

// validSHA reports whether s is a full hexadecimal commit id.
func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readFile reads one file at commit sha, for the files a pipeline program
// loads or imports.
func (g *gitReader) readFile(ctx context.Context, remote, sha, path string, opts ...forge.GitOption) ([]byte, error) {
	_, data, err := g.mirrors.Get(remote, opts...).ReadFirst(ctx, sha, path)
	return data, err
}

// commit describes commit sha.
func (g *gitReader) commit(ctx context.Context, remote, sha string, opts ...forge.GitOption) (*forge.Commit, error) {
	return g.mirrors.Get(remote, opts...).Commit(ctx, sha)
}

// changedPaths lists the files changed between two commits.
func (g *gitReader) changedPaths(ctx context.Context, remote, before, after string, opts ...forge.GitOption) ([]string, error) {
	return g.mirrors.Get(remote, opts...).ChangedPaths(ctx, before, after)
}

// resolve finds the commit a branch, tag or full ref points to on the
// remote, and returns it with the full ref name.
func (g *gitReader) resolve(ctx context.Context, remote, ref string, opts ...forge.GitOption) (sha, full string, err error) {
	refs, err := forge.LsRemote(ctx, remote, opts...)
	if err != nil {
		return "", "", err
	}
	candidates := []string{ref}
	if !strings.HasPrefix(ref, "refs/") {
		candidates = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	for _, c := range candidates {
		if sha, ok := refs[c]; ok {
			return sha, c, nil
		}
	}
	return "", "", fmt.Errorf("%w: %s has no branch or tag %q", errUnknownRef, remote, ref)
}

var errUnknownRef = errors.New("unknown ref")

// readableTimeout bounds the check that a new repo's URL can be read.
const readableTimeout = 20 * time.Second

// checkReadable lists the branches of remote, as the server and the agents
// will have to, and returns the remote's default branch (see
// defaultBranch), or git's error (forge.GitReason says it in plain words;
// it wraps forge.ErrAuth when access was refused). It takes at most
// readableTimeout.
func (g *gitReader) checkReadable(ctx context.Context, remote string, opts ...forge.GitOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, readableTimeout)
	defer cancel()
	refs, err := forge.LsRemote(ctx, remote, opts...)
	if err != nil {
		return "", err
	}
	return defaultBranch(refs), nil
}

// defaultBranch guesses a remote's default branch from its refs: main,
// then master, then the first branch in name order; main when there are
// none.
func defaultBranch(refs map[string]string) string {
	var branches []string
	for ref := range refs {
		if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			branches = append(branches, b)
		}
	}
	for _, b := range []string{"main", "master"} {
		if slices.Contains(branches, b) {
			return b
		}
	}
	if len(branches) == 0 {
		return "main"
	}
	slices.Sort(branches)
	return branches[0]
}
