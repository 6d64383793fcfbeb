package testimage_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/testimage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs cmd in img with env and returns its combined output and exit code.
func run(t *testing.T, cli *client.Client, img string, env, entrypoint, cmd []string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Env: env, Entrypoint: entrypoint, Cmd: cmd}, nil, nil, nil, "")
	if err != nil {
		t.Fatalf("creating container: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting container: %v", err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int
	select {
	case res := <-waitC:
		code = int(res.StatusCode)
	case err := <-errC:
		t.Fatalf("waiting for container: %v", err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	return out.String(), code
}

func TestBusybox(t *testing.T) {
	cli := testimage.Client(t)
	ref, err := testimage.Busybox(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	if ref != testimage.BusyboxRef {
		t.Errorf("ref = %q, want %q", ref, testimage.BusyboxRef)
	}

	// The applets the brief promises, resolved through PATH, plus a
	// writable sticky /tmp and a passwd file that knows "nobody".
	script := `set -e
for a in sh echo base64 sleep cat env ls nc wget httpd true false mkdir touch id hostname printenv yes seq head wc; do
  command -v "$a" >/dev/null || { echo "missing $a"; exit 1; }
done
touch /tmp/x
stat -c %a /tmp
id -un 65534 2>/dev/null || id nobody
FOO='a b' printenv FOO
printenv | grep -q '^PATH='
! printenv NOPE
`
	out, code := run(t, cli, ref, nil, nil, []string{"/bin/sh", "-c", script})
	if code != 0 {
		t.Fatalf("exit code %d, output:\n%s", code, out)
	}
	for _, want := range []string{"1777\n", "nobody", "a b\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The default command is a shell.
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(img.Config.Cmd, " "); got != "/bin/sh" {
		t.Errorf("cmd = %q, want /bin/sh", got)
	}

	// A second call finds the image and does not import it again.
	if _, err := testimage.Busybox(t.Context(), cli); err != nil {
		t.Fatal(err)
	}
	again, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != img.ID {
		t.Errorf("image re-imported: id %s, then %s", img.ID, again.ID)
	}
}

func TestStaleImageIsRebuilt(t *testing.T) {
	cli := testimage.Client(t)
	ref, err := testimage.Busybox(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	// Put other content (plain busybox) under a tag of our own, so that
	// tests running in other processes never see it; GoBinary must notice
	// the label mismatch and import its image over it.
	const tag = "ferry-test/testimage-stale:latest"
	if err := cli.ImageTag(t.Context(), ref, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{})
	})
	if _, err := testimage.GoBinary(t.Context(), cli, tag, "plugin"); err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(t.Context(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(img.Config.Entrypoint, " "); got != "/bin/plugin" {
		t.Errorf("entrypoint = %q after rebuild, want /bin/plugin", got)
	}
}

func TestPlugin(t *testing.T) {
	cli := testimage.Client(t)
	ref, err := testimage.Plugin(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PLUGIN_ZED=last", "DRONE_BUILD_NUMBER=7", "OTHER=hidden", "PLUGIN_ALPHA=a b", "PLUGIN_EXIT_CODE=3"}
	out, code := run(t, cli, ref, env, nil, nil)
	if code != 3 {
		t.Errorf("exit code %d, want 3; output:\n%s", code, out)
	}
	want := "DRONE_BUILD_NUMBER=7\nPLUGIN_ALPHA=a b\nPLUGIN_EXIT_CODE=3\nPLUGIN_ZED=last\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}

	// Without PLUGIN_EXIT_CODE it succeeds.
	if out, code := run(t, cli, ref, []string{"PLUGIN_X=1"}, nil, nil); code != 0 || out != "PLUGIN_X=1\n" {
		t.Errorf("got exit %d, output %q; want 0, %q", code, out, "PLUGIN_X=1\n")
	}

	// The image has a shell too, for steps that give a plugin commands.
	out, code = run(t, cli, ref, nil, []string{"/bin/sh", "-c"}, []string{"echo shell ok; ls /bin/plugin"})
	if code != 0 || out != "shell ok\n/bin/plugin\n" {
		t.Errorf("shell: exit %d, output %q", code, out)
	}
}

// The node image runs `ferry node` standalone on a release of the webapp
// (a version file), supervising the app as nobody, and the app answers.
func TestNodeImageDeploysTheWebapp(t *testing.T) {
	cli := testimage.Client(t)
	ref, err := testimage.Node(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
ferry --version
mkdir -p /tmp/rel && echo v7 > /tmp/rel/version && tar -C /tmp/rel -czf /tmp/app.tar.gz version
sha256sum /tmp/app.tar.gz > /tmp/app.tar.gz.sha256
cat > /etc/ferry/node.yml <<'YAML'
root: /var/lib/ferry-node
user: nobody
services:
  web:
    watch: {url: /tmp/app.tar.gz, check_interval: 100ms}
    run: {mode: process, command: exec webapp}
    health: {type: http, url: "http://127.0.0.1:8080/health", interval: 50ms}
YAML
ferry node --check --config /etc/ferry/node.yml
ferry node --config /etc/ferry/node.yml 2>/tmp/node.log &
for i in $(seq 300); do
  if wget -qO- http://127.0.0.1:8080/ 2>/dev/null; then exit 0; fi
  sleep 0.1
done
cat /tmp/node.log
exit 1
`
	out, code := run(t, cli, ref, nil, []string{"/bin/sh", "-c"}, []string{script})
	if code != 0 || !strings.Contains(out, "ferry version") || !strings.Contains(out, "/etc/ferry/node.yml: ok") || !strings.HasSuffix(out, "v7\n") {
		t.Fatalf("exit code %d, output:\n%s", code, out)
	}
}

// TestReplacedImageIsRemoved checks that an image whose tag moves to a new
// import (its content changed) is removed rather than left as a <none>
// image on the Engine each time a test image changes.
func TestReplacedImageIsRemoved(t *testing.T) {
	cli := testimage.Client(t)
	const tag = "ferry-test/testimage-replaced:latest"
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{})
	})
	if _, err := testimage.GoBinary(t.Context(), cli, tag, "plugin"); err != nil {
		t.Fatal(err)
	}
	first, err := cli.ImageInspect(t.Context(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testimage.GoBinary(t.Context(), cli, tag, "webapp"); err != nil {
		t.Fatal(err)
	}
	second, err := cli.ImageInspect(t.Context(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Fatalf("the webapp image has the plugin image's id %s", first.ID)
	}
	if _, err := cli.ImageInspect(t.Context(), first.ID); !cerrdefs.IsNotFound(err) {
		_, _ = cli.ImageRemove(context.Background(), first.ID, image.RemoveOptions{})
		t.Errorf("the replaced image %s is still there (%v)", first.ID, err)
	}
}
