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
	if code := Lint(dir, "", false, &lintOut, &lintErr); code != ExitInvalid {
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
	if code := Lint(dir, "", false, &lintOut, &lintErr); code != ExitOK {
		t.Errorf("lint of a file with variables: exit %d: %s%s", code, lintOut.String(), lintErr.String())
	}
}

// writeConfig writes a .drone.yml holding src into a new directory.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".drone.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const warnedConfig = `kind: pipeline
type: exec
name: tolerant
steps:
- name: hello
  secrets: [token]
  pull: default
  commands:
  - echo hello-from-step
  comands: [oops]
`

func TestLintWarningsExitZeroAndStrictExitTwo(t *testing.T) {
	dir := writeConfig(t, warnedConfig)
	var out, errOut bytes.Buffer
	if code := Lint(dir, "", false, &out, &errOut); code != ExitOK {
		t.Fatalf("lint exited %d, want 0 on warnings only\n%s%s", code, out.String(), errOut.String())
	}
	want := []string{
		`.drone.yml:6:3: warning: "secrets" on a step is Drone 0.8's form`,
		`.drone.yml:10:3: warning: unknown key "comands" in step is ignored; did you mean "commands"?`,
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("lint printed %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(strings.TrimPrefix(lines[i], dir+"/"), w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(errOut.String(), "valid, with 2 warning(s)") {
		t.Errorf("stderr = %q, want the warning count", errOut.String())
	}

	out.Reset()
	errOut.Reset()
	if code := Lint(dir, "", true, &out, &errOut); code != ExitInvalid {
		t.Fatalf("lint --strict exited %d, want 2", code)
	}
	if strings.Contains(out.String(), "warning:") || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("lint --strict printed %q, want the two problems as errors", out.String())
	}
}

func TestLintAndExecAgreeOnEmptyFile(t *testing.T) {
	dir := writeConfig(t, "# nothing yet\n")
	var out, errOut bytes.Buffer
	if code := Lint(dir, "", false, &out, &errOut); code != ExitInvalid || !strings.Contains(out.String(), "no pipelines found") {
		t.Errorf("lint: exit %d, output %q; want 2 and no pipelines found", code, out.String())
	}
	out.Reset()
	errOut.Reset()
	code := Exec(context.Background(), ExecOptions{Dir: dir, Stdout: &out, Stderr: &errOut})
	if code != ExitInvalid || !strings.Contains(errOut.String(), "no pipelines found") {
		t.Errorf("exec: exit %d, stderr %q; want 2 and no pipelines found", code, errOut.String())
	}
}

func TestUnknownPipelineType(t *testing.T) {
	dir := writeConfig(t, "kind: pipeline\ntype: exce\nname: typo\nsteps:\n- name: a\n  commands: [echo hi]\n")
	var out, errOut bytes.Buffer
	if code := Lint(dir, "", false, &out, &errOut); code != ExitOK {
		t.Errorf("lint exited %d, want 0 (a warning)", code)
	}
	if !strings.Contains(out.String(), `warning: unknown pipeline type "exce"; did you mean "exec"?`) {
		t.Errorf("lint printed %q, want the type warning with its suggestion", out.String())
	}
	// Not "it runs": exec runs nothing of it.
	if strings.Contains(errOut.String(), "runs") {
		t.Errorf("lint says %q, although ferry exec runs nothing of the file", errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code := Exec(context.Background(), ExecOptions{Dir: dir, Stdout: &out, Stderr: &errOut})
	if code == ExitOK {
		t.Fatalf("exec exited 0 although nothing ran; stderr:\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), `nothing ran: ferry does not run pipeline "typo" (type "exce")`) {
		t.Errorf("stderr = %q, want it to say why nothing ran", errOut.String())
	}
}

func TestExecPrintsWarningsAndRuns(t *testing.T) {
	dir := writeConfig(t, warnedConfig)
	var out, errOut bytes.Buffer
	code := Exec(context.Background(), ExecOptions{Dir: dir, Stdout: &out, Stderr: &errOut})
	if code != ExitOK {
		t.Fatalf("exec exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "hello-from-step") {
		t.Errorf("the step did not run; stdout:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), `.drone.yml:10:3: warning: unknown key "comands"`) {
		t.Errorf("stderr lacks the warning:\n%s", errOut.String())
	}
}
