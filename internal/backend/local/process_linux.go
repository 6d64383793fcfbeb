package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryci/ferry/internal/backend"
)

// drainCheck is how long Run lets the output pipe drain after a step's
// process group is gone before it checks whether a process outside the
// group holds the pipe open.
const drainCheck = 50 * time.Millisecond

// copyBuffers recycles the buffers that copy a step's output.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// exec starts c in its own process group, copies its output to out and
// waits for it, killing the group when p is asked to stop, when ctx ends,
// and when the main process has exited.
func (b *local) exec(ctx context.Context, p *proc, c *command, out io.Writer) (*backend.State, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	defer pr.Close()
	cmd := &exec.Cmd{
		Path:   c.path,
		Args:   c.args,
		Env:    c.env,
		Dir:    c.dir,
		Stdout: pw,
		Stderr: pw,
		// Its own process group, so that the whole step can be
		// stopped; and killed should ferry die (see Cleanup for what
		// the shell started).
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if u := c.user; u != nil {
		// No supplementary groups: root's would follow the step.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.args[0], err)
	}
	pgid := cmd.Process.Pid
	forget := recordGroup(b.opts.StateDir, pgid, b.opts.Logger)
	defer forget()
	backend.Started(ctx)

	cp := &copier{r: pr, w: out, done: make(chan struct{})}
	go cp.run()

	// Wait for the main process to exit without reaping it: while it is a
	// zombie its pid, which is the group's id, cannot be reused, so the
	// group can be killed safely afterwards. Should waitid fail, reaping
	// at once is the fallback.
	var ps *os.ProcessState
	var werr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		for errors.Is(err, unix.EINTR) {
			err = unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		}
		if err != nil {
			ps, werr = cmd.Process.Wait()
		}
	}()

	killed := false
	select {
	case <-exited:
	case <-ctx.Done():
		killed = true
	case <-p.stop:
		killed = true
	}
	if killed {
		_ = unix.Kill(-pgid, unix.SIGTERM)
		grace := time.NewTimer(b.opts.Grace)
		select {
		case <-exited:
		case <-grace.C:
		}
		grace.Stop()
	}
	// Whatever is left in the group goes, also when the main process
	// ended by itself.
	_ = unix.Kill(-pgid, unix.SIGKILL)
	<-exited
	if ps == nil && werr == nil {
		ps, werr = cmd.Process.Wait()
	}
	cp.finish()
	if werr != nil {
		return nil, fmt.Errorf("waiting for %s: %w", c.args[0], werr)
	}

	state := &backend.State{Killed: killed, ExitCode: exitCode(ps)}
	if cp.err != nil {
		b.opts.Logger.Warn("copying step output", "err", cp.err)
	}
	return state, nil
}

// exitCode is the process's exit status, or 128 plus the signal that
// killed it, as a shell reports it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// copier copies a step's output pipe to the step's writer.
type copier struct {
	r    *os.File
	w    io.Writer
	done chan struct{}
	// err is the first write error; set before done is closed.
	err error
}

func (c *copier) run() {
	defer close(c.done)
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := c.r.Read(buf)
		if n > 0 {
			c.write(buf[:n])
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Cut off from a process outside the group: take what the
			// pipe holds now, without waiting for more.
			_ = c.r.SetReadDeadline(time.Time{})
			c.drainNow(buf)
		}
		return
	}
}

func (c *copier) write(p []byte) {
	if _, err := c.w.Write(p); err != nil && c.err == nil {
		c.err = err
	}
}

// drainNow copies what can be read from the pipe without blocking.
func (c *copier) drainNow(buf []byte) {
	rc, err := c.r.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true // never wait for more
		})
		if err != nil || rerr != nil || n <= 0 {
			return
		}
		c.write(buf[:n])
	}
}

// finish waits until the output has been copied. Once the step's process
// group is dead the pipe reaches its end by itself, unless a process that
// left the group still holds it; then the copy is cut off.
func (c *copier) finish() {
	t := time.NewTimer(drainCheck)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if !c.writersLeft() {
			// Only the reader is slow: keep waiting for it.
			t.Reset(drainCheck)
			continue
		}
		_ = c.r.SetReadDeadline(time.Now())
		<-c.done
		return
	}
}

// writersLeft reports whether some process still holds the write end of
// the pipe: poll reports POLLHUP on the read end once none does.
func (c *copier) writersLeft() bool {
	rc, err := c.r.SyscallConn()
	if err != nil {
		return false
	}
	left := true
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 0); err == nil && n == 1 && fds[0].Revents&unix.POLLHUP != 0 {
			left = false
		}
	})
	return left
}
