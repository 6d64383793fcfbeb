package trigger

import (
	"testing"

	"github.com/ferryci/ferry/internal/gittest"
)

// newGitRepo creates origin (named name.git under root) with one commit on
// main holding .drone.yml.
func newGitRepo(t *testing.T, root, name string) *gittest.Repo {
	t.Helper()
	return gittest.NewWithOrigin(t, root, name, map[string]string{
		".drone.yml": "kind: pipeline\nname: default\nsteps:\n- name: test\n  commands: [true]\n"})
}
