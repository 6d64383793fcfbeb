package local

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// groupPrefix starts the name of the file, in Options.StateDir, that
// records the process group of a running step: "local-step-PGID". The
// file goes when the step ends, so nothing is left when no step runs.
const groupPrefix = "local-step-"

// groupRecord is what a group's file holds: the process that started the
// group (the agent) and when, and when the group's leader started, both in
// clock ticks since boot (field 22 of /proc/PID/stat), so that a PID or a
// group ID reused by an unrelated process is never taken for ours.
type groupRecord struct {
	ownerPID, ownerStart, leaderStart int64
}

// recordGroup writes the record of process group pgid, whose leader was
// just started, under dir; the returned function removes it once the group
// is gone. With an empty dir nothing is recorded.
func recordGroup(dir string, pgid int, logger *slog.Logger) func() {
	if dir == "" {
		return func() {}
	}
	self := os.Getpid()
	ownerStart, err1 := startTicks(self)
	leaderStart, err2 := startTicks(pgid)
	if err := errors.Join(err1, err2); err != nil {
		// The leader may have exited already; there is nothing to clean
		// up then, and nothing sure to record.
		logger.Debug("not recording a step's process group", "pgid", pgid, "err", err)
		return func() {}
	}
	path := filepath.Join(dir, groupPrefix+strconv.Itoa(pgid))
	data := fmt.Sprintf("%d %d %d\n", self, ownerStart, leaderStart)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		logger.Warn("recording a step's process group; it will not be cleaned up should this process die", "pgid", pgid, "err", err)
		return func() {}
	}
	return func() { _ = os.Remove(path) }
}

// Cleanup kills the process groups of steps that a local backend with
// Options.StateDir dir started, when the process that started them is gone:
// what an agent killed with SIGKILL left running. The step's shell gets a
// parent-death signal, but what it started lives on in its process group
// until Cleanup runs, typically when the agent starts again on the same
// work directory. Groups of live owners are left alone, and so are group
// IDs that an unrelated process has taken since. A nil logger discards
// messages.
func Cleanup(dir string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cleaning up leftover steps: %w", err)
	}
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), groupPrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		pgid, err := strconv.Atoi(id)
		rec, rerr := readRecord(path)
		if err != nil || pgid <= 1 || rerr != nil {
			logger.Warn("ignoring an unreadable record of a step's process group", "file", path, "err", errors.Join(err, rerr))
			_ = os.Remove(path)
			continue
		}
		if startedAt(int(rec.ownerPID), rec.ownerStart) {
			continue // its agent still runs it
		}
		if start, err := startTicks(pgid); err == nil && start != rec.leaderStart {
			// The group's ID belongs to another process now. (While any
			// member of our group lives, its ID cannot be reused.)
			_ = os.Remove(path)
			continue
		}
		switch err := unix.Kill(-pgid, unix.SIGKILL); {
		case err == nil:
			logger.Warn("killed the leftover process group of a step whose agent died", "pgid", pgid, "owner_pid", rec.ownerPID)
		case errors.Is(err, unix.ESRCH):
		default:
			errs = append(errs, fmt.Errorf("killing leftover process group %d: %w", pgid, err))
			continue
		}
		_ = os.Remove(path)
	}
	return errors.Join(errs...)
}

// readRecord reads a group's file.
func readRecord(path string) (groupRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return groupRecord{}, err
	}
	var r groupRecord
	if _, err := fmt.Sscan(string(data), &r.ownerPID, &r.ownerStart, &r.leaderStart); err != nil {
		return groupRecord{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return r, nil
}

// startedAt reports whether process pid exists and started at start ticks.
func startedAt(pid int, start int64) bool {
	got, err := startTicks(pid)
	return err == nil && got == start
}

// startTicks returns when process pid started, in clock ticks since boot.
func startTicks(pid int) (int64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces or
	// parentheses itself; the fields after the last ")" start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3
	if len(fields) <= startField {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(fields))
	}
	return strconv.ParseInt(fields[startField], 10, 64)
}
