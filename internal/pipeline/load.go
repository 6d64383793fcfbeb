package pipeline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultMaxConfigSize is the largest pipeline file ferry reads unless told
// otherwise (--max-config-size): 4 MiB. The largest .drone.yml files in
// public repositories are under 1 MB.
const DefaultMaxConfigSize = 4 << 20

// SizeError reports a pipeline file larger than the limit. It is returned
// before the file is read or parsed.
type SizeError struct {
	// File names the file.
	File string
	// Size is the file's size in bytes, and Max the limit.
	Size, Max int64
}

// Error says how large the file is, the limit and how to change it.
func (e *SizeError) Error() string {
	return fmt.Sprintf("%s: the pipeline file is %s, larger than the limit of %s; split it, or raise the limit with --max-config-size",
		e.File, FormatBytes(e.Size), FormatBytes(e.Max))
}

// CheckSize returns a *SizeError when size is larger than max; a max of 0
// or less means DefaultMaxConfigSize.
func CheckSize(file string, size, max int64) error {
	if max <= 0 {
		max = DefaultMaxConfigSize
	}
	if size > max {
		return &SizeError{File: file, Size: size, Max: max}
	}
	return nil
}

// FormatBytes writes n bytes for people: "512 bytes", "3.2 KiB", "47.7 MiB".
func FormatBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// defaultFiles are the names Load looks for, in order: ferry's own, then
// Drone's YAML, then Drone's programs (Starlark before Jsonnet, the order
// of Drone's converters), then Woodpecker's (its directory first, as
// Woodpecker looks). Programs and Woodpecker files are converted by
// package program before Parse.
var defaultFiles = []string{".ferry.yml", ".ferry.yaml", ".drone.yml", ".drone.yaml", ".drone.star", ".drone.jsonnet",
	WoodpeckerDir, ".woodpecker.yaml", ".woodpecker.yml"}

// WoodpeckerDir is Woodpecker's directory of workflow files. Load returns
// it with no content: package program reads its files.
const WoodpeckerDir = ".woodpecker"

// DefaultFiles returns the config file names looked for when a repository
// names none, in the order Load tries them.
func DefaultFiles() []string { return slices.Clone(defaultFiles) }

// Load reads a pipeline file. When file is not empty it is read, relative
// to dir unless it is absolute. Otherwise Load reads the first of
// DefaultFiles that exists in dir: ferry's own names first, then Drone's,
// so a repository moving from Drone can keep its .drone.yml and add a
// .ferry.yml beside it. Load returns a
// name for the file and its content. When no file is found the error wraps
// fs.ErrNotExist.
//
// The name it returns is for messages: the file as the caller named it, or
// a default file's name relative to dir when dir is the working directory.
//
// A file larger than DefaultMaxConfigSize is refused with a *SizeError
// before it is read; LoadMax takes another limit.
func Load(dir string, file string) (string, []byte, error) {
	return LoadMax(dir, file, DefaultMaxConfigSize)
}

// LoadMax is Load with a limit on the file's size (DefaultMaxConfigSize
// when max is 0 or less).
func LoadMax(dir string, file string, max int64) (string, []byte, error) {
	if file != "" {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if isWoodpeckerDir(p) {
			return file, nil, nil
		}
		data, err := readMax(file, p, max)
		if err != nil {
			return file, nil, err
		}
		return file, data, nil
	}
	for _, name := range defaultFiles {
		p := filepath.Join(dir, name)
		if name == WoodpeckerDir {
			if isWoodpeckerDir(p) {
				return displayName(dir, name), nil, nil
			}
			continue
		}
		data, err := readMax(displayName(dir, name), p, max)
		if err == nil {
			return displayName(dir, name), data, nil
		}
		var size *SizeError
		if errors.As(err, &size) {
			return size.File, nil, err
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return p, nil, fmt.Errorf("reading pipeline file: %w", err)
		}
	}
	return "", nil, fmt.Errorf("no pipeline file in %s (looked for %s): %w",
		dir, strings.Join(defaultFiles, ", "), fs.ErrNotExist)
}

// readMax reads the file at path, named name in messages, refusing one
// larger than max before reading it. The read itself is bounded too, in
// case the file grows.
func readMax(name, path string, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxConfigSize
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading pipeline file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := CheckSize(name, fi.Size(), max); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading pipeline file: %w", err)
	}
	if err := CheckSize(name, int64(len(data)), max); err != nil {
		return nil, err
	}
	return data, nil
}

// isWoodpeckerDir reports whether p is a directory named .woodpecker.
func isWoodpeckerDir(p string) bool {
	if filepath.Base(filepath.Clean(p)) != WoodpeckerDir {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// displayName names a default file for messages: relative when dir is the
// process's working directory, which is how users refer to it.
func displayName(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	if wd, err := os.Getwd(); err == nil {
		if abs, err := filepath.Abs(dir); err == nil && abs == wd {
			return name
		}
	}
	return filepath.Join(dir, name)
}
