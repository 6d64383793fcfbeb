//go:build unix

package agent

import (
	"os"
	"syscall"

	"github.com/ferryci/ferry/internal/backend/local"
)

// searchable reports whether u may enter the directory fi describes.
func searchable(fi os.FileInfo, u *local.User) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // not a POSIX file system: let the step find out
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.UID:
		return perm&0o100 != 0
	case st.Gid == u.GID:
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}
