package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/rpc"
)

// gitWaitDelay is how long a cancelled git may take to close its output
// (a helper such as git-remote-https may still hold it) before Wait gives
// up on it.
const gitWaitDelay = 2 * time.Second

// clone checks c out into dir, an existing empty directory, with the
// host's git: a shallow fetch of c.Ref (depth c.Depth; 0 fetches the whole
// history) and a detached checkout of c.SHA. When the branch has moved on
// so far that c.SHA is not in the shallow history, the checkout fails and
// the commit is fetched by its SHA, and failing that, the whole history of
// c.Ref. It works for any URL git understands, file:// and plain paths
// included. Cancelling ctx stops git.
//
// A branch or a tag is cloned with `git clone --single-branch`, which
// checks out its tip: when that is c.SHA, as it is for a build started by
// a push, HEAD is detached there by rewriting .git/HEAD, so that the whole
// checkout is one git command. Other refs (a pull request's, or none) are
// fetched into a repository made with `git init`, without git's templates
// and with the origin remote written straight into its config.
func clone(ctx context.Context, dir string, c rpc.Clone) error {
	if c.URL == "" {
		return errors.New("clone: the job names no repository URL")
	}
	var cred gitauth.Credential
	if c.Credential != nil {
		cred = *c.Credential
	}
	// The credential reaches git through its environment and, for an SSH
	// key, a file of mode 0600 removed when the clone ends: never through
	// argv nor the checkout's .git/config, which the steps can read.
	base := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_ASKPASS=true", forge.AllowProtocols)
	auth, cleanup, err := gitauth.Env(c.URL, cred, base)
	defer cleanup()
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	g := gitCmd{env: append(base, auth...)}
	ref := c.Ref
	if ref == "" {
		ref = c.SHA
	}
	if ref == "" {
		ref = "HEAD"
	}
	if name, ok := branchOrTag(c.Ref); ok && c.SHA != "" {
		args := []string{"-c", "advice.detachedHead=false", "clone", "--quiet", "--template=", "--no-local",
			"--no-tags", "--single-branch", "--branch=" + name}
		if c.Depth > 0 {
			args = append(args, "--depth="+strconv.Itoa(c.Depth))
		}
		if err := g.run(ctx, dir, append(args, "--", c.URL, dir)...); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if err := widenOrigin(dir, c.Ref); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if headIs(dir, c.SHA) {
			if err := detach(dir, c.SHA); err != nil {
				return fmt.Errorf("clone: %w", err)
			}
			return nil
		}
	} else {
		if err := g.run(ctx, dir, "init", "--quiet", "--template="); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if err := addOrigin(dir, c.URL); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if err := fetch(ctx, g, dir, c.Depth, ref); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
	}
	target := c.SHA
	if target == "" {
		target = "FETCH_HEAD"
	}
	err = checkout(ctx, g, dir, target)
	if err == nil || ctx.Err() != nil || c.SHA == "" || c.SHA == ref {
		return err
	}
	// The ref moved past the commit: ask for the commit itself (servers
	// with uploadpack.allowReachableSHA1InWant, and file:// remotes,
	// allow it), then for the ref's whole history.
	if fetch(ctx, g, dir, c.Depth, c.SHA) != nil || checkout(ctx, g, dir, target) != nil {
		if err := g.run(ctx, dir, "fetch", "--quiet", "--no-tags", "--unshallow", "origin", ref); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("clone: %w", err)
			}
			if err := g.run(ctx, dir, "fetch", "--quiet", "--no-tags", "origin", ref); err != nil {
				return fmt.Errorf("clone: %w", err)
			}
		}
		return checkout(ctx, g, dir, target)
	}
	return nil
}

// branchOrTag returns the short name of a full branch or tag ref, as
// `git clone --branch` takes it.
func branchOrTag(ref string) (string, bool) {
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		if name, ok := strings.CutPrefix(ref, prefix); ok && name != "" {
			return name, true
		}
	}
	return "", false
}

// widenOrigin makes the origin remote of a single-branch clone of ref in
// dir what `git remote add origin` makes it, as steps expect: fetching
// every branch to refs/remotes/origin/, and tags as git does by default.
// It edits the lines `git clone` wrote to the config, and leaves a config
// it does not recognise alone.
func widenOrigin(dir, ref string) error {
	path := filepath.Join(dir, ".git", "config")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("configuring remote origin: %w", err)
	}
	narrow := "+" + ref + ":" + ref
	if name, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		narrow = "+" + ref + ":refs/remotes/origin/" + name
	}
	config := strings.Replace(string(data), "\tfetch = "+narrow+"\n", "\tfetch = +refs/heads/*:refs/remotes/origin/*\n", 1)
	config = strings.Replace(config, "\ttagOpt = --no-tags\n", "", 1)
	if config == string(data) {
		return nil
	}
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return fmt.Errorf("configuring remote origin: %w", err)
	}
	return nil
}

// headIs reports whether HEAD of the checkout in dir is commit sha, as
// far as it can tell from the files git keeps: HEAD holding the commit (a
// tag's checkout) or naming a branch whose loose ref holds it. It answers
// false when in doubt, such as for a packed ref.
func headIs(dir, sha string) bool {
	gitDir := filepath.Join(dir, ".git")
	head, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return false
	}
	value := strings.TrimSpace(string(head))
	if ref, ok := strings.CutPrefix(value, "ref: "); ok {
		if !strings.HasPrefix(ref, "refs/heads/") || strings.Contains(ref, "..") {
			return false
		}
		data, err := os.ReadFile(filepath.Join(gitDir, filepath.FromSlash(ref)))
		if err != nil {
			return false
		}
		value = strings.TrimSpace(string(data))
	}
	return value == sha
}

// detach points HEAD of the checkout in dir at commit sha, which the work
// tree and the index already hold, as `git checkout --detach` would. Like
// git, it writes HEAD.lock and renames it over HEAD.
func detach(dir, sha string) error {
	head := filepath.Join(dir, ".git", "HEAD")
	if err := os.WriteFile(head+".lock", []byte(sha+"\n"), 0o644); err != nil {
		return fmt.Errorf("detaching HEAD: %w", err)
	}
	if err := os.Rename(head+".lock", head); err != nil {
		return fmt.Errorf("detaching HEAD: %w", err)
	}
	return nil
}

// checkout checks out target, detached, in dir.
func checkout(ctx context.Context, g gitCmd, dir, target string) error {
	if err := g.run(ctx, dir, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", target, "--"); err != nil {
		return fmt.Errorf("clone: checking out %s: %w", target, err)
	}
	return nil
}

// addOrigin adds the remote origin, fetching from url, to the config of
// the repository just created in dir, as `git remote add origin url`
// would, without running git.
func addOrigin(dir, url string) error {
	if strings.ContainsAny(url, "\n\r\x00") {
		return fmt.Errorf("invalid repository URL %q", url)
	}
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(url)
	f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("adding remote origin: %w", err)
	}
	_, err = fmt.Fprintf(f, "[remote \"origin\"]\n\turl = \"%s\"\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n", quoted)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("adding remote origin: %w", err)
	}
	return nil
}

func fetch(ctx context.Context, g gitCmd, dir string, depth int, ref string) error {
	args := []string{"fetch", "--quiet", "--no-tags"}
	if depth > 0 {
		args = append(args, "--depth="+strconv.Itoa(depth))
	}
	return g.run(ctx, dir, append(args, "origin", ref)...)
}

// gitCmd runs git with an environment: the agent's own, with prompts
// off and the clone's credential added.
type gitCmd struct{ env []string }

// run runs git in dir. Its error names the git command, leading -c
// options aside, and holds git's own message.
func (g gitCmd) run(ctx context.Context, dir string, args ...string) error {
	name := args[0]
	for i := 0; i+1 < len(args) && args[i] == "-c"; i += 2 {
		if i+2 < len(args) {
			name = args[i+2]
		}
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = g.env
	cmd.WaitDelay = gitWaitDelay
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("git %s: %w", name, context.Cause(ctx))
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		if msg == "" {
			return fmt.Errorf("git %s: %w", name, err)
		}
		return fmt.Errorf("git %s: %w: %s", name, err, msg)
	}
	return nil
}
