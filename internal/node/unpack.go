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
func unpackTarGz(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
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

// writeSingle stores a single-file artifact as dir/name, executable.
func writeSingle(r io.Reader, dir, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return &UnsafeArchiveError{Entry: name, Reason: "not a plain file name"}
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
