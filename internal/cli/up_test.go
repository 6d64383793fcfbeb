package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/server"
)

// TestUpBuildsLocalRepo runs `ferry up --once` in-process against a real git
// checkout: the embedded server and agent build it and print its log.
func TestUpBuildsLocalRepo(t *testing.T) {
	repo := t.TempDir()
	yml := "kind: pipeline\ntype: exec\nname: hello\nsteps:\n- name: greet\n  commands: [echo hello from $DRONE_REPO]\n- name: fail-if-asked\n  commands: [test ! -f fail]\n- name: who\n  commands: [id -u]\n"
	if err := os.WriteFile(filepath.Join(repo, ".ferry.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Up(ctx, cli.UpOptions{Server: cfg, Repos: []string{repo}, PollInterval: time.Hour, Once: true, Stdout: &out,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if code != 0 {
		t.Fatalf("exit code %d, output:\n%s", code, out.String())
	}
	want := "[hello/greet] hello from local/" + strings.ToLower(filepath.Base(repo))
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "build #1: success") {
		t.Fatalf("output lacks %q or the final status:\n%s", want, out.String())
	}
	// Run by root, ferry up runs host steps as nobody (docs/security.md).
	who := fmt.Sprintf("[hello/who] %d\n", os.Geteuid())
	if os.Geteuid() == 0 {
		who = "[hello/who] 65534\n"
	}
	if !strings.Contains(out.String(), who) {
		t.Errorf("output lacks %q:\n%s", who, out.String())
	}
}

// TestUpRefusesSharedDataDir checks that ferry up neither closes a shared
// directory given as its data dir nor runs steps inside its data dir.
func TestUpRefusesSharedDataDir(t *testing.T) {
	for _, dir := range []string{os.TempDir(), "/"} {
		before, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := server.DefaultConfig()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = dir
		code := cli.Up(context.Background(), cli.UpOptions{Server: cfg, Once: true, Stdout: io.Discard,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if code == 0 {
			t.Errorf("ferry up --data-dir %s: exit 0", dir)
		}
		if after, err := os.Stat(dir); err != nil || after.Mode() != before.Mode() {
			t.Errorf("ferry up --data-dir %s changed its mode from %s: %v %v", dir, before.Mode(), after.Mode(), err)
		}
	}
}
