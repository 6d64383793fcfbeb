package cli_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/testimage"
)

// buildFerry compiles the binary under test.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferryci/ferry/cmd/ferry").CombinedOutput()
	if err != nil {
		t.Fatalf("building ferry: %v\n%s", err, out)
	}
	return bin
}

// startAndSignal runs `ferry exec` in dir, waits for line to appear in its
// output, sends sig, and returns the exit code and how long the stop took.
func startAndSignal(t *testing.T, bin, dir, wait string, sig syscall.Signal, before func(pid int), args ...string) (*exec.Cmd, int, time.Duration) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"exec"}, args...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), wait) {
				once = true
				close(seen)
			}
		}
		if !once {
			close(seen)
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-seen:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("step never printed %q", wait)
	}
	if before != nil {
		before(cmd.Process.Pid)
	}
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(2 * time.Minute): // a guard: the steps sleep for an hour
		_ = cmd.Process.Kill()
		t.Fatal("ferry did not exit within 2 minutes of the signal")
	}
	took := time.Since(start)
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	}
	return cmd, code, took
}

func writeConfig(t *testing.T, yml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".ferry.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSIGTERMStopsLocalStepsAndKillsProcessGroup(t *testing.T) {
	bin := buildFerry(t)
	dir := writeConfig(t, `kind: pipeline
type: exec
name: p
steps:
- name: sleepy
  commands:
  - sleep 3600 & echo $! > child.pid
  - echo ready
  - sleep 3600
`)
	_, code, took := startAndSignal(t, bin, dir, "ready", syscall.SIGTERM, nil, "--commit", "abc", "--branch", "main")
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	t.Logf("stopping took %s", took)
	data, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid > 0 && alive(pid) {
		t.Errorf("background child %d of the step survived", pid)
	}
}

// alive reports whether pid runs (zombies count as dead: PID 1 here may not
// reap orphans).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat))
	return len(fields) > 2 && fields[2] != "Z"
}

func TestSIGINTDuringDockerStepLeavesNothingBehind(t *testing.T) {
	cli := testimage.Client(t)
	ctx := context.Background()
	if _, err := testimage.Busybox(ctx, cli); err != nil {
		t.Fatal(err)
	}
	bin := buildFerry(t)
	dir := writeConfig(t, `kind: pipeline
type: docker
name: p
volumes:
- name: scratch
  temp: {}
services:
- name: svc
  image: ferry-test/busybox
  commands: ["sleep 3600"]
steps:
- name: sleepy
  image: ferry-test/busybox
  volumes: [{name: scratch, path: /scratch}]
  commands: ["echo ready", "sleep 3600"]
`)
	owned := func(pid int) filters.Args {
		return filters.NewArgs(filters.Arg("label", backend.LabelPID+"="+strconv.Itoa(pid)))
	}
	// The run's resources exist, and carry the owner label, before the signal.
	before := func(pid int) {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: owned(pid)})
		if err != nil {
			t.Fatal(err)
		}
		vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: owned(pid)})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 || len(vs.Volumes) < 2 {
			t.Fatalf("expected the service and step containers and the workspace and temp volumes, found %d containers, %d volumes", len(cs), len(vs.Volumes))
		}
	}
	cmd, code, took := startAndSignal(t, bin, dir, "ready", syscall.SIGINT, before, "--commit", "abc", "--branch", "main")
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	t.Logf("stopping took %s", took)
	f := owned(cmd.Process.Pid)
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs)+len(ns)+len(vs.Volumes) != 0 {
		t.Fatalf("left behind: %d containers, %d networks, %d volumes", len(cs), len(ns), len(vs.Volumes))
	}
}
