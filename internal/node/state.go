package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryci/ferry/internal/artifact"
)

// State is the durable state of one service, in ROOT/SERVICE/state.json.
// It is rewritten atomically (temporary file, fsync, rename, fsync of the
// directory) after every step that changes it, so a crash leaves either
// the old or the new state.
type State struct {
	// Current is the release the last completed apply switched to and
	// found healthy; `current` points to it unless an apply is underway.
	Current string `json:"current,omitempty"`
	// Previous is the release before Current.
	Previous string `json:"previous,omitempty"`
	// Applying is the release being applied; set before `current` moves
	// to it and cleared when the apply ends either way. A node that finds
	// it set after a crash applies that release again.
	Applying string `json:"applying,omitempty"`
	// Releases are the releases unpacked on disk, by ID.
	Releases map[string]Kept `json:"releases,omitempty"`
	// Failed is the last release whose apply failed; it is not retried
	// until the desired release changes.
	Failed *Failure `json:"failed,omitempty"`
	// Desired is the release the node was last asked to run.
	Desired string `json:"desired,omitempty"`
	// LastApply is how long the last successful apply took.
	LastApply time.Duration `json:"last_apply_ns,omitempty"`
	// Updated is when the state last changed.
	Updated time.Time `json:"updated"`
}

// Kept is a release unpacked on disk.
type Kept struct {
	SHA256    string    `json:"sha256"`
	URL       string    `json:"url,omitempty"`
	Installed time.Time `json:"installed"`
}

// Failure records a release that failed to apply.
type Failure struct {
	Release string    `json:"release"`
	SHA256  string    `json:"sha256,omitempty"`
	Error   string    `json:"error"`
	Time    time.Time `json:"time"`
}

// ReadState reads a service's state file; a missing file is an empty
// state.
func ReadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Releases: map[string]Kept{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Releases == nil {
		s.Releases = map[string]Kept{}
	}
	return &s, nil
}

func (s *State) write(path string) error {
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return artifact.WriteFileAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}
