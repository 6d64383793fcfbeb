package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestUserPasswdTerminal types a password into `ferry user passwd` at a
// real terminal (a pseudo-terminal made by util-linux's script) and checks
// that the terminal never shows it: every line is typed only after its
// prompt, once echo is off.
func TestUserPasswdTerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		skipOrFail(t, "util-linux's script is needed for a pseudo-terminal: %v", err)
	}
	srv := startServer(t, serverOptions{})
	admin := adminAPI(t, srv)
	admin.do("POST", "/api/users", map[string]any{"login": "tess"}, http.StatusCreated, nil)

	const password = "typed-at-a-terminal"
	cmd := exec.Command(scriptBin, "--quiet", "--return", "--command", ferryBin+" user passwd tess", "/dev/null")
	cmd.Env = append(os.Environ(), "FERRY_SERVER="+srv.URL, "FERRY_TOKEN="+adminToken)
	outFile, err := os.CreateTemp(t.TempDir(), "passwd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	output := func() string {
		b, err := os.ReadFile(outFile.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error // set before done is closed
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// typeAfter waits for the n-th prompt, then types a line.
	typeAfter := func(prompt string, n int) {
		t.Helper()
		eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
			return strings.Count(output(), prompt) >= n, "waiting for prompt " + prompt + "; output so far: " + output()
		})
		if _, err := io.WriteString(stdin, password+"\r"); err != nil {
			t.Fatal(err)
		}
	}
	typeAfter("New password: ", 1)
	typeAfter("Repeat the new password: ", 1)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("ferry user passwd: %v; output: %s", waitErr, output())
		}
	case <-time.After(time.Minute):
		t.Fatalf("ferry user passwd did not end; output: %s", output())
	}
	_ = stdin.Close()
	if s := output(); strings.Contains(s, password) || !strings.Contains(s, "set tess's password") {
		t.Errorf("the terminal showed %q", s)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := admin.try("POST", "/api/sessions", map[string]any{"login": "tess", "password": password}, http.StatusCreated, &tok); err != nil {
		t.Errorf("signing in with the password typed: %v", err)
	}
}
