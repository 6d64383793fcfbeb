package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/backend"
)

// TestStepGroupRecorded checks that a running step's process group is
// recorded under StateDir, with this process as its owner, and that the
// record goes when the step ends.
func TestStepGroupRecorded(t *testing.T) {
	state := t.TempDir()
	spec := &backend.Spec{}
	b := setup(t, Options{StateDir: state}, spec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out output
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(ctx, spec, &backend.Step{Name: "s", Commands: []string{"echo shell=$$", "sleep 300"}}, &out)
		done <- err
	}()
	shell := out.waitFor(t, `shell=(\d+)\n`)
	rec, err := readRecord(filepath.Join(state, groupPrefix+shell))
	if err != nil {
		t.Fatalf("no record of the running step's group: %v", err)
	}
	if rec.ownerPID != int64(os.Getpid()) {
		t.Errorf("record owner %d, want this process %d", rec.ownerPID, os.Getpid())
	}
	// Its owner is alive: Cleanup leaves it alone.
	if err := Cleanup(state, nil); err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(shell)
	if !alive(pid) {
		t.Fatal("Cleanup killed the step of a live owner")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("records left after the step ended: %v", entries)
	}
}

// TestCleanupKillsOrphanedGroups plays what an agent killed with SIGKILL
// leaves: a recorded process group (a shell and a background child) whose
// owner is gone. Cleanup kills the whole group and removes the record. A
// record whose group ID now belongs to another process is dropped without
// killing anything.
func TestCleanupKillsOrphanedGroups(t *testing.T) {
	state := t.TempDir()
	// A dead owner: a process that ran and was reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 300 & echo $!; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-waited })
	buf := make([]byte, 32)
	n, _ := stdout.Read(buf)
	child, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("reading the child's pid: %v (%q)", err, buf[:n])
	}
	pgid := cmd.Process.Pid
	leader, err := startTicks(pgid)
	if err != nil {
		t.Fatal(err)
	}
	write := func(pgid int, leaderStart int64) string {
		path := filepath.Join(state, groupPrefix+strconv.Itoa(pgid))
		data := strconv.Itoa(gone.Process.Pid) + " 1 " + strconv.FormatInt(leaderStart, 10) + "\n"
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Another group, recorded with another start time: its ID was
	// reused by an unrelated process, which must not be killed.
	other := exec.Command("sleep", "300")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	reused := write(other.Process.Pid, leader+12345)
	orphan := write(pgid, leader)

	if err := Cleanup(state, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned group's shell still runs after Cleanup")
	}
	waitDead(t, child)
	if !alive(other.Process.Pid) {
		t.Error("Cleanup killed a group whose ID was recorded with another start time")
	}
	for _, p := range []string{orphan, reused} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("record %s left after Cleanup: %v", p, err)
		}
	}
}
