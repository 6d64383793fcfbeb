package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/docker"
	"github.com/ferryci/ferry/internal/testimage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a backend on the real Engine plus the busybox test image.
type fixture struct {
	t       testing.TB
	cli     *client.Client
	b       backend.Backend
	busybox string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	cli := testimage.Client(t)
	ref, err := testimage.Busybox(t.Context(), cli)
	if err != nil {
		t.Fatalf("building busybox image: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	return &fixture{t: t, cli: cli, b: docker.New(cli, docker.Options{Logger: logger}), busybox: ref}
}

// spec returns a spec with a unique ID and the default Drone workspace.
func (f *fixture) spec() *backend.Spec {
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &backend.Spec{
		ID:        "test-" + hex.EncodeToString(id[:]),
		Name:      f.t.Name(),
		Labels:    map[string]string{"ferry.test": "docker"},
		Workspace: backend.Workspace{Base: "/drone", Path: "src"},
	}
}

// setup runs Setup and arranges for Destroy at the end of the test, after
// which nothing labelled with the run may remain.
func (f *fixture) setup(spec *backend.Spec) {
	f.t.Helper()
	f.t.Cleanup(func() {
		if err := f.b.Destroy(context.Background(), spec); err != nil {
			f.t.Errorf("destroy: %v", err)
		}
		f.assertNoResources(spec.ID)
	})
	if err := f.b.Setup(f.t.Context(), spec); err != nil {
		f.t.Fatalf("setup: %v", err)
	}
}

// sh is a busybox step running commands.
func (f *fixture) sh(name string, commands ...string) *backend.Step {
	return &backend.Step{ID: name, Name: name, Image: f.busybox, Commands: commands}
}

// run runs step and returns its output.
func (f *fixture) run(ctx context.Context, spec *backend.Spec, step *backend.Step) (string, *backend.State, error) {
	var out syncBuffer
	state, err := f.b.Run(ctx, spec, step, &out)
	return out.String(), state, err
}

// mustRun runs step and fails the test unless it exits with code.
func (f *fixture) mustRun(spec *backend.Spec, step *backend.Step, code int) string {
	f.t.Helper()
	out, state, err := f.run(f.t.Context(), spec, step)
	if err != nil {
		f.t.Fatalf("step %s: %v\noutput:\n%s", step.Name, err, out)
	}
	if state.ExitCode != code || state.Killed || state.OOMKilled {
		f.t.Fatalf("step %s: state %+v, want exit code %d\noutput:\n%s", step.Name, *state, code, out)
	}
	return out
}

// resources lists what the Engine holds labelled with run ID.
func (f *fixture) resources(runID string) (containers []container.Summary, networks []network.Summary, volumes []*volume.Volume) {
	f.t.Helper()
	ctx := context.Background()
	args := filters.NewArgs(filters.Arg("label", backend.LabelRun+"="+runID))
	containers, err := f.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		f.t.Fatal(err)
	}
	networks, err = f.cli.NetworkList(ctx, network.ListOptions{Filters: args})
	if err != nil {
		f.t.Fatal(err)
	}
	vols, err := f.cli.VolumeList(ctx, volume.ListOptions{Filters: args})
	if err != nil {
		f.t.Fatal(err)
	}
	return containers, networks, vols.Volumes
}

func (f *fixture) assertNoResources(runID string) {
	f.t.Helper()
	c, n, v := f.resources(runID)
	if len(c)+len(n)+len(v) != 0 {
		f.t.Errorf("run %s left %d containers, %d networks, %d volumes", runID, len(c), len(n), len(v))
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a guard against hanging, not a requirement
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandsStopAtFirstFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	out := f.mustRun(spec, f.sh("fail", "echo one", "false", "echo two"), 1)
	if want := "+ echo one\none\n+ false\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	out = f.mustRun(spec, f.sh("exit", "echo 'it''s'", "exit 7", "echo unreachable"), 7)
	if want := "+ echo 'it''s'\nits\n+ exit 7\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestStepEnvironment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	step := f.sh("env", `echo "greeting=$GREETING"`, `echo "empty=[$EMPTY]"`, "pwd", "echo to-stderr >&2")
	step.Env = map[string]string{"GREETING": "hello world", "EMPTY": ""}
	out := f.mustRun(spec, step, 0)
	for _, want := range []string{"greeting=hello world\n", "empty=[]\n", "/drone/src\n", "to-stderr\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	step = f.sh("overrides", "id -u", "pwd", "grep db.example /etc/hosts", "df -k /dev/shm | tail -n 1")
	step.User = "nobody"
	step.WorkingDir = "/tmp"
	step.ExtraHosts = []string{"db.example:10.11.12.13"}
	step.ShmSize = 32 << 20
	out = f.mustRun(spec, step, 0)
	for _, want := range []string{"\n65534\n", "\n/tmp\n", "10.11.12.13\tdb.example", " 32768 "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestNetworkModeOverride(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	if out := f.mustRun(spec, f.sh("pipeline-net", "ls /sys/class/net"), 0); !strings.Contains(out, "eth0\n") {
		t.Errorf("step on the pipeline network has no eth0:\n%s", out)
	}
	step := f.sh("no-net", "ls /sys/class/net")
	step.NetworkMode = "none"
	if _, _, err := f.run(t.Context(), spec, step); err == nil || !strings.Contains(err.Error(), "needs a trusted pipeline") {
		t.Errorf("network_mode in an untrusted pipeline: error %v", err)
	}
	spec.Trusted = true
	if out := f.mustRun(spec, step, 0); out != "+ ls /sys/class/net\nlo\n" {
		t.Errorf("step with network mode none: %q", out)
	}
}

func TestLargeOutputIsComplete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	// About 600 KB, written as fast as the step can, ending right at exit.
	out := f.mustRun(spec, f.sh("seq", "seq 100000"), 0)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 100001 || lines[1] != "1" || lines[100000] != "100000" {
		t.Errorf("got %d lines, ending %q; want the script line and 1..100000", len(lines), lines[len(lines)-1])
	}
}

func TestEntrypointAndCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	step := &backend.Step{ID: "echo", Name: "echo", Image: f.busybox,
		Entrypoint: []string{"/bin/echo"}, Command: []string{"hello", "$NOT_EXPANDED"}}
	if out := f.mustRun(spec, step, 0); out != "hello $NOT_EXPANDED\n" {
		t.Errorf("output %q", out)
	}
	// The image's entrypoint with another command.
	step = &backend.Step{ID: "cmd", Name: "cmd", Image: f.busybox, Command: []string{"sh", "-c", "exit 4"}}
	f.mustRun(spec, step, 4)
}

func TestStepsThatCannotStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	cases := []struct {
		name string
		step *backend.Step
		want string
	}{
		{"bad-entrypoint", &backend.Step{Image: f.busybox, Entrypoint: []string{"/no/such/binary"}}, "starting container"},
		{"never-missing", &backend.Step{Image: "ferry-test/absent:latest", Pull: backend.PullNever}, `not present locally and the pull policy is "never"`},
		{"default-missing", &backend.Step{Image: "ferry-test/absent:latest"}, "image ferry-test/absent:latest could not be pulled: "},
		{"always-present", &backend.Step{Image: f.busybox, Pull: backend.PullAlways}, "image " + f.busybox + " could not be pulled: "},
		// A registry that refuses connections: its answer is named.
		{"registry-down", &backend.Step{Image: "127.0.0.1:1/absent:1"}, "image 127.0.0.1:1/absent:1 could not be pulled: "},
		{"untrusted-privileged", &backend.Step{Image: f.busybox, Privileged: true}, "privileged mode needs a trusted pipeline"},
		{"undeclared-volume", &backend.Step{Image: f.busybox, Mounts: []backend.Mount{{Name: "nope", Path: "/x"}}}, `volume "nope" is not declared`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.step.ID, c.step.Name = c.name, c.name
			out, state, err := f.run(t.Context(), spec, c.step)
			var exitErr *backend.ExitError
			if !errors.As(err, &exitErr) || exitErr.Step != c.name {
				t.Fatalf("got state %+v, error %v (%T), output %q; want a *backend.ExitError for step %s", state, err, err, out, c.name)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
			var imgErr *backend.ImageError
			if strings.Contains(c.want, "could not be pulled") && (!errors.As(err, &imgErr) || imgErr.Image != c.step.Image) {
				t.Errorf("error %v (%T) is not a *backend.ImageError for %s", err, err, c.step.Image)
			}
			if c.name == "registry-down" && !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not give the registry's answer (connection refused)", err)
			}
		})
	}
	if c, _, _ := f.resources(spec.ID); len(c) != 0 {
		t.Errorf("%d containers left behind by failed steps", len(c))
	}

	// "if-not-exists" with a present image starts without pulling (a pull
	// would fail: there is no registry for this image).
	step := f.sh("present", "true")
	step.Pull = backend.PullIfNotExists
	f.mustRun(spec, step, 0)
}

func TestServiceReachableByName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	web := f.sh("web", "mkdir -p /www", "echo served-by-web > /www/index.html", "httpd -f -p 80 -h /www")
	web.Service, web.Detach = true, true
	spec.Services = []*backend.Step{web}
	f.setup(spec)

	type result struct {
		state *backend.State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		_, state, err := f.run(context.Background(), spec, web)
		done <- result{state, err}
	}()

	step := f.sh("client", "for i in $(seq 100); do wget -q -O - http://web/ && exit 0; sleep 0.1; done; exit 1")
	if out := f.mustRun(spec, step, 0); !strings.Contains(out, "served-by-web") {
		t.Errorf("output lacks the page:\n%s", out)
	}

	if err := f.b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || !res.state.Killed {
			t.Errorf("service ended with state %+v, error %v; want killed", res.state, res.err)
		}
	case <-time.After(2 * time.Minute): // a guard against hanging, not a requirement
		t.Fatal("service still running 2 minutes after Destroy")
	}
}

func TestPluginImage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	plugin, err := testimage.Plugin(t.Context(), f.cli)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.spec()
	f.setup(spec)

	step := &backend.Step{ID: "plugin", Name: "plugin", Image: plugin, Env: map[string]string{
		"PLUGIN_TARGET": "prod", "PLUGIN_TAGS": "a,b", "DRONE_BUILD_NUMBER": "42", "HOME": "/root",
	}}
	if out, want := f.mustRun(spec, step, 0), "DRONE_BUILD_NUMBER=42\nPLUGIN_TAGS=a,b\nPLUGIN_TARGET=prod\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	step.Env["PLUGIN_EXIT_CODE"] = "5"
	f.mustRun(spec, step, 5)
}

func TestWorkspaceFromHostDir(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a.txt"), "alpha\n", 0o644)
	mustWrite(t, filepath.Join(dir, "sub", "b.txt"), "beta\n", 0o600)
	mustWrite(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\necho ran\n", 0o755)
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	// A ferry data directory (secret key and database) is never copied; a
	// file that is only named secret.key is.
	mustWrite(t, filepath.Join(dir, "ferry-data", "secret.key"), "0123\n", 0o600)
	mustWrite(t, filepath.Join(dir, "ferry-data", "ferry.db"), "db\n", 0o600)
	mustWrite(t, filepath.Join(dir, "keys", "secret.key"), "public\n", 0o644)

	spec := f.spec()
	spec.Workspace.HostDir = dir
	spec.Workspace.Path = "src/github.com/acme/app"
	spec.Steps = []*backend.Step{f.sh("first"), f.sh("second")}
	f.setup(spec)

	out := f.mustRun(spec, f.sh("first", "pwd", "cat a.txt sub/b.txt", "./run.sh", "readlink link",
		"stat -c '%a %u' run.sh sub/b.txt", "echo gamma > c.txt", "test ! -e ferry-data", "cat keys/secret.key"), 0)
	for _, want := range []string{"/drone/src/github.com/acme/app\n", "alpha\nbeta\n", "ran\n", "a.txt\n", "755 0\n600 0\n", "public\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out := f.mustRun(spec, f.sh("second", "cat c.txt"), 0); !strings.Contains(out, "gamma\n") {
		t.Errorf("second step does not see the first's file:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.txt")); !os.IsNotExist(err) {
		t.Errorf("the host directory was written to: %v", err)
	}
}

func mustWrite(t *testing.T, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil { // beyond the umask
		t.Fatal(err)
	}
}

func TestTempVolumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	spec.Volumes = []*backend.Volume{{Name: "cache", Temp: true}, {Name: "scratch space", Temp: true, Medium: "memory"}}
	f.setup(spec)

	write := f.sh("write", "echo kept > /cache/f")
	write.Mounts = []backend.Mount{{Name: "cache", Path: "/cache"}}
	f.mustRun(spec, write, 0)
	read := f.sh("read", "cat /data/f")
	read.Mounts = []backend.Mount{{Name: "cache", Path: "/data"}}
	if out := f.mustRun(spec, read, 0); !strings.Contains(out, "kept\n") {
		t.Errorf("the second step does not see the volume's file:\n%s", out)
	}

	mem := f.sh("mem", "grep ' /mem ' /proc/mounts")
	mem.Mounts = []backend.Mount{{Name: "scratch space", Path: "/mem"}}
	if out := f.mustRun(spec, mem, 0); !strings.Contains(out, "tmpfs /mem tmpfs") {
		t.Errorf("memory volume is not a tmpfs:\n%s", out)
	}
}

func TestTrustedOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hostDir := t.TempDir()
	spec := f.spec()
	spec.Volumes = []*backend.Volume{{Name: "host", HostPath: hostDir}, {Name: "zero", HostPath: "/dev/zero"}, {Name: "host-temp", Temp: true}}
	f.setup(spec)

	caps := "grep CapEff /proc/self/status"
	plain := f.mustRun(spec, f.sh("plain", caps), 0)

	priv := f.sh("privileged", caps)
	priv.Privileged = true
	if _, _, err := f.run(t.Context(), spec, priv); err == nil || !strings.Contains(err.Error(), "trusted") {
		t.Errorf("privileged step in an untrusted pipeline: error %v", err)
	}
	mount := f.sh("host-volume", "echo from-step > /host/file")
	mount.Mounts = []backend.Mount{{Name: "host", Path: "/host"}}
	if _, _, err := f.run(t.Context(), spec, mount); err == nil || !strings.Contains(err.Error(), "trusted") {
		t.Errorf("host volume in an untrusted pipeline: error %v", err)
	}

	dev := f.sh("device", "head -c 4 /dev/hostzero | od -An -tx1")
	dev.Devices = []backend.Mount{{Name: "zero", Path: "/dev/hostzero"}}
	if _, _, err := f.run(t.Context(), spec, dev); err == nil || !strings.Contains(err.Error(), "trusted") {
		t.Errorf("device in an untrusted pipeline: error %v", err)
	}

	spec.Trusted = true
	// The device is the host volume's host path, not its name.
	if out := f.mustRun(spec, dev, 0); !strings.Contains(out, "00 00 00 00") {
		t.Errorf("device /dev/zero mapped from host volume \"zero\": output %q", out)
	}
	notHost := f.sh("device-temp", "true")
	notHost.Devices = []backend.Mount{{Name: "host-temp", Path: "/dev/x"}}
	if _, _, err := f.run(t.Context(), spec, notHost); err == nil || !strings.Contains(err.Error(), "not name a host volume") {
		t.Errorf("device naming a temp volume: error %v", err)
	}
	out, state, err := f.run(t.Context(), spec, priv)
	switch {
	case err != nil && strings.Contains(err.Error(), "unable to apply caps"):
		// An Engine that itself runs with reduced capabilities (nested in
		// a container, as on some CI machines) cannot grant them all; the
		// failure still shows that ferry asked for privileged mode, since
		// the unprivileged step ran.
		t.Logf("engine cannot run privileged containers: %v", err)
	case err != nil:
		t.Errorf("privileged step in a trusted pipeline: %v", err)
	case state.ExitCode != 0 || out == plain:
		t.Errorf("privileged step: state %+v, output %q; unprivileged output %q", *state, out, plain)
	}
	f.mustRun(spec, mount, 0)
	if data, err := os.ReadFile(filepath.Join(hostDir, "file")); err != nil || string(data) != "from-step\n" {
		t.Errorf("host file: %q, %v", data, err)
	}
}

func TestDetachedStepRunsUntilDestroy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)

	bg := f.sh("background", "sleep 60")
	bg.Detach = true
	type result struct {
		state *backend.State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		_, state, err := f.run(context.Background(), spec, bg)
		done <- result{state, err}
	}()

	running := func() []container.Summary {
		args := filters.NewArgs(
			filters.Arg("label", backend.LabelRun+"="+spec.ID),
			filters.Arg("label", backend.LabelStep+"=background"),
			filters.Arg("status", "running"))
		list, err := f.cli.ContainerList(t.Context(), container.ListOptions{Filters: args})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	waitFor(t, "the detached step to start", func() bool { return len(running()) == 1 })

	f.mustRun(spec, f.sh("next", "true"), 0)
	list := running()
	if len(list) != 1 {
		t.Fatalf("detached step not running after the next step: %d containers", len(list))
	}
	host, _ := os.Hostname()
	for k, want := range map[string]string{
		backend.LabelManaged: "true",
		backend.LabelPID:     fmt.Sprint(os.Getpid()),
		backend.LabelHost:    host,
		"ferry.test":         "docker",
	} {
		if got := list[0].Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	if err := f.b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || !res.state.Killed {
			t.Errorf("detached step ended with state %+v, error %v; want killed", res.state, res.err)
		}
	case <-time.After(2 * time.Minute): // a guard against hanging, not a requirement
		t.Fatal("detached step still running 2 minutes after Destroy")
	}
	f.assertNoResources(spec.ID)
}

func TestCancelMidStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	spec.Volumes = []*backend.Volume{{Name: "tmp", Temp: true}}
	f.setup(spec)

	// The step ignores SIGTERM, so only a real kill stops it in time.
	step := f.sh("stubborn", "trap '' TERM INT", "echo started", "sleep 3600")
	step.Mounts = []backend.Mount{{Name: "tmp", Path: "/scratch"}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	type result struct {
		state *backend.State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		state, err := f.b.Run(ctx, spec, step, out)
		done <- result{state, err}
	}()
	waitFor(t, "the step to start", func() bool { return strings.Contains(out.String(), "started\n") })

	cancelled := time.Now()
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute): // a guard: the step would run for an hour
		t.Fatal("Run did not return within 2 minutes of cancellation")
	}
	t.Logf("Run returned %v after cancellation", time.Since(cancelled).Round(time.Millisecond))
	if res.err != nil || !res.state.Killed {
		t.Fatalf("state %+v, error %v; want killed", res.state, res.err)
	}
	if c, _, _ := f.resources(spec.ID); len(c) != 0 {
		t.Errorf("%d containers left after the cancelled step returned", len(c))
	}

	if err := f.b.Destroy(ctx, spec); err != nil { // ctx is cancelled
		t.Fatalf("destroy with a cancelled context: %v", err)
	}
	t.Logf("cancel and destroy took %v", time.Since(cancelled).Round(time.Millisecond))
	f.assertNoResources(spec.ID)
}

func TestCancelBeforeStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	f.setup(spec)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, state, err := f.run(ctx, spec, f.sh("never", "echo ran"))
	if err != nil || !state.Killed {
		t.Fatalf("state %+v, error %v; want killed", state, err)
	}
	if c, _, _ := f.resources(spec.ID); len(c) != 0 {
		t.Errorf("%d containers left", len(c))
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	info, err := f.cli.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !info.MemoryLimit {
		t.Skip("the engine does not support memory limits")
	}
	spec := f.spec()
	f.setup(spec)
	// dd fills a 64 MiB buffer: far beyond the limit.
	step := f.sh("hog", "dd if=/dev/zero of=/dev/null bs=64M count=1")
	step.MemLimit = 16 << 20
	_, state, err := f.run(t.Context(), spec, step)
	if err != nil {
		t.Fatal(err)
	}
	if !state.OOMKilled || state.ExitCode == 0 {
		t.Errorf("state %+v, want OOM killed", *state)
	}
}

func TestDestroyAfterFailedSetup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spec := f.spec()
	spec.Workspace.HostDir = filepath.Join(t.TempDir(), "missing")
	spec.Steps = []*backend.Step{f.sh("s", "true")}
	if err := f.b.Setup(t.Context(), spec); err == nil {
		t.Fatal("setup succeeded with a missing workspace directory")
	}
	if _, n, v := f.resources(spec.ID); len(n) == 0 || len(v) == 0 {
		t.Fatalf("setup failed before creating resources (%d networks, %d volumes); the test proves nothing", len(n), len(v))
	}
	if err := f.b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	f.assertNoResources(spec.ID)
	// A second Destroy finds nothing to do.
	if err := f.b.Destroy(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	// Run after Destroy is refused.
	if _, _, err := f.run(t.Context(), spec, f.sh("late", "true")); err == nil {
		t.Error("Run after Destroy succeeded")
	}
}
