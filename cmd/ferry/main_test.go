package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestUsageErrors runs ferry's real command tree with bad command lines:
// each gets exit code 2 and exactly one line on stderr naming the problem
// and, when there is one, the closest command or flag; no help page.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `ferry: unknown command "frobnicate"; run ferry --help for the list`},
		{[]string{"exce"}, `ferry: unknown command "exce"; did you mean "exec"?`},
		{[]string{"help", "biuld"}, `ferry: unknown command "biuld"; did you mean "build"?`},
		{[]string{"exec", "--nosuchflag"}, "ferry exec: unknown flag --nosuchflag; run ferry exec --help for the flags"},
		{[]string{"exec", "--jsn"}, "ferry exec: unknown flag --jsn; did you mean --json?"},
		{[]string{"exec", "--timeout", "soon"}, `ferry exec: invalid value "soon" for flag --timeout: `},
		{[]string{"repo", "ad", "x"}, `ferry repo: unknown command "ad"; did you mean "add"?`},
		{[]string{"build", "cancle"}, `ferry build: unknown command "cancle"; did you mean "cancel"?`},
		{[]string{"exec", "--event", "pushh"}, `ferry exec: --event: unknown event "pushh"; did you mean "push"? valid events are: push, pull_request, tag,`},
		{[]string{"up", "--onc"}, "ferry up: unknown flag --onc; did you mean --once?"},
		{[]string{"server", "admin-token", "--data-dri", "x"}, "ferry server admin-token: unknown flag --data-dri; did you mean --data-dir?"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			app := newApp()
			app.Writer, app.ErrWriter = &out, &errb
			code := runApp(context.Background(), app, append([]string{"ferry"}, c.args...), &errb)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if out.Len() != 0 {
				t.Errorf("printed on stdout:\n%s", out.String())
			}
			lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) || !strings.HasSuffix(errb.String(), "\n") {
				t.Errorf("stderr:\n%q\nwant one line starting %q", errb.String(), c.want)
			}
		})
	}
}

// TestUpOutput runs `ferry up --once` through the real command tree, with
// stdout and stderr in one stream as a terminal shows them: the server's
// INFO lines ("build finished") do not interleave with the build's log by
// default, and the admin token comes last.
func TestUpOutput(t *testing.T) {
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, ".ferry.yml"), []byte("kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands: [echo one, echo two]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	var all bytes.Buffer
	w := &lockedWriter{w: &all}
	app := newApp()
	app.Writer, app.ErrWriter = w, w
	data := t.TempDir()
	code := runApp(context.Background(), app, []string{"ferry", "up", "--once", "--repo", repo, "--data-dir", data, "--addr", "127.0.0.1:0"}, w)
	out := all.String()
	if code != 0 || !strings.Contains(out, "[ci/a] two") || !strings.Contains(out, "build #1: success") {
		t.Fatalf("exit code %d, output:\n%s", code, out)
	}
	if strings.Contains(out, "build finished") || strings.Contains(out, "level=INFO") {
		t.Errorf("server INFO lines among the build's output:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(strings.Join(lines[len(lines)-3:], "\n"), "admin API token (shown once; keep it): ferry_") {
		t.Errorf("the admin token is not at the end:\n%s", out)
	}

	// The command printed next to the token makes another one.
	var tok, errb bytes.Buffer
	app = newApp()
	app.Writer, app.ErrWriter = &tok, &errb
	if code := runApp(context.Background(), app, []string{"ferry", "server", "admin-token", "--data-dir", data}, &errb); code != 0 ||
		!strings.HasPrefix(tok.String(), "ferry_") || strings.Count(tok.String(), "\n") != 1 {
		t.Fatalf("server admin-token: exit code %d, stdout %q, stderr %q", code, tok.String(), errb.String())
	}
	app = newApp()
	app.Writer, app.ErrWriter = &tok, &errb
	if code := runApp(context.Background(), app, []string{"ferry", "server", "admin-token", "--data-dir", t.TempDir()}, &errb); code != 2 ||
		!strings.Contains(errb.String(), "no ferry database in ") {
		t.Fatalf("server admin-token on an empty dir: exit code %d, stderr %q", code, errb.String())
	}
}

// lockedWriter serialises writes from the server's goroutines and up's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestShellCompletion: `ferry completion SHELL` prints a completion script
// naming ferry's commands, for each shell urfave/cli supports.
func TestShellCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &errb
		if code := runApp(context.Background(), app, []string{"ferry", "completion", shell}, &errb); code != 0 {
			t.Fatalf("completion %s: exit %d: %s", shell, code, errb.String())
		}
		if !strings.Contains(out.String(), "ferry") || out.Len() < 200 {
			t.Errorf("completion %s printed %d bytes: %.200q", shell, out.Len(), out.String())
		}
	}
	// The hidden completion flag lists the subcommands for the shell.
	var out, errb bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errb
	runApp(context.Background(), app, []string{"ferry", "build", "--generate-shell-completion"}, &errb)
	for _, sub := range []string{"ls", "logs", "cancel", "restart"} {
		if !strings.Contains(out.String(), sub) {
			t.Errorf("completing `ferry build` lacks %q:\n%s", sub, out.String())
		}
	}
}
