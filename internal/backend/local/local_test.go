package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/logs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// output is a concurrency-safe io.Writer that tests can wait on.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output matches re and returns the first
// submatch.
func (o *output) waitFor(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(o.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("output never matched %q; output:\n%s", re, o.String())
	return ""
}

// setup returns a backend with a set-up spec that is destroyed when the
// test ends.
func setup(t *testing.T, opts Options, spec *backend.Spec) backend.Backend {
	t.Helper()
	if spec.ID == "" {
		spec.ID = strings.ReplaceAll(t.Name(), "/", "-")
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	b := New(opts)
	if err := b.Setup(context.Background(), spec); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Destroy(context.Background(), spec); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return b
}

// runStep runs one step and fails the test if it cannot start.
func runStep(t *testing.T, b backend.Backend, spec *backend.Spec, step *backend.Step) (*backend.State, string) {
	t.Helper()
	var out output
	state, err := b.Run(context.Background(), spec, step, &out)
	if err != nil {
		t.Fatalf("Run: %v; output:\n%s", err, out.String())
	}
	return state, out.String()
}

// alive reports whether pid is a live process. A zombie counts as dead:
// it has exited and only waits for its parent, which for an orphan is
// PID 1, to collect it.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// waitDead waits briefly for pid to die, since a SIGKILLed process takes a
// moment to go.
// patience bounds every wait in these tests. It guards against hanging and
// is no requirement: what a test waits for would otherwise take an hour
// (the steps sleep that long), so a step that returns within patience
// returned because it was made to, however busy the machine is.
const patience = 2 * time.Minute

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExitCodes(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	tests := []struct {
		name     string
		commands []string
		code     int
		want     []string
		notWant  []string
	}{
		{"success", []string{"echo hello"}, 0, []string{"+ echo hello\nhello\n"}, nil},
		{"exit code", []string{"exit 3"}, 3, []string{"+ exit 3\n"}, nil},
		{"stops at first failure", []string{"echo one", "false", "echo two"}, 1, []string{"one\n", "+ false\n"}, []string{"two"}},
		{"set -e inside a command list", []string{"false; echo after"}, 1, []string{"+ false; echo after\n"}, []string{"\nafter\n"}},
		{"killed by a signal", []string{"kill -USR1 $$"}, 128 + int(syscall.SIGUSR1), nil, nil},
		{"quoting", []string{`printf '%s\n' "it's \"quoted\""`}, 0, []string{"it's \"quoted\"\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, out := runStep(t, b, spec, &backend.Step{Name: tt.name, Commands: tt.commands})
			if state.ExitCode != tt.code || state.Killed {
				t.Errorf("state %+v, want exit code %d, not killed; output:\n%s", state, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestOutputOrder(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	_, out := runStep(t, b, spec, &backend.Step{Name: "order", Commands: []string{"echo 1; echo 2 >&2; echo 3; echo 4 >&2"}})
	if want := "1\n2\n3\n4\n"; !strings.HasSuffix(out, want) {
		t.Fatalf("output %q, want stdout and stderr in order, ending in %q", out, want)
	}
}

func TestCleanEnvironment(t *testing.T) {
	t.Setenv("FERRY_LEAK_TEST", "leaked")
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	_, out := runStep(t, b, spec, &backend.Step{
		Name:     "env",
		Commands: []string{"env"},
		Env:      map[string]string{"FOO": "bar baz", "DRONE": "true"},
	})
	vars := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "+ ") {
			vars[k] = v
		}
	}
	if _, ok := vars["FERRY_LEAK_TEST"]; ok {
		t.Errorf("FERRY_LEAK_TEST leaked from ferry's environment:\n%s", out)
	}
	if vars["FOO"] != "bar baz" || vars["DRONE"] != "true" {
		t.Errorf("step variables missing:\n%s", out)
	}
	if vars["PATH"] != os.Getenv("PATH") {
		t.Errorf("PATH = %q, want ferry's %q", vars["PATH"], os.Getenv("PATH"))
	}
	if vars["HOME"] != os.Getenv("HOME") {
		t.Errorf("HOME = %q, want ferry's %q", vars["HOME"], os.Getenv("HOME"))
	}
	// Only what the shell itself sets may come on top.
	for k := range vars {
		switch k {
		case "FOO", "DRONE", "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "_":
		default:
			t.Errorf("unexpected variable %s in the step's environment", k)
		}
	}

	// A step's own PATH and HOME win, and PATH is used to find the
	// entrypoint.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "ferry-test-tool"), []byte("#!/bin/sh\necho tool ran, HOME=$HOME\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, out = runStep(t, b, spec, &backend.Step{
		Name:       "own-path",
		Entrypoint: []string{"ferry-test-tool"},
		Env:        map[string]string{"PATH": bin + ":/usr/bin:/bin", "HOME": "/nonexistent"},
	})
	if out != "tool ran, HOME=/nonexistent\n" {
		t.Errorf("output %q, want the tool found on the step's PATH and the step's HOME", out)
	}
}

func TestWorkingDirectory(t *testing.T) {
	host := t.TempDir()
	if err := os.Mkdir(filepath.Join(host, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	spec := &backend.Spec{Workspace: backend.Workspace{HostDir: host}}
	b := setup(t, Options{}, spec)
	for _, tt := range []struct{ dir, want string }{
		{"", host},
		{"sub", filepath.Join(host, "sub")},
		{other, other},
	} {
		_, out := runStep(t, b, spec, &backend.Step{Name: "pwd", Commands: []string{"pwd -P"}, WorkingDir: tt.dir})
		if got := strings.TrimPrefix(out, "+ pwd -P\n"); got != tt.want+"\n" {
			t.Errorf("WorkingDir %q: ran in %q, want %q", tt.dir, got, tt.want)
		}
	}
	var out output
	_, err := b.Run(context.Background(), spec, &backend.Step{Name: "missing", Commands: []string{"true"}, WorkingDir: "nope"}, &out)
	var exitErr *backend.ExitError
	if !errors.As(err, &exitErr) || exitErr.Step != "missing" {
		t.Errorf("missing working directory: error %v, want a backend.ExitError for the step", err)
	}
	if err := b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(host, "sub")); err != nil {
		t.Errorf("Destroy touched the host workspace: %v", err)
	}
}

func TestTempWorkspace(t *testing.T) {
	tmp := t.TempDir()
	spec := &backend.Spec{ID: "temp-ws", Workspace: backend.Workspace{Path: "src/app"}}
	b := New(Options{TempDir: tmp})
	if err := b.Setup(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	_, out := runStep(t, b, spec, &backend.Step{Name: "write", Commands: []string{"echo data > file", "mkdir -p ro/sub", "chmod a-w ro/sub ro", "pwd -P"}})
	ws := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.HasPrefix(ws, tmp+"/") || !strings.HasSuffix(ws, "/src/app") {
		t.Fatalf("workspace %q, want a directory ending in src/app under %s", ws, tmp)
	}
	// Steps share the workspace.
	_, out = runStep(t, b, spec, &backend.Step{Name: "read", Commands: []string{"cat file"}})
	if !strings.HasSuffix(out, "data\n") {
		t.Fatalf("second step did not see the first step's file: %q", out)
	}
	if err := b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("Destroy left %d entries in the temp dir", len(entries))
	}
	if _, err := b.Run(context.Background(), spec, &backend.Step{Name: "late", Commands: []string{"true"}}, &output{}); err == nil {
		t.Fatal("Run after Destroy succeeded")
	}
}

func TestEntrypoint(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	state, out := runStep(t, b, spec, &backend.Step{
		Name:       "argv",
		Entrypoint: []string{"/bin/sh", "-c"},
		Command:    []string{`echo "$1 $2"; exit 4`, "argv0", "one", "two words"},
	})
	if out != "one two words\n" || state.ExitCode != 4 {
		t.Fatalf("output %q, exit %d; want the arguments passed as is and exit 4", out, state.ExitCode)
	}
	for name, step := range map[string]*backend.Step{
		"not found":   {Name: "nf", Entrypoint: []string{"ferry-no-such-tool"}},
		"not a file":  {Name: "dir", Entrypoint: []string{"/tmp"}},
		"nothing":     {Name: "plugin", Image: "plugins/slack"},
		"bad env var": {Name: "env", Commands: []string{"true"}, Env: map[string]string{"A=B": "c"}},
	} {
		_, err := b.Run(context.Background(), spec, step, &output{})
		var exitErr *backend.ExitError
		if !errors.As(err, &exitErr) {
			t.Errorf("%s: error %v, want a backend.ExitError", name, err)
		}
	}
}

func TestLongScript(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	var cmds []string
	for i := range 3000 {
		cmds = append(cmds, fmt.Sprintf(": %0100d", i))
	}
	cmds = append(cmds, "echo done")
	if len(backend.Script(cmds)) <= maxInlineScript {
		t.Fatal("script is not long enough to test the script file")
	}
	state, out := runStep(t, b, spec, &backend.Step{Name: "long", Commands: cmds})
	if state.ExitCode != 0 || !strings.HasSuffix(out, "\ndone\n") {
		t.Fatalf("exit %d, output ends %q", state.ExitCode, out[max(len(out)-100, 0):])
	}
}

func TestSetupErrors(t *testing.T) {
	b := New(Options{TempDir: t.TempDir()})
	ctx := context.Background()
	if _, err := b.Run(ctx, &backend.Spec{ID: "unknown"}, &backend.Step{Name: "s", Commands: []string{"true"}}, &output{}); err == nil {
		t.Error("Run on a spec that was not set up succeeded")
	}
	spec := &backend.Spec{ID: "twice"}
	if err := b.Setup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(ctx, spec); err == nil {
		t.Error("second Setup of the same spec succeeded")
	}
	if err := b.Destroy(ctx, spec); err != nil {
		t.Fatal(err)
	}
	missing := &backend.Spec{ID: "missing-host-dir", Workspace: backend.Workspace{HostDir: filepath.Join(t.TempDir(), "nope")}}
	if err := b.Setup(ctx, missing); err == nil {
		t.Error("Setup with a missing host directory succeeded")
	}
	if err := b.Destroy(ctx, missing); err != nil {
		t.Errorf("Destroy after a failed Setup: %v", err)
	}
	if err := b.Destroy(ctx, &backend.Spec{ID: "never"}); err != nil {
		t.Errorf("Destroy of an unknown spec: %v", err)
	}
}

// TestCancelKillsProcessGroup cancels a step whose shell and background
// child both ignore SIGTERM, and checks that Run returns promptly, reports
// the step killed, and that the child is dead.
func TestCancelKillsProcessGroup(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec) // the default grace period
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out output
	type result struct {
		state *backend.State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		state, err := b.Run(ctx, spec, &backend.Step{Name: "stubborn", Commands: []string{
			"trap '' TERM",
			"sleep 3600 &",
			"echo child=$!",
			"sleep 3600",
		}}, &out)
		done <- result{state, err}
	}()
	pid, _ := strconv.Atoi(out.waitFor(t, `child=(\d+)\n`))
	if !alive(pid) {
		t.Fatalf("background child %d is not running before the cancel", pid)
	}
	start := time.Now()
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(patience):
		t.Fatalf("Run did not return within %s of the cancel", patience)
	}
	elapsed := time.Since(start)
	if res.err != nil || !res.state.Killed {
		t.Fatalf("Run = %+v, %v; want a killed state", res.state, res.err)
	}
	if res.state.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want %d (SIGKILL after SIGTERM was ignored)", res.state.ExitCode, 128+int(syscall.SIGKILL))
	}
	if elapsed < DefaultGrace/2 {
		t.Errorf("returned after %v: the group got no grace period", elapsed)
	}
	waitDead(t, pid)
}

// TestCancelTerminates checks that a step that honours SIGTERM stops at
// once, without waiting for the grace period.
func TestCancelTerminates(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{Grace: time.Hour}, spec)
	ctx, cancel := context.WithCancel(context.Background())
	var out output
	go func() {
		out.waitFor(t, "started")
		cancel()
	}()
	start := time.Now()
	state, err := b.Run(ctx, spec, &backend.Step{Name: "polite", Commands: []string{"echo started", "sleep 3600"}}, &out)
	if err != nil || !state.Killed || state.ExitCode != 128+int(syscall.SIGTERM) {
		t.Fatalf("Run = %+v, %v; want killed by SIGTERM", state, err)
	}
	if d := time.Since(start); d > patience {
		t.Fatalf("took %v to stop a step that exits on SIGTERM: it waited for the grace period", d)
	}
}

// TestBackgroundChildren checks that a step that leaves a process running
// in the background ends when its shell does, and that the process dies.
func TestBackgroundChildren(t *testing.T) {
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	start := time.Now()
	state, out := runStep(t, b, spec, &backend.Step{Name: "bg", Commands: []string{
		"sleep 3600 &",
		"echo child=$!",
		"(sleep 3600; echo never) &",
		"echo done",
	}})
	if d := time.Since(start); d > patience {
		t.Fatalf("Run took %v with background children holding the output", d)
	}
	if state.ExitCode != 0 || state.Killed || !strings.HasSuffix(out, "done\n") {
		t.Fatalf("state %+v, output %q", state, out)
	}
	pid, _ := strconv.Atoi(regexp.MustCompile(`child=(\d+)`).FindStringSubmatch(out)[1])
	waitDead(t, pid)
}

// slowWriter is an output whose consumer takes its time, as a runtime
// shipping logs over a slow network may.
type slowWriter struct{ output }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return w.output.Write(p)
}

// TestEscapedProcess checks that a process that leaves the step's process
// group cannot keep Run from returning by holding the output pipe, and that
// all output written before the step ended is kept even when the consumer
// is slow.
func TestEscapedProcess(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid is not installed")
	}
	spec := &backend.Spec{}
	b := setup(t, Options{}, spec)
	start := time.Now()
	var out slowWriter
	state, err := b.Run(context.Background(), spec, &backend.Step{Name: "escape", Commands: []string{
		`setsid sh -c 'echo escaped=$$; exec sleep 3600' &`,
		"sleep 0.1",
		"seq 1 20000",
	}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > patience {
		t.Fatalf("Run took %v with an escaped process holding the output", d)
	}
	got := out.String()
	m := regexp.MustCompile(`escaped=(\d+)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no pid in output %q", got)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatal("the escaped process is dead; the test did not test an escape")
	}
	if state.ExitCode != 0 || !strings.HasSuffix(got, "\n19999\n20000\n") {
		t.Fatalf("state %+v, output ends %q", state, got[max(len(got)-40, 0):])
	}
}

// TestDestroyStopsDetachedSteps runs steps in the background, as the
// runtime does for detached steps and services, and checks that Destroy
// stops them.
func TestDestroyStopsDetachedSteps(t *testing.T) {
	tmp := t.TempDir()
	spec := &backend.Spec{ID: "detached"}
	b := New(Options{TempDir: tmp, Grace: 200 * time.Millisecond})
	if err := b.Setup(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	const n = 3
	var outs [n]output
	states := make(chan *backend.State, n)
	for i := range n {
		go func() {
			state, err := b.Run(context.Background(), spec, &backend.Step{
				Name:     fmt.Sprintf("service-%d", i),
				Detach:   true,
				Commands: []string{"trap '' TERM", "sleep 3600 & echo pid=$!", "sleep 3600"},
			}, &outs[i])
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			states <- state
		}()
	}
	var pids []int
	for i := range outs {
		pid, _ := strconv.Atoi(outs[i].waitFor(t, `pid=(\d+)`))
		pids = append(pids, pid)
	}
	start := time.Now()
	if err := b.Destroy(context.Background(), spec); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if d := time.Since(start); d > patience {
		t.Fatalf("Destroy took %v", d)
	}
	for range n {
		select {
		case s := <-states:
			if s == nil || !s.Killed {
				t.Errorf("detached step state %+v, want killed", s)
			}
		case <-time.After(patience):
			t.Fatal("a detached step's Run did not return after Destroy")
		}
	}
	for _, pid := range pids {
		waitDead(t, pid)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("Destroy left %d entries in the temp dir", len(entries))
	}
}

// TestConcurrentSteps runs steps of two pipelines at once on one backend.
func TestConcurrentSteps(t *testing.T) {
	b := New(Options{TempDir: t.TempDir()})
	var wg sync.WaitGroup
	for p := range 2 {
		spec := &backend.Spec{ID: fmt.Sprintf("pipeline-%d", p)}
		if err := b.Setup(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		for s := range 4 {
			wg.Go(func() {
				var out output
				state, err := b.Run(context.Background(), spec, &backend.Step{
					Name:     fmt.Sprintf("step-%d", s),
					Commands: []string{fmt.Sprintf("echo %d-%d > f%d", p, s, s), fmt.Sprintf("cat f%d", s)},
				}, &out)
				if err != nil || state.ExitCode != 0 || !strings.HasSuffix(out.String(), fmt.Sprintf("\n%d-%d\n", p, s)) {
					t.Errorf("pipeline %d step %d: %+v, %v, %q", p, s, state, err, out.String())
				}
			})
		}
		defer func() {
			if err := b.Destroy(context.Background(), spec); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRunStep measures one step running "true" through the backend;
// compare it with BenchmarkForkExecRaw.
func BenchmarkRunStep(b *testing.B) {
	spec := &backend.Spec{ID: "bench"}
	be := New(Options{TempDir: b.TempDir()})
	if err := be.Setup(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = be.Destroy(context.Background(), spec) }()
	step := &backend.Step{Name: "true", Commands: []string{"true"}}
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		state, err := be.Run(context.Background(), spec, step, &out)
		if err != nil || state.ExitCode != 0 {
			b.Fatalf("Run = %+v, %v", state, err)
		}
	}
}

// BenchmarkForkExecRaw is the floor for BenchmarkRunStep: the same shell
// command started with os/exec and nothing else.
func BenchmarkForkExecRaw(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipeline measures a whole one-step pipeline: Setup, Run and
// Destroy.
func BenchmarkPipeline(b *testing.B) {
	be := New(Options{TempDir: b.TempDir()})
	step := &backend.Step{Name: "true", Commands: []string{"true"}}
	for i := 0; b.Loop(); i++ {
		spec := &backend.Spec{ID: fmt.Sprintf("bench-%d", i)}
		if err := be.Setup(context.Background(), spec); err != nil {
			b.Fatal(err)
		}
		if _, err := be.Run(context.Background(), spec, step, &bytes.Buffer{}); err != nil {
			b.Fatal(err)
		}
		if err := be.Destroy(context.Background(), spec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStepOutput runs a step printing 200,000 lines through a masking
// LineWriter, as the runtime does, and reports the cost per line beyond
// the same command run with its output thrown away.
func BenchmarkStepOutput(b *testing.B) {
	const lines = 200_000
	cmd := fmt.Sprintf("seq 1 %d", lines)
	raw := func() time.Duration {
		start := time.Now()
		if err := exec.Command("/bin/sh", "-c", cmd+" >/dev/null").Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	spec := &backend.Spec{ID: "bench-output"}
	be := New(Options{TempDir: b.TempDir()})
	if err := be.Setup(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = be.Destroy(context.Background(), spec) }()
	masker := logs.NewMasker([]string{"hunter2-secret", "AKIAIOSFODNN7EXAMPLE", "ghp_0123456789abcdefABCDEF"})
	step := &backend.Step{Name: "seq", Entrypoint: []string{"/bin/sh", "-c", cmd}}
	var ferry, base time.Duration
	for b.Loop() {
		base += raw()
		n := 0
		w := logs.NewLineWriter(masker, 0, func([]byte) { n++ })
		start := time.Now()
		state, err := be.Run(context.Background(), spec, step, w)
		_ = w.Close()
		ferry += time.Since(start)
		if err != nil || state.ExitCode != 0 || n != lines {
			b.Fatalf("Run = %+v, %v; %d lines", state, err, n)
		}
	}
	b.ReportMetric(float64((ferry-base).Nanoseconds())/float64(b.N*lines), "overhead-ns/line")
}

// TestRunAsUser runs steps as another user (Options.User): they get the
// workspace and a HOME of their own, no supplementary groups, and cannot
// read a file private to ferry's user.
func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("running steps as another user needs root (CI=true: this is a failure, not a skip)")
		}
		t.Skip("running steps as another user needs root (skipping; with CI=true this fails)")
	}
	u, err := LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(private, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The step must reach its workspace and run dir: open the test's
	// temporary directories for traversal, as an agent's work dir is.
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ws := filepath.Join(tmp, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(private, filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	spec := &backend.Spec{Workspace: backend.Workspace{HostDir: ws}}
	b := setup(t, Options{User: u, TempDir: tmp}, spec)

	state, out := runStep(t, b, spec, &backend.Step{Name: "who", Commands: []string{
		"id -u", "id -G", `test -d "$HOME" && test -w "$HOME" && echo home ok`, "touch sub/made-here", "cat " + private,
	}})
	for _, want := range []string{fmt.Sprintf("+ id -u\n%d\n+ id -G\n%d\n", u.UID, u.GID), "home ok\n", "Permission denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if state.ExitCode == 0 || strings.Contains(out, "s3cr3t") {
		t.Errorf("the step read ferry's private file: exit %d\n%s", state.ExitCode, out)
	}
	// The symbolic link was handed over, not the file it points to.
	if fi, err := os.Stat(private); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the private file changed owner: %v", err)
	}
	if err := b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(ws); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("Destroy did not take the workspace back: %v", err)
	}
}
