package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

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
func Load(dir string, file string) (string, []byte, error) {
	if file != "" {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if isWoodpeckerDir(p) {
			return file, nil, nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return file, nil, fmt.Errorf("reading pipeline file: %w", err)
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
		data, err := os.ReadFile(p)
		if err == nil {
			return displayName(dir, name), data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return p, nil, fmt.Errorf("reading pipeline file: %w", err)
		}
	}
	return "", nil, fmt.Errorf("no pipeline file in %s (looked for %s): %w",
		dir, strings.Join(defaultFiles, ", "), fs.ErrNotExist)
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
