package cli

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// gitInfo is what `ferry exec` learns from the local checkout.
type gitInfo struct {
	SHA         string
	Branch      string
	Tag         string
	Message     string
	AuthorName  string
	AuthorEmail string
	RemoteURL   string
}

// readGit learns about the checkout in dir. It reads the repository's
// files (HEAD, refs, packed-refs, config and the commit object, see
// gitrepo.go) rather than starting git, which would cost two processes
// before the first step; it asks git only about a layout it does not read
// itself. It returns a zero value, not an error, when dir is not a git
// checkout or git is missing: exec works without git.
func readGit(ctx context.Context, dir string) gitInfo {
	r, err := openGitRepo(dir)
	switch {
	case errors.Is(err, errNoRepo):
		return gitInfo{}
	case err != nil:
		return readGitCommand(ctx, dir)
	}
	info, err := r.info()
	if err != nil {
		return readGitCommand(ctx, dir)
	}
	return info
}

// readRemote returns the URL of the checkout's origin remote, or "" when
// there is none. Like readGit, it reads the repository's config itself.
func readRemote(ctx context.Context, dir string) string {
	r, err := openGitRepo(dir)
	switch {
	case errors.Is(err, errNoRepo):
		return ""
	case err != nil:
		return readRemoteCommand(ctx, dir)
	}
	return r.remoteURL
}

// readGitCommand is readGit by asking git: the fallback for repository
// layouts that openGitRepo does not read.
func readGitCommand(ctx context.Context, dir string) gitInfo {
	var (
		info gitInfo
		wg   sync.WaitGroup
	)
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return string(out)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		out := git("log", "-1", "--format=%H%x00%D%x00%an%x00%ae%x00%B")
		parts := strings.SplitN(out, "\x00", 5)
		if len(parts) < 5 {
			return
		}
		info.SHA = parts[0]
		for d := range strings.SplitSeq(parts[1], ", ") {
			if b, ok := strings.CutPrefix(d, "HEAD -> "); ok {
				info.Branch = b
			}
			if t, ok := strings.CutPrefix(d, "tag: "); ok && info.Tag == "" {
				info.Tag = t
			}
		}
		info.AuthorName, info.AuthorEmail = parts[2], parts[3]
		info.Message = strings.TrimRight(parts[4], "\n")
	}()
	go func() {
		defer wg.Done()
		info.RemoteURL = readRemoteCommand(ctx, dir)
	}()
	wg.Wait()
	return info
}

// readRemoteCommand is readRemote by asking git.
func readRemoteCommand(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "config", "--get", "remote.origin.url").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// repoSlug derives "namespace/name" from a remote URL, or from the
// directory name when there is no remote.
func repoSlug(remote, dir string) (namespace, name string) {
	u := strings.TrimSuffix(strings.TrimSpace(remote), ".git")
	if u != "" {
		// scp-like syntax: git@host:owner/name
		if i := strings.Index(u, "://"); i < 0 {
			if j := strings.Index(u, ":"); j >= 0 {
				u = u[j+1:]
			}
		} else {
			u = u[i+3:]
			if j := strings.Index(u, "/"); j >= 0 {
				u = u[j+1:]
			}
		}
		parts := strings.Split(strings.Trim(u, "/"), "/")
		if len(parts) >= 2 {
			return strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1]
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return "local", filepath.Base(abs)
}
