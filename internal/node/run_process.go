package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	registerRunMode("process", runMode{
		validate: func(rc *RunConfig) error {
			if rc.Command == "" {
				return errors.New("the process mode needs command")
			}
			if rc.StopTimeout < 0 || rc.RestartDelay < 0 {
				return errors.New("stop_timeout and restart_delay must not be negative")
			}
			return nil
		},
		new: func(s *service) Runner { return &processRunner{s: s} },
	})
}

// processRunner supervises the app as a child process: started in the
// release directory, restarted after restart_delay whenever it exits, and
// stopped with SIGTERM (SIGKILL after stop_timeout) to switch releases.
// Its output is appended to ROOT/SERVICE/process.log.
//
// The child dies with the node (parent-death signal); a pid file lets a
// restarted node also kill a child that outlived it.
type processRunner struct {
	s   *service
	cur *supervised
}

type supervised struct {
	stop chan struct{} // closed to stop
	done chan struct{} // closed when the process is gone for good
}

func (r *processRunner) Start(_ context.Context, dir string) error {
	killLeftover(r.pidFile())
	if dir == "" {
		return nil
	}
	r.cur = r.start(dir)
	return nil
}

func (r *processRunner) Switch(ctx context.Context, dir string) error {
	if err := r.Stop(ctx); err != nil {
		return err
	}
	r.cur = r.start(dir)
	return nil
}

func (r *processRunner) Stop(ctx context.Context) error {
	if r.cur == nil {
		return nil
	}
	close(r.cur.stop)
	select {
	case <-r.cur.done:
		r.cur = nil
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the process: %w", context.Cause(ctx))
	}
}

func (r *processRunner) pidFile() string { return filepath.Join(r.s.dir, "process.pid") }

func (r *processRunner) start(dir string) *supervised {
	sv := &supervised{stop: make(chan struct{}), done: make(chan struct{})}
	go r.supervise(dir, sv)
	return sv
}

func (r *processRunner) supervise(dir string, sv *supervised) {
	defer close(sv.done)
	rc := r.s.cfg.Run
	stopTimeout := or(rc.StopTimeout, 10*time.Second)
	delay := or(rc.RestartDelay, time.Second)
	log := r.s.log.With("release_dir", dir)
	for n := 0; ; n++ {
		out, err := os.OpenFile(filepath.Join(r.s.dir, "process.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			log.Error("process: opening its log", "err", err)
		}
		c := r.s.cmd(dir, rc.Command)
		cmd := c.Command(context.Background())
		cmd.Cancel = nil
		if out != nil {
			cmd.Stdout, cmd.Stderr = out, out
		}
		err = cmd.Start()
		if out != nil {
			out.Close()
		}
		exited := make(chan error, 1)
		if err != nil {
			log.Error("process: starting", "err", err)
			exited <- err
		} else {
			writePidFile(r.pidFile(), cmd.Process.Pid)
			log.Info("process started", "pid", cmd.Process.Pid, "restarts", n)
			go func() { exited <- cmd.Wait() }()
		}
		select {
		case err := <-exited:
			log.Warn("process exited; restarting", "err", err, "after", delay)
			select {
			case <-time.After(delay):
				continue
			case <-sv.stop:
				_ = os.Remove(r.pidFile())
				return
			}
		case <-sv.stop:
			pid := cmd.Process.Pid
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case err := <-exited:
				log.Debug("process exited after SIGTERM", "status", err)
			case <-time.After(stopTimeout):
				log.Warn("process: still running after stop_timeout; killing it", "pid", pid)
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				err := <-exited
				log.Debug("process killed", "status", err)
			}
			// Whatever else is left in its process group goes too.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = os.Remove(r.pidFile())
			log.Info("process stopped", "pid", pid)
			return
		}
	}
}

// writePidFile records pid with its start time, so that a later node only
// kills that very process, not another that reuses the pid.
func writePidFile(path string, pid int) {
	st, _ := procStart(pid)
	_ = os.WriteFile(path, []byte(strconv.Itoa(pid)+" "+st+"\n"), 0o644)
}

// killLeftover kills the process group recorded in a pid file by an
// earlier node that died without stopping it.
func killLeftover(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	_ = os.Remove(path)
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return
	}
	if st, err := procStart(pid); err == nil && st == f[1] {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for range 200 { // wait up to 2 s for the port to be released
			if _, err := procStart(pid); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// procStart reads a process's start time (field 22 of /proc/PID/stat).
func procStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return "", errors.New("gone")
	}
	return f[19], nil
}
