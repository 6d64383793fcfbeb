package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/pipeline"
)

// configFiles are the pipeline files looked for at a commit when the repo
// names none, in order (the same order as pipeline.Load).
var configFiles = pipeline.DefaultFiles()

// errNoConfig means a commit has no pipeline file.
var errNoConfig = errors.New("no pipeline file")

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
// errNoConfig when there is none.
func (g *gitReader) readConfig(ctx context.Context, remote, sha, path string, opts ...forge.GitOption) (string, []byte, error) {
	names := configFiles
	if path != "" {
		names = []string{path}
	}
	name, data, err := g.mirrors.Get(remote, opts...).ReadFirst(ctx, sha, names...)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("%w at commit %s (looked for %s)", errNoConfig, sha, strings.Join(names, ", "))
	}
	if err != nil {
		return "", nil, err
	}
	return name, data, nil
}

// readFile reads one file at commit sha, for the files a pipeline program
// loads or imports.
func (g *gitReader) readFile(ctx context.Context, remote, sha, path string) ([]byte, error) {
	_, data, err := g.mirrors.Get(remote).ReadFirst(ctx, sha, path)
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

// defaultBranch guesses a remote's default branch: main, then master, then
// the first branch in name order. It answers "main", with the error, when
// the remote cannot be listed, and does not take longer than a few seconds.
func (g *gitReader) defaultBranch(ctx context.Context, remote string, opts ...forge.GitOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	refs, err := forge.LsRemote(ctx, remote, opts...)
	if err != nil {
		g.log.Warn("listing the branches of a new repo; assuming the default branch is main", "url", remote, "err", err)
		return "main", err
	}
	var branches []string
	for ref := range refs {
		if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			branches = append(branches, b)
		}
	}
	for _, b := range []string{"main", "master"} {
		if slices.Contains(branches, b) {
			return b, nil
		}
	}
	if len(branches) == 0 {
		return "main", nil
	}
	slices.Sort(branches)
	return branches[0], nil
}
