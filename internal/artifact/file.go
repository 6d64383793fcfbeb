package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

func init() { Register(func(Options) (Store, error) { return fileStore{}, nil }, "file") }

// fileStore serves file:///absolute/path URLs from the local file system
// (which may be a network mount shared by the fleet).
type fileStore struct{}

var _ Store = fileStore{}

func filePath(u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file url %q: want file:///absolute/path (no host)", u.Redacted())
	}
	if !filepath.IsAbs(u.Path) {
		return "", fmt.Errorf("file url %q: the path must be absolute", u.Redacted())
	}
	return filepath.Clean(u.Path), nil
}

func (fileStore) Open(_ context.Context, u *url.URL, offset int64) (io.ReadCloser, error) {
	p, err := filePath(u)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Put writes a temporary file next to the target and renames it into
// place, so that readers never see a half-written artifact.
func (fileStore) Put(_ context.Context, u *url.URL, r io.Reader, _ int64) error {
	p, err := filePath(u)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return WriteFileAtomic(p, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// WriteFileAtomic writes path through a temporary file in the same
// directory: write, fsync, rename over path, fsync the directory. A crash
// at any moment leaves either the old file or the new one, never a part.
func WriteFileAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the renames and creations in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
