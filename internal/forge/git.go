package forge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/gitauth"
)

// GitOption configures the git commands of LsRemote, ReadFileAt and a
// Mirror.
type GitOption func(*gitOptions)

type gitOptions struct {
	cred gitauth.Credential
}

// WithBasicAuth makes git send HTTP basic credentials, for example a
// username and an access token, to the remote's scheme and host. They are
// handed to git through its environment, so they appear neither in the
// process list nor in any file. Other transports ignore them.
func WithBasicAuth(username, password string) GitOption {
	return WithCredential(gitauth.Credential{Username: username, Password: password})
}

// WithCredential makes git authenticate with c: HTTP basic credentials for
// an http(s) remote, or an SSH key for an ssh one (see package gitauth). A
// credential of the other kind is ignored.
func WithCredential(c gitauth.Credential) GitOption {
	return func(o *gitOptions) { o.cred = c }
}

func newGitOptions(opts []GitOption) gitOptions {
	var o gitOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// env returns the environment for a git command talking to remote: the
// process's own, with prompts turned off and o's credentials added, and a
// cleanup that removes what the credentials needed on disk.
func (o gitOptions) env(remote string) ([]string, func(), error) {
	var env []string
	for _, kv := range os.Environ() {
		// A repository location inherited from a git hook would redirect
		// every command to it.
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
			"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		// Never wait for a password on a terminal, nor for a credential
		// manager's dialog.
		"GIT_TERMINAL_PROMPT=0",
		"GCM_INTERACTIVE=never",
		"GIT_ASKPASS=true",
		"SSH_ASKPASS=true",
		"LC_ALL=C",
		// Only transports that run no command of the URL's choosing:
		// never ext::, nor other remote helpers.
		AllowProtocols,
	)
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	if remote == "" {
		return env, func() {}, nil
	}
	auth, cleanup, err := gitauth.Env(remote, o.cred, env)
	if err != nil {
		return nil, cleanup, err
	}
	return append(env, auth...), cleanup, nil
}

// gitWaitDelay bounds how long a cancelled git command may hold on to its
// output pipes (through a child such as git-remote-https) before it is
// abandoned.
const gitWaitDelay = 5 * time.Second

// git runs git with args in dir, talking to remote, and returns its
// standard output. It respects ctx: cancelling it kills git and every
// process git started.
func (o gitOptions) git(ctx context.Context, remote, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	return o.gitLimited(ctx, remote, dir, stdin, 0, args...)
}

// errOutputLimit means a git command printed more than the caller would
// read; the command was stopped.
var errOutputLimit = errors.New("git printed more than the limit")

// limitedBuffer is a buffer that fails a write past limit bytes (no limit
// when limit is 0 or less). It embeds no bytes.Buffer on purpose: its
// ReadFrom would let io.Copy bypass the limit.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int64
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.limit > 0 && int64(b.buf.Len()+len(p)) > b.limit {
		n, _ := b.buf.Write(p[:max(b.limit-int64(b.buf.Len()), 0)])
		return n, errOutputLimit
	}
	return b.buf.Write(p)
}

// Len returns how many bytes the buffer holds.
func (b *limitedBuffer) Len() int { return b.buf.Len() }

// Bytes returns the bytes the buffer holds.
func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }

// gitLimited is git, keeping at most limit bytes of the output: past that
// the command is stopped (it gets EPIPE), and what was kept is returned
// with an error wrapping errOutputLimit.
func (o gitOptions) gitLimited(ctx context.Context, remote, dir string, stdin io.Reader, limit int64, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	stdout := &limitedBuffer{limit: limit}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	env, cleanup, err := o.env(remote)
	defer cleanup()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = gitWaitDelay
	killProcessGroup(cmd)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("git %s: %w", args[0], ctx.Err())
		}
		if limit > 0 && int64(stdout.Len()) >= limit {
			return stdout.Bytes(), fmt.Errorf("git %s: %w (%d bytes)", args[0], errOutputLimit, limit)
		}
		return stdout.Bytes(), &gitError{args: args, stderr: redact(strings.TrimSpace(stderr.String())), err: err}
	}
	return stdout.Bytes(), nil
}

// gitError is a git command that failed.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git %s: %v", e.args[0], e.err)
	// The last lines say what went wrong; the first ones are progress.
	// git's advice after a failed connection ("Could not read from
	// remote repository. Please make sure you have the correct access
	// rights…") says nothing the line before it does not.
	var lines []string
	for l := range strings.SplitSeq(e.stderr, "\n") {
		switch l = strings.TrimSpace(l); l {
		case "", "fatal: Could not read from remote repository.",
			"Please make sure you have the correct access rights", "and the repository exists.":
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	if len(lines) > 0 {
		msg += ": " + strings.Join(lines, "; ")
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// ErrAuth matches (with errors.Is) a git command that failed because the
// remote wants credentials it was not given, or refused the ones it was.
var ErrAuth = errors.New("the git server refused access")

// authMessages are what git and ssh print when the remote refuses access.
var authMessages = []string{
	"Authentication failed",
	"could not read Username",
	"could not read Password",
	"terminal prompts disabled",
	"returned error: 401",
	"returned error: 403",
	"HTTP Basic: Access denied",
	"Permission denied (publickey",
	"Host key verification failed",
}

// Is reports whether target is ErrAuth and git's message says that access
// was refused.
func (e *gitError) Is(target error) bool {
	if target != ErrAuth {
		return false
	}
	for _, m := range authMessages {
		if strings.Contains(e.stderr, m) {
			return true
		}
	}
	return false
}

// userinfoRE matches the credentials in a URL.
var userinfoRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(\w+://)[^/@\s]+@`) })

// redact removes credentials from URLs in git's messages.
func redact(s string) string {
	return userinfoRE().ReplaceAllString(s, "${1}REDACTED@")
}

// redactURL returns remote without its password, for messages.
func redactURL(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || u.User == nil {
		return redact(remote)
	}
	return u.Redacted()
}

// checkRemote refuses a remote that git would take for an option.
func checkRemote(remote string) error {
	if strings.TrimSpace(remote) == "" {
		return errors.New("empty git URL")
	}
	if strings.HasPrefix(remote, "-") {
		return fmt.Errorf("invalid git URL %q", remote)
	}
	if i := strings.Index(remote, "::"); i > 0 && !strings.ContainsAny(remote[:i], "/:@") {
		return fmt.Errorf("git URL %q uses a remote helper (TRANSPORT::ADDRESS), which ferry does not allow", remote)
	}
	return nil
}

// AllowProtocols is the environment setting that limits every git command
// ferry runs to the transports a repository may use: it refuses ext::
// (which runs a command) and other remote helpers, whatever the URL says.
const AllowProtocols = "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh"

// shaRE matches a full SHA-1 or SHA-256 object name.
var shaRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`) })

func validSHA(sha string) bool { return shaRE().MatchString(sha) }

// LsRemote lists the branches and tags of the repository at remote, as a
// map from ref ("refs/heads/main", "refs/tags/v1") to commit. An annotated
// tag maps to the commit it points to, not to the tag object. It runs
// `git ls-remote`, never prompts for credentials, and stops when ctx is
// done.
func LsRemote(ctx context.Context, remote string, opts ...GitOption) (map[string]string, error) {
	if err := checkRemote(remote); err != nil {
		return nil, fmt.Errorf("listing refs: %w", err)
	}
	out, err := newGitOptions(opts).git(ctx, remote, "", nil, "ls-remote", "--heads", "--tags", "--", remote)
	if err != nil {
		return nil, fmt.Errorf("listing refs of %s: %w", redactURL(remote), err)
	}
	refs := map[string]string{}
	peeled := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, ref, ok := strings.Cut(sc.Text(), "\t")
		if !ok || !validSHA(sha) {
			continue
		}
		if r, ok := strings.CutSuffix(ref, "^{}"); ok {
			peeled[r] = sha
			continue
		}
		refs[ref] = sha
	}
	for ref, sha := range peeled {
		refs[ref] = sha
	}
	return refs, nil
}

// RefChange is a branch or tag that moved between two listings of a
// repository's refs.
type RefChange struct {
	// Event is EventPush for a branch and EventTag for a tag.
	Event string
	// Ref is the full ref name.
	Ref string
	// Before is the commit the ref pointed to, or all zeros for a new ref.
	Before string
	// After is the commit it points to now.
	After string
}

// Hook turns the change into a Hook for repo, filled in from commit when
// it is not nil (see Mirror.Commit).
func (c RefChange) Hook(repo Repo, commit *Commit) *Hook {
	h := &Hook{Event: c.Event, Repo: repo, Ref: c.Ref, SHA: c.After, Before: c.Before}
	if b, ok := strings.CutPrefix(c.Ref, "refs/heads/"); ok {
		h.Branch, h.SourceBranch = b, b
	}
	if commit != nil {
		h.Message = commit.Message
		h.Author = User{Name: commit.Author.Name, Email: commit.Author.Email}
	}
	return h
}

// DiffRefs compares two listings from LsRemote or Mirror.Refs and returns
// what to build, sorted by ref: a push for every new or moved branch, and a
// tag for every new or moved tag. Deleted refs build nothing. An empty old
// listing makes every ref new, so a poller keeps its first listing as the
// baseline rather than building it.
func DiffRefs(old, new map[string]string) []RefChange {
	var changes []RefChange
	for ref, after := range new {
		before, existed := old[ref]
		if existed && before == after {
			continue
		}
		event, _, ok := refKind(ref)
		if !ok {
			continue
		}
		if !existed {
			before = strings.Repeat("0", len(after))
		}
		changes = append(changes, RefChange{Event: event, Ref: ref, Before: before, After: after})
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Ref < changes[j].Ref })
	return changes
}

// ReadFileAt reads the file at path in commit sha of the repository at
// remote, without cloning it: it fetches that one commit into a temporary
// repository, and only if the server refuses to hand out a commit by its
// id (protocol v0 servers do, for a commit no branch or tag points at) does
// it fetch all branches and tags. A missing file is an error wrapping
// fs.ErrNotExist. To read repeatedly from one repository, use a Mirror.
func ReadFileAt(ctx context.Context, remote, sha, path string, opts ...GitOption) ([]byte, error) {
	if err := checkRemote(remote); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !validSHA(sha) {
		return nil, fmt.Errorf("reading %s: invalid commit sha %q", path, sha)
	}
	o := newGitOptions(opts)
	dir, err := os.MkdirTemp("", "ferry-read-*")
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	format := "sha1"
	if len(sha) == 64 {
		format = "sha256"
	}
	if _, err := o.git(ctx, "", dir, nil, "init", "--quiet", "--bare", "--object-format="+format); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	_, err = o.git(ctx, remote, dir, nil, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth=1", "--", remote, sha)
	if err != nil && ctx.Err() == nil {
		_, err = o.git(ctx, remote, dir, nil, "fetch", "--quiet", "--no-write-fetch-head", "--", remote,
			"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s at %s from %s: fetching: %w", path, sha, redactURL(remote), err)
	}
	_, data, err := readBlobs(ctx, o, dir, sha, []string{path}, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s at %s from %s: %w", path, sha, redactURL(remote), err)
	}
	return data, nil
}

// errNoCommit means a repository does not have a commit.
var errNoCommit = errors.New("commit not found")

// FileSizeError reports a file larger than a reader's limit; it is
// returned before the file is read into memory.
type FileSizeError struct {
	Path      string
	Size, Max int64
}

// Error names the file, its size and the limit.
func (e *FileSizeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, more than the limit of %d", e.Path, e.Size, e.Max)
}

// readBlobs reads the first of paths that exists at commit sha in the
// repository in dir, and returns its index in paths and its content. One
// `git cat-file --batch` answers for the commit and every path. The error
// is errNoCommit when the repository lacks the commit, and wraps
// fs.ErrNotExist when no path exists. A file larger than max bytes (when
// max is positive) is a *FileSizeError, and is never held in memory whole.
func readBlobs(ctx context.Context, o gitOptions, dir, sha string, paths []string, max int64) (int, []byte, error) {
	if len(paths) == 0 {
		return 0, nil, errors.New("no path to read")
	}
	var in strings.Builder
	in.WriteString(sha + "^{commit}\n")
	clean := make([]string, len(paths))
	for i, p := range paths {
		p = strings.TrimPrefix(p, "/")
		if p == "" {
			return 0, nil, errors.New("empty path")
		}
		if strings.ContainsAny(p, "\n\r") {
			return 0, nil, fmt.Errorf("invalid path %q", p)
		}
		clean[i] = p
		in.WriteString(sha + ":" + p + "\n")
	}
	limit := int64(0)
	if max > 0 {
		// The commit object and the answers' headers come first; a
		// generous allowance for them keeps the output of a file within
		// the limit whole.
		limit = max + 1<<20
	}
	out, runErr := o.gitLimited(ctx, "", dir, strings.NewReader(in.String()), limit, "cat-file", "--batch")
	if runErr != nil && !errors.Is(runErr, errOutputLimit) {
		return 0, nil, runErr
	}
	r := bufio.NewReader(bytes.NewReader(out))
	// The answers come in the order asked: the commit, then each path.
	for i := -1; i < len(clean); i++ {
		header, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("reading git cat-file output: %w", err)
		}
		fields := strings.Fields(header)
		if len(fields) == 2 && (fields[1] == "missing" || fields[1] == "ambiguous") {
			if i < 0 {
				return 0, nil, errNoCommit
			}
			continue
		}
		if len(fields) != 3 {
			return 0, nil, fmt.Errorf("unexpected git cat-file output %q", header)
		}
		size, err := strconv.Atoi(fields[2])
		if err != nil {
			return 0, nil, fmt.Errorf("unexpected git cat-file output %q", header)
		}
		if i >= 0 && fields[1] == "blob" && max > 0 && int64(size) > max {
			return 0, nil, &FileSizeError{Path: clean[i], Size: int64(size), Max: max}
		}
		body := make([]byte, size+1) // content and a newline
		if _, err := io.ReadFull(r, body); err != nil {
			if runErr != nil {
				return 0, nil, runErr
			}
			return 0, nil, fmt.Errorf("reading git cat-file output: %w", err)
		}
		if i < 0 {
			continue
		}
		if fields[1] != "blob" {
			return 0, nil, fmt.Errorf("%s is a %s, not a file", clean[i], fields[1])
		}
		return i, body[:size], nil
	}
	return 0, nil, fmt.Errorf("%s: %w", strings.Join(clean, ", "), fs.ErrNotExist)
}
