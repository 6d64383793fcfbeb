package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLintAgreesWithExec is part of finding 6 of issue 7: `"\\d"` in a
// double-quoted YAML string passed ferry lint but failed ferry exec and the
// server, which substitute ${VARIABLES} first (as Drone does), and that
// turns "\\" into "\". Lint now parses the file as they do and reports the
// same error, with a hint; variables still do not make lint fail.
func TestLintAgreesWithExec(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) {
		if err := os.WriteFile(filepath.Join(dir, ".drone.yml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kind: pipeline\ntype: exec\nname: a\nclone:\n  disable: true\nsteps:\n- name: s\n  commands:\n  - \"echo \\\\d\"\n")
	var lintOut, lintErr bytes.Buffer
	if code := Lint(dir, "", &lintOut, &lintErr); code != ExitInvalid {
		t.Fatalf("lint exit %d (%s%s), want %d", code, lintOut.String(), lintErr.String(), ExitInvalid)
	}
	var execOut, execErr bytes.Buffer
	code := Exec(context.Background(), ExecOptions{Dir: dir, Backend: "local", Stdout: &execOut, Stderr: &execErr})
	if code != ExitInvalid {
		t.Fatalf("exec exit %d, want %d: %s", code, ExitInvalid, execErr.String())
	}
	const want = `.drone.yml:9:11: invalid YAML: found unknown escape character`
	if !strings.Contains(lintOut.String(), want) || !strings.Contains(execErr.String(), want) {
		t.Errorf("lint said %q and exec said %q; want both to say %q", lintOut.String(), execErr.String(), want)
	}
	if !strings.Contains(lintOut.String(), `write "\\\\" for one backslash`) {
		t.Errorf("lint's message has no hint about the substitution: %q", lintOut.String())
	}

	// Variables the server fills in are no error for lint.
	write("kind: pipeline\nname: a\nsteps:\n- name: s\n  image: ${IMAGE}\n  commands: [\"echo $${HOME} ${DRONE_BRANCH}\", 'echo \\d']\n")
	lintOut.Reset()
	lintErr.Reset()
	if code := Lint(dir, "", &lintOut, &lintErr); code != ExitOK {
		t.Errorf("lint of a file with variables: exit %d: %s%s", code, lintOut.String(), lintErr.String())
	}
}
