// Package testimage builds the container images that ferry's tests run, and
// connects tests to the Docker Engine.
//
// The development and CI machines have a Docker Engine but no image registry,
// so nothing can be pulled. Every image is therefore imported from a root file
// system that this package writes as a tar stream: Debian's static busybox
// (package busybox-static, at /bin/busybox on the host) with a symlink for
// each of its applets, optionally plus a Go program compiled on the spot.
//
// Images carry the label LabelHash, a digest of their content; an image whose tag already exists with the same digest is reused, so
// only the first test run on a machine pays for the import.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/backend/docker/progress"
)

// BusyboxRef is the reference Busybox tags its image with.
const BusyboxRef = "ferry-test/busybox:latest"

// PluginRef is the reference Plugin tags its image with.
const PluginRef = "ferry-test/plugin:latest"

// NodeRef is the reference Node tags its image with.
const NodeRef = "ferry-test/node:latest"

// BusyboxPath is where the static busybox binary is read from on the host
// (Debian: apt-get install busybox-static).
const BusyboxPath = "/bin/busybox"

// LabelHash is the image label holding the digest of an image's inputs.
const LabelHash = "ferry.testimage.hash"

// pathEnv is the PATH of every image built here.
const pathEnv = "/usr/local/bin:/usr/bin:/bin"

// Client connects to the Docker Engine named by the environment (DOCKER_HOST
// and friends, or the default socket) with API version negotiation, and
// closes the connection when the test ends.
//
// When the Engine cannot be reached the test is skipped with a message that
// says so, unless the environment variable CI is "true": then the test fails,
// because a CI run that silently skips its Docker tests proves nothing.
func Client(t testing.TB) *client.Client {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		t.Skipf(format+" (skipping; with CI=true this fails)", args...)
	}
	if os.Getenv("CI") == "true" {
		unavailable = t.Fatalf
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		unavailable("docker engine unavailable: creating client: %v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		unavailable("docker engine unavailable at %s: %v", cli.DaemonHost(), err)
		return nil
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// buildMu serialises image builds within the process, so that parallel tests
// asking for the same image import it once.
var buildMu sync.Mutex

// Busybox returns the reference of a FROM-scratch image holding the host's
// static busybox at /bin/busybox, a symlink in /bin for every applet it lists
// (sh, echo, wget, nc, httpd, ...), a printenv script where busybox lacks
// that applet (Debian's does), /usr/bin/env, a world-writable /tmp and an
// /etc/passwd with root and nobody. PATH is /usr/local/bin:/usr/bin:/bin and
// the default command is /bin/sh.
//
// The image is imported under BusyboxRef unless an image with that tag and
// the same content already exists.
func Busybox(ctx context.Context, cli *client.Client) (string, error) {
	bb, err := loadBusybox()
	if err != nil {
		return "", err
	}
	changes := []string{`CMD ["/bin/sh"]`}
	err = ensure(ctx, cli, BusyboxRef, changes, func(tw *tar.Writer) error {
		return writeBusybox(tw, bb, "")
	})
	if err != nil {
		return "", err
	}
	return BusyboxRef, nil
}

// GoBinary compiles the Go main package in pkgDir (with CGO_ENABLED=0, for
// the Engine's architecture) and returns tag, an image that runs the program
// as its entrypoint. The binary is /bin/NAME, NAME being the base name of
// pkgDir.
//
// The image also holds everything Busybox's image does, so a test can give
// the step commands and run a shell in it, as a Drone pipeline may do with a
// plugin image. An applet named like the program is replaced by it.
func GoBinary(ctx context.Context, cli *client.Client, tag, pkgDir string) (string, error) {
	bb, err := loadBusybox()
	if err != nil {
		return "", err
	}
	dir, err := filepath.Abs(pkgDir)
	if err != nil {
		return "", fmt.Errorf("resolving package directory: %w", err)
	}
	name := filepath.Base(dir)
	bin, err := compile(ctx, cli, dir)
	if err != nil {
		return "", err
	}
	changes := []string{fmt.Sprintf(`ENTRYPOINT ["/bin/%s"]`, name)}
	err = ensure(ctx, cli, tag, changes, func(tw *tar.Writer) error {
		if err := writeBusybox(tw, bb, name); err != nil {
			return err
		}
		return writeFile(tw, "bin/"+name, 0o755, bin)
	})
	if err != nil {
		return "", err
	}
	return tag, nil
}

// Plugin returns PluginRef, the image of the stand-in Drone plugin in
// ./plugin: it prints its PLUGIN_* and DRONE_* variables, sorted, and exits
// with PLUGIN_EXIT_CODE. See GoBinary for the image's layout.
func Plugin(ctx context.Context, cli *client.Client) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locating the plugin source: no caller information")
	}
	return GoBinary(ctx, cli, PluginRef, filepath.Join(filepath.Dir(file), "plugin"))
}

// Node returns NodeRef, the image of a deploy target for multi-host deploy
// tests: everything Busybox's image holds, plus /bin/ferry (cmd/ferry,
// static) and /bin/webapp (./webapp, the tiny HTTP app releases run). Its
// default command is `ferry node --config /etc/ferry/node.yml`.
func Node(ctx context.Context, cli *client.Client) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locating the sources: no caller information")
	}
	here := filepath.Dir(file)
	bb, err := loadBusybox()
	if err != nil {
		return "", err
	}
	ferry, err := compile(ctx, cli, filepath.Join(here, "..", "..", "cmd", "ferry"))
	if err != nil {
		return "", err
	}
	webapp, err := compile(ctx, cli, filepath.Join(here, "webapp"))
	if err != nil {
		return "", err
	}
	changes := []string{`CMD ["/bin/ferry", "node", "--config", "/etc/ferry/node.yml"]`}
	err = ensure(ctx, cli, NodeRef, changes, func(tw *tar.Writer) error {
		if err := writeBusybox(tw, bb, ""); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/ferry/", Mode: 0o755}); err != nil {
			return err
		}
		if err := writeFile(tw, "bin/ferry", 0o755, ferry); err != nil {
			return err
		}
		return writeFile(tw, "bin/webapp", 0o755, webapp)
	})
	if err != nil {
		return "", err
	}
	return NodeRef, nil
}

// busybox is the host's busybox binary and the applets it provides.
type busybox struct {
	data    []byte
	applets []string
}

// loadBusybox reads the host's busybox once per process.
var loadBusybox = sync.OnceValues(func() (*busybox, error) {
	data, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (apt-get install busybox-static): %w", err)
	}
	if err := checkStatic(data); err != nil {
		return nil, err
	}
	// Ask the binary itself which applets it has: the list varies between
	// busybox builds.
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	applets := strings.Fields(string(out))
	slices.Sort(applets)
	applets = slices.Compact(applets)
	return &busybox{data: data, applets: applets}, nil
})

// checkStatic fails unless data is a statically linked ELF executable: a
// dynamically linked busybox (Debian's "busybox" package rather than
// "busybox-static") cannot run in a FROM-scratch image.
func checkStatic(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("reading %s as ELF: %w", BusyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; install Debian's busybox-static", BusyboxPath)
		}
	}
	return nil
}

// compile builds the main package in dir and returns the binary.
func compile(ctx context.Context, cli *client.Client, dir string) ([]byte, error) {
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the engine for its architecture: %w", err)
	}
	tmp, err := os.MkdirTemp("", "ferry-testimage-")
	if err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+v.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compiling %s: %w\n%s", dir, err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("reading compiled binary: %w", err)
	}
	return bin, nil
}

// ensure imports the root file system written by fill, with the Dockerfile
// instructions in changes, as ref, unless ref already exists with the same
// content: the LabelHash of the image is the digest of the file system and
// the changes.
func ensure(ctx context.Context, cli *client.Client, ref string, changes []string, fill func(*tar.Writer) error) error {
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	if err := fill(tw); err != nil {
		return fmt.Errorf("writing root file system of %s: %w", ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing root file system of %s: %w", ref, err)
	}
	changes = append(slices.Clip(changes), "ENV PATH="+pathEnv)
	sum := digest(sha(rootfs.Bytes()), strings.Join(changes, "\n"))

	buildMu.Lock()
	defer buildMu.Unlock()

	img, err := cli.ImageInspect(ctx, ref)
	var previous string // the image ref named before, now replaced
	switch {
	case err == nil:
		if img.Config != nil && img.Config.Labels[LabelHash] == sum {
			return nil
		}
		previous = img.ID
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("inspecting image %s: %w", ref, err)
	}

	changes = append(changes, "LABEL "+LabelHash+"="+sum)
	src := image.ImportSource{Source: &rootfs, SourceName: "-"}
	body, err := cli.ImageImport(ctx, src, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("importing image %s: %w", ref, err)
	}
	defer body.Close()
	if err := progress.Read(body); err != nil {
		return fmt.Errorf("importing image %s: %w", ref, err)
	}
	if previous != "" {
		removeDangling(ctx, cli, previous)
	}
	return nil
}

// removeDangling removes the image id when no tag names it any more (its
// tag moved to a new import), so that rebuilt test images do not pile up
// as <none> images: the node image, say, holds ferry and changes with it.
// An image still tagged or used by a container stays.
func removeDangling(ctx context.Context, cli *client.Client, id string) {
	img, err := cli.ImageInspect(ctx, id)
	if err != nil || len(img.RepoTags) > 0 {
		return
	}
	_, _ = cli.ImageRemove(ctx, id, image.RemoveOptions{PruneChildren: true})
}

// writeBusybox writes busybox's root file system; the applet named skip, if
// any, is left out so that a program of that name can take its place.
func writeBusybox(tw *tar.Writer, bb *busybox, skip string) error {
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin/", 0o755}, {"etc/", 0o755}, {"root/", 0o700}, {"tmp/", 0o1777},
		{"usr/", 0o755}, {"usr/bin/", 0o755},
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode}); err != nil {
			return err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bb.data); err != nil {
		return err
	}
	for _, a := range bb.applets {
		if a == "busybox" || a == skip {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox"}); err != nil {
			return err
		}
	}
	// Some busybox builds (Debian's among them) lack printenv.
	if !slices.Contains(bb.applets, "printenv") && skip != "printenv" {
		if err := writeFile(tw, "bin/printenv", 0o755, []byte(printenvScript)); err != nil {
			return err
		}
	}
	// Scripts often start with #!/usr/bin/env.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/env", Linkname: "/bin/busybox"}); err != nil {
		return err
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	if err := writeFile(tw, "etc/passwd", 0o644, []byte(passwd)); err != nil {
		return err
	}
	return writeFile(tw, "etc/group", 0o644, []byte(group))
}

// printenvScript stands in for printenv where busybox has no such applet.
const printenvScript = `#!/bin/sh
# printenv [NAME...]: print the environment, or the values of NAMEs.
[ $# -eq 0 ] && exec env
rc=0
for v; do
	case $v in
	''|[0-9]*|*[!A-Za-z0-9_]*) rc=1; continue ;;
	esac
	if eval "[ -n \"\${$v+set}\" ]"; then eval "printf '%s\\n' \"\$$v\""; else rc=1; fi
done
exit $rc
`

// writeFile writes one regular file owned by root.
func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// sha returns the hex SHA-256 of data.
func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// digest combines parts into one hex SHA-256.
func digest(parts ...string) string {
	return sha([]byte(strings.Join(parts, "\x00")))
}
