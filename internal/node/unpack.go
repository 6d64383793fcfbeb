package node

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// UnsafeArchiveError is an archive entry that would write outside the
// release directory, or is of a kind a release may not hold.
type UnsafeArchiveError struct {
	Entry  string
	Reason string
}

func (e *UnsafeArchiveError) Error() string {
	return fmt.Sprintf("refusing archive entry %q: %s", e.Entry, e.Reason)
}

// unpackTarGz extracts a gzip-compressed tar from r into dir, an existing
// empty directory. Entries may be directories, regular files, symbolic
// links and hard links; an entry with an absolute path or a ".."
// component, a link whose target leaves dir, an entry reached through a
// symbolic link, or any other kind of entry is refused with an
// *UnsafeArchiveError. Permission bits are kept, less setuid, setgid,
// sticky and the group's and others' write bits; owners are not.
//
// An archive of more than lim.MaxEntries entries, or whose files add up
// to more than lim.MaxBytes, is refused (an *UnsafeArchiveError naming
// the limit) at the entry that would pass it, before that entry is
// written: a tar bomb never fills the disk. The caller removes dir.
func unpackTarGz(r io.Reader, dir string, lim UnpackConfig) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	var entries int
	var size int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if entries++; lim.MaxEntries > 0 && entries > lim.MaxEntries {
			return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("the archive has more than %d entries (the node's unpack.max_entries)", lim.MaxEntries)}
		}
		if h.Typeflag == tar.TypeReg {
			if size += h.Size; lim.MaxBytes > 0 && size > lim.MaxBytes {
				return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("the archive unpacks to more than %s (the node's unpack.max_bytes)", sizeString(lim.MaxBytes))}
			}
		}
		if err := extract(tr, h, dir); err != nil {
			return err
		}
	}
	// Read the rest (tar padding, the gzip trailer) so the checksum covers
	// the whole file, and a trailer error is reported.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

// cleanEntry validates an archive path and returns it cleaned, relative.
func cleanEntry(name string) (string, error) {
	if name == "" {
		return "", &UnsafeArchiveError{Entry: name, Reason: "empty name"}
	}
	if strings.HasPrefix(name, "/") {
		return "", &UnsafeArchiveError{Entry: name, Reason: "absolute path"}
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", &UnsafeArchiveError{Entry: name, Reason: `".." in the path`}
		}
	}
	if strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", &UnsafeArchiveError{Entry: name, Reason: "NUL or backslash in the path"}
	}
	return path.Clean(name), nil
}

func extract(tr *tar.Reader, h *tar.Header, dir string) error {
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	name, err := cleanEntry(h.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	parent, err := safeParent(dir, name, h.Name)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, path.Base(name))
	// Releases are immutable: no write bit for group or others.
	mode := fs.FileMode(h.Mode) & 0o755
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(target)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return os.Mkdir(target, mode|0o700)
		case err != nil:
			return err
		case !fi.IsDir():
			return &UnsafeArchiveError{Entry: h.Name, Reason: "a directory over an earlier entry of another kind"}
		}
		return nil
	case tar.TypeReg:
		if err := removeNonDir(target, h.Name); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", h.Name, err)
		}
		if err := f.Chmod(mode); err != nil { // not masked by the umask
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if filepath.IsAbs(h.Linkname) {
			return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("symbolic link to the absolute path %q", h.Linkname)}
		}
		if rel := path.Join(path.Dir(name), h.Linkname); rel == ".." || strings.HasPrefix(rel, "../") {
			return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("symbolic link to %q leaves the release directory", h.Linkname)}
		}
		if err := removeNonDir(target, h.Name); err != nil {
			return err
		}
		return os.Symlink(h.Linkname, target)
	case tar.TypeLink:
		src, err := cleanEntry(h.Linkname)
		if err != nil {
			return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("hard link to %q leaves the release directory", h.Linkname)}
		}
		srcParent, err := safeParent(dir, src, h.Linkname)
		if err != nil {
			return err
		}
		srcPath := filepath.Join(srcParent, path.Base(src))
		fi, err := os.Lstat(srcPath)
		if err != nil || !fi.Mode().IsRegular() {
			return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("hard link to %q, which is not an earlier regular file of the archive", h.Linkname)}
		}
		if err := removeNonDir(target, h.Name); err != nil {
			return err
		}
		return os.Link(srcPath, target)
	default:
		return &UnsafeArchiveError{Entry: h.Name, Reason: fmt.Sprintf("entry type %q (only files, directories and links)", h.Typeflag)}
	}
}

// safeParent creates the directories leading to name under dir, refusing
// to go through a symbolic link or a non-directory, and returns the
// parent's path on disk.
func safeParent(dir, name, entry string) (string, error) {
	p := dir
	parts := strings.Split(name, "/")
	for _, el := range parts[:len(parts)-1] {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			return "", &UnsafeArchiveError{Entry: entry, Reason: "its path goes through a symbolic link"}
		case !fi.IsDir():
			return "", &UnsafeArchiveError{Entry: entry, Reason: "its path goes through a file"}
		}
	}
	return p, nil
}

// removeNonDir removes an earlier entry at target (a later entry of a tar
// replaces an earlier one) unless it is a directory.
func removeNonDir(target, entry string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &UnsafeArchiveError{Entry: entry, Reason: "replaces a directory"}
	}
	return os.Remove(target)
}

// sizeString writes n bytes for people: 4 GiB, 1.5 MiB, 1000 bytes.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v), "0"), ".") + " " + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}

// writeSingle stores a single-file artifact as dir/name, executable; one
// of more than maxBytes (when above 0) is refused.
func writeSingle(r io.Reader, dir, name string, maxBytes int64) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return &UnsafeArchiveError{Entry: name, Reason: "not a plain file name"}
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if maxBytes > 0 {
		r = io.LimitReader(r, maxBytes+1)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return err
	}
	if maxBytes > 0 && n > maxBytes {
		f.Close()
		return &UnsafeArchiveError{Entry: name, Reason: fmt.Sprintf("the artifact is larger than %s (the node's unpack.max_bytes)", sizeString(maxBytes))}
	}
	return f.Close()
}
