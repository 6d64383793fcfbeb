package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ferryci/ferry/internal/backend/local"
)

// workDirs hands out the directories jobs run in. A directory is reused by
// the next job once it is emptied: creating and removing a directory costs
// a file system far more than listing an empty one (on ext4, a mkdir and
// rmdir pair took 0.1–0.6 ms of CPU; a no-op job needs about 3 ms), and an
// agent runs thousands of short jobs. Each job still starts in an empty
// directory of its own: a directory is only handed out again after
// everything the previous job left in it was removed.
type workDirs struct {
	root string

	mu   sync.Mutex
	free []string
}

// dirMode is a job's work dir's mode.
const dirMode = 0o755

// get returns an empty directory for a job: a reused one, or a new one
// under root.
func (w *workDirs) get() (string, error) {
	w.mu.Lock()
	if n := len(w.free); n > 0 {
		dir := w.free[n-1]
		w.free = w.free[:n-1]
		w.mu.Unlock()
		return dir, nil
	}
	w.mu.Unlock()
	dir, err := os.MkdirTemp(w.root, "job-")
	if err != nil {
		return "", err
	}
	// Steps running as another user (in a container) may write here too.
	if err := os.Chmod(dir, dirMode); err != nil {
		return "", errors.Join(err, os.Remove(dir))
	}
	return dir, nil
}

// put empties dir and keeps it for the next job. A directory that cannot
// be emptied is removed instead; failing that, the error is returned.
func (w *workDirs) put(dir string) error {
	if err := emptyDir(dir); err != nil {
		return local.RemoveAll(dir)
	}
	w.mu.Lock()
	w.free = append(w.free, dir)
	w.mu.Unlock()
	return nil
}

// close removes the directories kept for reuse.
func (w *workDirs) close() error {
	w.mu.Lock()
	free := w.free
	w.free = nil
	w.mu.Unlock()
	var errs []error
	for _, dir := range free {
		errs = append(errs, local.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// emptyDir removes everything inside dir, but not dir itself, and checks
// that dir is still a directory of its own (a step may have replaced it).
func emptyDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode().Perm() != dirMode {
		return errors.New("work dir was replaced or its permissions changed")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := local.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// openWorkDir lets u, the user host steps run as, reach its jobs' dirs in
// root: root becomes searchable but not listable by others (0711), and
// every directory above it must let u through. The local backend then
// hands each job's dir to u for the job's duration.
func openWorkDir(root string, u *local.User) error {
	if err := os.Chmod(root, 0o711); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		if !searchable(fi, u) {
			return fmt.Errorf("work dir %s: user %s, who runs host steps, cannot enter %s (mode %04o); "+
				"choose a --workdir it can reach, or allow it with chmod o+x %s", root, u.Name, dir, fi.Mode().Perm(), dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}
