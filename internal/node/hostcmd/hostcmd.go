// Package hostcmd runs the commands a deploy declares (hooks, health-check
// commands, supervised processes, load-balancer hooks) on the node's host.
// These come from repositories, so they are untrusted: each runs with a
// clean environment (nothing of the node's own, such as its token), in its
// own process group, and as the configured user rather than the node's.
package hostcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPath is the PATH of every command.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Identity is who a command runs as.
type Identity struct {
	// Name is the user name ("" for the node's own user).
	Name string
	cred *syscall.Credential
	home string
}

// Lookup resolves a user name. "" means the node's own user. Switching
// to another user needs the node to run as root.
func Lookup(name string) (Identity, error) {
	if name == "" {
		return Identity{home: os.Getenv("HOME")}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Identity{}, fmt.Errorf("user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Identity{}, fmt.Errorf("user %q: %w", name, err)
	}
	if int(uid) == os.Getuid() {
		return Identity{Name: name, home: u.HomeDir}, nil
	}
	if os.Geteuid() != 0 {
		return Identity{}, fmt.Errorf("user %q: running commands as another user needs the node to run as root", name)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return Identity{Name: name, home: u.HomeDir, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}, nil
}

// Uid returns the user id commands run as.
func (id Identity) Uid() int {
	if id.cred == nil {
		return os.Getuid()
	}
	return int(id.cred.Uid)
}

// Gid returns the group id commands run as.
func (id Identity) Gid() int {
	if id.cred == nil {
		return os.Getgid()
	}
	return int(id.cred.Gid)
}

// Cmd is one command to run.
type Cmd struct {
	// Script runs with /bin/sh -c.
	Script string
	// Dir is the working directory.
	Dir string
	// Env is added to the clean environment (PATH, HOME, USER, LOGNAME,
	// LANG); it may override those.
	Env map[string]string
	// As is the user it runs as.
	As Identity
}

// Env returns the environment of c, sorted.
func (c *Cmd) environ() []string {
	base := map[string]string{"PATH": DefaultPath, "LANG": "C.UTF-8"}
	if c.As.home != "" {
		base["HOME"] = c.As.home
	}
	if c.As.Name != "" {
		base["USER"], base["LOGNAME"] = c.As.Name, c.As.Name
	}
	for k, v := range c.Env {
		base[k] = v
	}
	env := make([]string, 0, len(base))
	for k, v := range base {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// Command builds the exec.Cmd for c: its own process group, the clean
// environment, the identity. When ctx ends the whole group is killed.
func (c *Cmd) Command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Script)
	cmd.Dir = c.Dir
	cmd.Env = c.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.As.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Error is a command that ran and failed; Output is the end of what it
// printed.
type Error struct {
	Script string
	Err    error
	Output string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%q: %v", e.Script, e.Err)
	if e.Output != "" {
		s += ": " + e.Output
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs c to its end and returns its combined output (the last 4 KiB).
// A non-zero exit is an *Error carrying that output.
func Run(ctx context.Context, c Cmd) (string, error) {
	cmd := c.Command(ctx)
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return s, &Error{Script: c.Script, Err: err, Output: s}
	}
	return s, nil
}

// tail keeps the last 4 KiB written to it.
type tail struct{ b bytes.Buffer }

const tailMax = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > tailMax {
		p = p[len(p)-tailMax:]
	}
	t.b.Write(p)
	if t.b.Len() > 2*tailMax {
		keep := slices.Clone(t.b.Bytes()[t.b.Len()-tailMax:])
		t.b.Reset()
		t.b.Write(keep)
	}
	return n, nil
}

func (t *tail) String() string {
	b := t.b.Bytes()
	if len(b) > tailMax {
		b = b[len(b)-tailMax:]
	}
	return string(b)
}
