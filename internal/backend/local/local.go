// Package local is the backend that runs steps as processes on the host,
// the way Drone's exec runner and "drone exec" do for exec pipelines.
//
// Each step runs in a clean environment (its own variables, plus PATH and
// HOME from ferry's environment unless the step sets them) and in its own
// process group, with stdin from /dev/null and stdout and stderr joined in
// one pipe, so that their order is kept. Commands run as one POSIX shell
// script with "sh -e"; a step without commands runs its entrypoint and
// command as an argument vector.
//
// Should ferry itself die, the step's main process gets SIGKILL (a
// parent-death signal), and Cleanup, run at the next start, kills what is
// left of its process group (see Options.StateDir).
//
// When a step's main process exits, whatever it left running in its
// process group (a "sleep 100 &", a server started for tests) is killed,
// as it would be when a container stops. When the step is cancelled, or
// the pipeline is destroyed while it runs, the whole group gets SIGTERM
// and, after a grace period, SIGKILL. A process that leaves the group
// (setsid, a daemon that double-forks) is out of ferry's reach and keeps
// running; its copy of the step's output pipe is cut off, so it cannot
// hold the step open.
//
// What a host cannot provide is ignored: Image and Pull (the step uses the
// host's tools), User, Privileged, NetworkMode, ExtraHosts, ShmSize and
// MemLimit. Volumes and mounts are ignored too: all steps share the host's
// file system, so a path such as /go/pkg/mod is simply the host's, and
// steps see each other's files without a volume. The local backend is
// meant for trusted pipelines on a machine set up for them.
//
// With Options.User, steps run as that user rather than as ferry's, so
// that they cannot read what ferry keeps private (its data directory, its
// environment, the files of ferry's user); docs/security.md says what
// that protects and what it cannot.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/backend"
)

// Options configure the local backend. The zero value is usable.
type Options struct {
	// Logger receives the backend's diagnostics; nil discards them.
	Logger *slog.Logger
	// Shell runs a step's commands; the default is "/bin/sh". It is
	// started as Shell -e -c SCRIPT.
	Shell string
	// TempDir is where per-pipeline directories are created; the default
	// is os.TempDir().
	TempDir string
	// Grace is how long a cancelled step's process group has between
	// SIGTERM and SIGKILL; the default is DefaultGrace.
	Grace time.Duration
	// StateDir, when set, is where the backend records the process group
	// of every step while it runs, so that Cleanup(StateDir) can kill
	// what a crashed ferry left behind. An agent passes its work dir.
	StateDir string
	// User, when set, runs every step as this user instead of ferry's
	// own, with no supplementary groups; ferry must run as root. Setup
	// hands the workspace to the user, Destroy takes it back. See
	// docs/security.md for what this protects.
	User *User
}

// User is the account host steps run as (Options.User).
type User struct {
	// Name is the user's name, for messages.
	Name     string
	UID, GID uint32
	// Home is the user's home directory; when it does not exist, steps
	// get a fresh one in the run's own directory.
	Home string
}

// LookupUser finds a user by name or numeric id in the system's user
// database.
func LookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric gid %q", name, u.Gid)
	}
	return &User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}, nil
}

// DefaultGrace is the default time between SIGTERM and SIGKILL when a step
// is stopped.
const DefaultGrace = 1500 * time.Millisecond

// maxInlineScript is the longest script passed with "sh -c"; a longer one
// is written to a file, since Linux limits one argument to 128 KiB.
const maxInlineScript = 64 << 10

// New returns a backend that runs steps as host processes.
func New(opts Options) backend.Backend {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	return &local{opts: opts, runs: make(map[string]*run)}
}

var _ backend.Backend = (*local)(nil)

// local is the backend.Backend returned by New.
type local struct {
	opts Options

	mu   sync.Mutex
	runs map[string]*run // by Spec.ID
}

// run is the state of one pipeline run.
type run struct {
	mu sync.Mutex
	// root is the run's own temporary directory, removed by Destroy; it
	// is created on first use when the run has a host directory.
	root string
	// workspace is the steps' default working directory; it is empty
	// until Setup succeeded.
	workspace string
	procs     map[*proc]struct{}
	destroyed bool
}

// proc is one running step.
type proc struct {
	stopOnce sync.Once
	// stop is closed to ask the step to stop.
	stop chan struct{}
	// done is closed when Run has returned.
	done chan struct{}
}

func (p *proc) requestStop() { p.stopOnce.Do(func() { close(p.stop) }) }

// Name implements backend.Backend.
func (b *local) Name() string { return "local" }

// Setup implements backend.Backend. It creates the run's temporary
// directory and, unless the spec names a host directory to run in, the
// workspace inside it.
func (b *local) Setup(ctx context.Context, spec *backend.Spec) error {
	b.mu.Lock()
	if _, ok := b.runs[spec.ID]; ok {
		b.mu.Unlock()
		return fmt.Errorf("setting up pipeline %s: already set up", spec.ID)
	}
	r := &run{procs: make(map[*proc]struct{})}
	b.runs[spec.ID] = r
	b.mu.Unlock()

	root, ws, err := b.prepare(spec)
	r.mu.Lock()
	r.root, r.workspace = root, ws
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if u := b.opts.User; u != nil {
		for _, dir := range []string{root, ws} {
			if dir == "" {
				continue
			}
			if err := chownTree(dir, u); err != nil {
				return fmt.Errorf("handing the workspace to user %s: %w", u.Name, err)
			}
		}
	}
	b.opts.Logger.DebugContext(ctx, "pipeline set up", "run", spec.ID, "workspace", ws)
	return nil
}

// prepare finds the run's workspace, or creates it in the run's own
// directory. It returns the directory also when it fails later, for
// Destroy to remove. A run in a host directory gets its own directory only
// when a step needs one (see run.tempDir): for short jobs, creating and
// removing a directory is a good part of the cost.
func (b *local) prepare(spec *backend.Spec) (root, workspace string, err error) {
	if dir := spec.Workspace.HostDir; dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", "", fmt.Errorf("resolving workspace %s: %w", dir, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return "", "", fmt.Errorf("opening workspace: %w", err)
		}
		if !fi.IsDir() {
			return "", "", fmt.Errorf("opening workspace: %s is not a directory", abs)
		}
		return "", abs, nil
	}
	root, err = os.MkdirTemp(b.opts.TempDir, "ferry-local-")
	if err != nil {
		return "", "", fmt.Errorf("creating pipeline directory: %w", err)
	}
	ws := filepath.Join(root, "workspace")
	if p := strings.Trim(spec.Workspace.Path, "/"); p != "" && filepath.IsLocal(p) {
		ws = filepath.Join(ws, p)
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return root, "", fmt.Errorf("creating workspace: %w", err)
	}
	return root, ws, nil
}

// tempDir returns the run's own directory, creating it in base (owned by
// u, when not nil) on first use. It fails once the run is destroyed.
func (r *run) tempDir(base string, u *User) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.destroyed {
		return "", errors.New("the pipeline was destroyed")
	}
	if r.root == "" {
		root, err := os.MkdirTemp(base, "ferry-local-")
		if err != nil {
			return "", fmt.Errorf("creating pipeline directory: %w", err)
		}
		r.root = root
		if u != nil {
			if err := os.Lchown(root, int(u.UID), int(u.GID)); err != nil {
				return "", fmt.Errorf("handing the pipeline directory to user %s: %w", u.Name, err)
			}
		}
	}
	return r.root, nil
}

// chownTree gives dir and everything in it to u. It works inside an
// os.Root and changes symbolic links themselves, so a link in the
// checkout cannot make it change anything outside dir.
func chownTree(dir string, u *User) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(path, int(u.UID), int(u.GID))
	})
}

// Destroy implements backend.Backend. It stops every step of the spec that
// is still running, waits for them to end and removes the run's temporary
// directory. It never removes Workspace.HostDir.
func (b *local) Destroy(ctx context.Context, spec *backend.Spec) error {
	b.mu.Lock()
	r := b.runs[spec.ID]
	delete(b.runs, spec.ID)
	b.mu.Unlock()
	if r == nil {
		return nil
	}

	r.mu.Lock()
	r.destroyed = true
	procs := make([]*proc, 0, len(r.procs))
	for p := range r.procs {
		procs = append(procs, p)
	}
	root := r.root
	r.mu.Unlock()

	var errs []error
	// Run needs at most the grace period to stop a step; the margin covers
	// a process that is slow to die after SIGKILL.
	deadline := time.NewTimer(b.opts.Grace + 3*time.Second)
	defer deadline.Stop()
	for _, p := range procs {
		p.requestStop()
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline.C:
			errs = append(errs, errors.New("stopping steps: a step did not stop in time"))
		}
		if len(errs) > 0 {
			break
		}
	}
	if dir := spec.Workspace.HostDir; b.opts.User != nil && dir != "" {
		// Take the host directory back, so that a process the step left
		// behind cannot write into it before its owner empties it.
		if err := os.Lchown(dir, os.Geteuid(), os.Getegid()); err != nil {
			errs = append(errs, fmt.Errorf("taking back the workspace: %w", err))
		}
	}
	if root != "" {
		if err := RemoveAll(root); err != nil {
			errs = append(errs, fmt.Errorf("removing pipeline directory: %w", err))
		}
	}
	b.opts.Logger.DebugContext(ctx, "pipeline destroyed", "run", spec.ID, "stopped", len(procs))
	return errors.Join(errs...)
}

// RemoveAll removes dir like os.RemoveAll, also when steps left
// directories without write permission (as Go's module cache does).
func RemoveAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// track registers p with the run; it fails once the run is destroyed.
func (r *run) track(p *proc) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.destroyed {
		return false
	}
	r.procs[p] = struct{}{}
	return true
}

func (r *run) untrack(p *proc) {
	r.mu.Lock()
	delete(r.procs, p)
	r.mu.Unlock()
	close(p.done)
}

// lookup returns the state of a run that was set up.
func (b *local) lookup(id string) (*run, error) {
	b.mu.Lock()
	r := b.runs[id]
	b.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("pipeline %s is not set up", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.workspace == "" {
		return nil, fmt.Errorf("pipeline %s is not set up", id)
	}
	return r, nil
}

// Run implements backend.Backend.
func (b *local) Run(ctx context.Context, spec *backend.Spec, step *backend.Step, out io.Writer) (*backend.State, error) {
	r, err := b.lookup(spec.ID)
	if err != nil {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return &backend.State{Killed: true}, nil
	}
	p := &proc{stop: make(chan struct{}), done: make(chan struct{})}
	if !r.track(p) {
		return nil, &backend.ExitError{Step: step.Name, Err: errors.New("pipeline was destroyed")}
	}
	defer r.untrack(p)

	cmd, err := b.command(r, step)
	if err != nil {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	b.opts.Logger.DebugContext(ctx, "starting step", "run", spec.ID, "step", step.Name, "dir", cmd.dir)
	state, err := b.exec(ctx, p, cmd, out)
	if err != nil {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	return state, nil
}

// command is what to start for one step.
type command struct {
	path string
	args []string
	env  []string
	dir  string
	// user, when set, is who the step runs as.
	user *User
}

// home is the HOME of steps running as u: u's home directory when it
// exists, else a directory of u's own in the run's directory.
func (b *local) home(r *run, u *User) (string, error) {
	if fi, err := os.Stat(u.Home); err == nil && fi.IsDir() && u.Home != "/" {
		return u.Home, nil
	}
	root, err := r.tempDir(b.opts.TempDir, u)
	if err != nil {
		return "", fmt.Errorf("creating HOME: %w", err)
	}
	home := filepath.Join(root, "home")
	if err := os.Mkdir(home, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("creating HOME: %w", err)
	}
	if err := os.Lchown(home, int(u.UID), int(u.GID)); err != nil {
		return "", fmt.Errorf("creating HOME: %w", err)
	}
	return home, nil
}

// command builds the process to start for step.
func (b *local) command(r *run, step *backend.Step) (*command, error) {
	c := &command{dir: r.workspace}
	if wd := step.WorkingDir; wd != "" {
		if filepath.IsAbs(wd) {
			c.dir = filepath.Clean(wd)
		} else {
			c.dir = filepath.Join(r.workspace, wd)
		}
	}

	pathEnv := os.Getenv("PATH")
	if pathEnv == "" {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	home := os.Getenv("HOME")
	if u := b.opts.User; u != nil {
		c.user = u
		var err error
		if home, err = b.home(r, u); err != nil {
			return nil, err
		}
	}
	c.env = make([]string, 0, len(step.Env)+2)
	for k, v := range step.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		switch k {
		case "PATH":
			pathEnv = v
			continue
		case "HOME":
			home = v
			continue
		}
		c.env = append(c.env, k+"="+v)
	}
	c.env = append(c.env, "PATH="+pathEnv)
	if home != "" {
		c.env = append(c.env, "HOME="+home)
	}

	switch {
	case len(step.Commands) > 0:
		script := backend.Script(step.Commands)
		shell := b.opts.Shell
		if step.Shell != "" {
			shell = step.Shell
		}
		if len(script) <= maxInlineScript {
			c.args = []string{shell, "-e", "-c", script}
		} else {
			root, err := r.tempDir(b.opts.TempDir, b.opts.User)
			if err != nil {
				return nil, fmt.Errorf("writing script: %w", err)
			}
			f, err := os.CreateTemp(root, "script-*.sh")
			if err != nil {
				return nil, fmt.Errorf("writing script: %w", err)
			}
			_, werr := f.WriteString(script)
			if u := b.opts.User; u != nil && werr == nil {
				werr = f.Chown(int(u.UID), int(u.GID))
			}
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return nil, fmt.Errorf("writing script: %w", werr)
			}
			c.args = []string{shell, "-e", f.Name()}
		}
	case len(step.Entrypoint)+len(step.Command) > 0:
		c.args = append(append([]string(nil), step.Entrypoint...), step.Command...)
	default:
		return nil, errors.New("nothing to run: the step has no commands and no entrypoint (the local backend cannot run images)")
	}
	path, err := lookPath(c.args[0], pathEnv, c.dir)
	if err != nil {
		return nil, err
	}
	c.path = path
	return c, nil
}

// lookPath finds the executable file for name, searching pathEnv (the
// step's PATH, not ferry's) when name has no slash. A relative name with a
// slash is relative to dir, the step's working directory.
func lookPath(name, pathEnv, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		if err := executable(name); err != nil {
			return "", fmt.Errorf("finding %s: %w", name, err)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("finding %s: executable file not found in PATH %s", name, pathEnv)
}

// executable checks that path is a regular file with an execute bit.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
