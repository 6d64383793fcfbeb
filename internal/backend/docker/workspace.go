package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/ferryci/ferry/internal/backend"
)

// copyWorkspace copies Workspace.HostDir into the workspace volume, at
// Workspace.Path. The Engine can only write into a volume through a
// container that mounts it, so a helper container is created (never
// started) from an image the pipeline uses anyway: the first of its step and
// service images that is present, or else the first step's image, pulled
// unless its policy forbids it. Files arrive owned by root, as with a clone.
func (e *engine) copyWorkspace(ctx context.Context, r *run, spec *backend.Spec) error {
	images := pipelineImages(spec)
	if len(images) == 0 {
		return nil // no container will ever see the workspace
	}
	labels := e.resourceLabels(spec)
	labels[backend.LabelStep] = "workspace"
	cfg := &container.Config{
		// Never started: the entrypoint only has to satisfy the Engine's
		// "no command specified" check.
		Entrypoint: []string{"/ferry-workspace-copy"},
		Labels:     labels,
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		Mounts: []mount.Mount{{
			Type:          mount.TypeVolume,
			Source:        workspaceVolume(spec),
			Target:        spec.Workspace.Base,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		}},
	}
	name := "ferry-" + safeName(spec.ID) + "-workspace"

	var id string
	var err error
	for _, img := range images {
		cfg.Image = img.name
		id, err = e.createContainer(ctx, r, cfg, host, nil, name)
		if err == nil || !cerrdefs.IsNotFound(err) {
			break
		}
	}
	if cerrdefs.IsNotFound(err) && images[0].pull != backend.PullNever {
		cfg.Image = images[0].name
		if err := e.pull(ctx, cfg.Image); err != nil {
			return err
		}
		id, err = e.createContainer(ctx, r, cfg, host, nil, name)
	}
	if err != nil {
		return fmt.Errorf("creating helper container: %w", err)
	}
	defer e.removeContainer(ctx, id)

	pr, pw := io.Pipe()
	walked := make(chan error, 1)
	go func() {
		err := writeTree(pw, spec.Workspace.HostDir, spec.Workspace.Path)
		pw.CloseWithError(err)
		walked <- err
	}()
	err = e.cli.CopyToContainer(ctx, id, spec.Workspace.Base, pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errCopyEnded) // unblocks the writer if the copy failed early
	if werr := <-walked; werr != nil && !errors.Is(werr, errCopyEnded) {
		return werr
	}
	if err != nil {
		return fmt.Errorf("copying into the workspace volume: %w", err)
	}
	return nil
}

// errCopyEnded stops the archive writer when the Engine stopped reading.
var errCopyEnded = errors.New("copy into the workspace ended")

// pipelineImage is an image a pipeline uses and the pull policy it has.
type pipelineImage struct {
	name string
	pull backend.PullPolicy
}

// pipelineImages lists the images of the spec's steps, then its services,
// each once, in declaration order.
func pipelineImages(spec *backend.Spec) []pipelineImage {
	var out []pipelineImage
	seen := make(map[string]bool)
	for _, s := range append(append([]*backend.Step(nil), spec.Steps...), spec.Services...) {
		if s.Image == "" || seen[s.Image] {
			continue
		}
		seen[s.Image] = true
		out = append(out, pipelineImage{name: s.Image, pull: s.Pull})
	}
	return out
}

// isDataDir reports whether dir is a ferry server's data directory (one
// with a secret.key beside a ferry.db or a mirrors directory), such as the
// ./ferry-data an older `ferry up` wrote inside a checkout.
func isDataDir(dir string) bool {
	if fi, err := os.Lstat(filepath.Join(dir, "secret.key")); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	for _, name := range []string{"ferry.db", "mirrors"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// writeTree writes the directory tree at root to w as a tar stream whose
// entries sit under prefix (a slash-separated relative path, possibly
// empty). Regular files, directories and symbolic links are copied with
// their permissions and owned by root; other files (sockets, devices) are
// skipped, and so are ferry data directories (isDataDir).
func writeTree(w io.Writer, root, prefix string) error {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("resolving workspace directory: %w", err)
	}
	prefix = strings.Join(splitPath(prefix), "/")
	tw := tar.NewWriter(w)
	if prefix != "" {
		// The prefix's own directories, so that they exist in the volume.
		dir := ""
		for _, part := range splitPath(prefix) {
			dir = path.Join(dir, part)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				return fmt.Errorf("writing workspace archive: %w", err)
			}
		}
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if d.IsDir() && isDataDir(p) {
			return fs.SkipDir // a ferry server's state: its secret key must not reach a step
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    path.Join(prefix, filepath.ToSlash(rel)),
			Mode:    int64(info.Mode().Perm()),
			ModTime: info.ModTime(),
		}
		if info.Mode()&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
			return tw.WriteHeader(hdr)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return tw.WriteHeader(hdr)
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			// A file that grows while being copied must not overrun its header.
			_, err = io.Copy(tw, io.LimitReader(f, hdr.Size))
			return err
		default:
			return nil
		}
	})
	if err != nil {
		return fmt.Errorf("writing workspace archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing workspace archive: %w", err)
	}
	return nil
}

// splitPath splits a slash-separated relative path into its elements.
func splitPath(p string) []string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
