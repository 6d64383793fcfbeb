package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Pushed is an uploaded artifact.
type Pushed struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Push uploads the file at path to dest. A dest ending in "/" gets the
// file's name appended. With sidecar, dest + ".sha256" is written after the
// artifact (in sha256sum's format), so that a standalone node polling the
// sidecar never sees a checksum before its artifact.
func Push(ctx context.Context, path, dest string, opts Options, sidecar bool) (*Pushed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if strings.HasSuffix(dest, "/") {
		dest += filepath.Base(path)
	}
	u, s, err := Parse(dest, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, u, f, fi.Size()); err != nil {
		return nil, fmt.Errorf("uploading %s: %w", path, err)
	}
	if sidecar {
		line := sum + "  " + filepath.Base(u.Path) + "\n"
		if err := s.Put(ctx, ChecksumURL(u), strings.NewReader(line), int64(len(line))); err != nil {
			return nil, fmt.Errorf("uploading the checksum: %w", err)
		}
	}
	return &Pushed{URL: Redact(u), SHA256: sum, Size: fi.Size()}, nil
}
