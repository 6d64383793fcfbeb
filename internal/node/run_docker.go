package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/nodeproto"
)

// Labels on the containers of the docker run mode.
const (
	labelService = "ferry.node.service" // ROOT/SERVICE: which node's service
	labelRelease = "ferry.node.release" // the release ID
)

func init() {
	registerRunMode("docker", runMode{
		validate: func(rc *RunConfig) error {
			if rc.StopTimeout < 0 {
				return errors.New("stop_timeout must not be negative")
			}
			return nil
		},
		new: func(s *service) Runner { return &dockerRunner{s: s} },
	})
}

// dockerRunner runs each release in a container of run.image through the
// local Docker Engine, the release directory mounted read-only at
// run.mount (its working directory). To switch, the new container is
// started and must pass the service's health check (addressed with
// {container_ip}) before the old one is stopped and removed. Docker
// restarts a crashed container (restart policy unless-stopped), and
// containers outlive the node: a restarted node adopts the one running
// its current release.
type dockerRunner struct {
	s      *service
	cli    *client.Client
	cur    string // the container running the current release
	curRel string // its release
	ip     string
}

func (r *dockerRunner) client() (*client.Client, error) {
	if r.cli != nil {
		return r.cli, nil
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	r.cli = cli
	return cli, nil
}

// owner is the label value naming this node's service.
func (r *dockerRunner) owner() string { return r.s.dir }

func (r *dockerRunner) list(ctx context.Context) ([]container.Summary, error) {
	cli, err := r.client()
	if err != nil {
		return nil, err
	}
	return cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelService+"="+r.owner()))})
}

// Start adopts the running container of the current release, or starts
// one, and removes any other container of the service.
func (r *dockerRunner) Start(ctx context.Context, dir string) error {
	cs, err := r.list(ctx)
	if err != nil {
		return fmt.Errorf("docker: listing containers: %w", err)
	}
	id := ""
	if dir != "" {
		id = filepath.Base(dir)
	}
	for _, c := range cs {
		if c.Labels[labelRelease] == id && c.State == "running" && r.cur == "" {
			r.cur, r.curRel = c.ID, id
			continue
		}
		r.remove(ctx, c.ID)
	}
	if r.cur != "" {
		ip, err := r.addr(ctx, r.cur)
		if err != nil {
			return err
		}
		r.ip = ip
		r.s.log.Info("docker: adopted the running container", "container", short(r.cur), "release", id)
		return nil
	}
	if dir == "" {
		return nil
	}
	c, ip, err := r.run(ctx, dir)
	if err != nil {
		return err
	}
	r.cur, r.curRel, r.ip = c, id, ip
	return nil
}

// Switch starts the release in dir in a new container, waits for it to
// pass the health check, then stops the old one. A new container that
// fails is removed and the old one keeps running.
func (r *dockerRunner) Switch(ctx context.Context, dir string) error {
	if r.cur != "" && r.curRel == filepath.Base(dir) {
		return nil // a switch back to a container still running
	}
	c, ip, err := r.run(ctx, dir)
	if err != nil {
		return err
	}
	if hc := r.s.health; hc != nil {
		if err := waitHealthy(ctx, withContainerIP(hc, ip), r.s.run); err != nil {
			r.remove(context.WithoutCancel(ctx), c)
			return fmt.Errorf("docker: the new container: %w", err)
		}
	}
	old := r.cur
	r.cur, r.curRel, r.ip = c, filepath.Base(dir), ip
	if old != "" {
		r.remove(ctx, old)
	}
	return nil
}

// Stop leaves the container running: Docker supervises it, and the next
// node adopts it.
func (r *dockerRunner) Stop(context.Context) error {
	if r.cli != nil {
		_ = r.cli.Close()
		r.cli = nil
	}
	return nil
}

// ContainerIP is the address of the current container, which health
// checks name {container_ip}.
func (r *dockerRunner) ContainerIP() string { return r.ip }

func (r *dockerRunner) run(ctx context.Context, dir string) (string, string, error) {
	cli, err := r.client()
	if err != nil {
		return "", "", err
	}
	rc := r.s.cfg.Run
	mount := or(rc.Mount, "/release")
	network := or(rc.Network, "bridge")
	var env []string
	for k, v := range r.s.cmd(dir, "").Env {
		env = append(env, k+"="+v)
	}
	cfg := &container.Config{
		Image:      rc.Image,
		Env:        env,
		WorkingDir: mount,
		User:       strconv.Itoa(r.s.as.Uid()) + ":" + strconv.Itoa(r.s.as.Gid()),
		Labels:     map[string]string{labelService: r.owner(), labelRelease: filepath.Base(dir)},
	}
	host := &container.HostConfig{
		Binds:         []string{dir + ":" + mount + ":ro"},
		NetworkMode:   container.NetworkMode(network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}
	if b, err := os.ReadFile(filepath.Join(dir, imageFile)); err == nil {
		// An image release runs its own image, in its own working
		// directory, with nothing mounted.
		cfg.Image, cfg.WorkingDir, host.Binds = strings.TrimSpace(string(b)), "", nil
	}
	if cfg.Image == "" {
		return "", "", fmt.Errorf("docker: release %s is an artifact, which needs run.image to run it", filepath.Base(dir))
	}
	if rc.Command != "" {
		cfg.Entrypoint = []string{"/bin/sh", "-c"}
		cfg.Cmd = []string{rc.Command}
	}
	created, err := cli.ContainerCreate(ctx, cfg, host, nil, nil, "")
	if err != nil {
		return "", "", fmt.Errorf("docker: creating the container of %s: %w", filepath.Base(dir), err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		r.remove(context.WithoutCancel(ctx), created.ID)
		return "", "", fmt.Errorf("docker: starting the container of %s: %w", filepath.Base(dir), err)
	}
	ip, err := r.addr(ctx, created.ID)
	if err != nil {
		r.remove(context.WithoutCancel(ctx), created.ID)
		return "", "", err
	}
	r.s.log.Info("docker: container started", "container", short(created.ID), "release", filepath.Base(dir), "ip", ip)
	return created.ID, ip, nil
}

// addr returns the container's IP address (127.0.0.1 on the host network).
func (r *dockerRunner) addr(ctx context.Context, id string) (string, error) {
	cli, err := r.client()
	if err != nil {
		return "", err
	}
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("docker: inspecting %s: %w", short(id), err)
	}
	if info.HostConfig != nil && info.HostConfig.NetworkMode.IsHost() {
		return "127.0.0.1", nil
	}
	if info.NetworkSettings != nil {
		for _, n := range info.NetworkSettings.Networks {
			if n != nil && n.IPAddress != "" {
				return n.IPAddress, nil
			}
		}
	}
	return "", fmt.Errorf("docker: container %s has no IP address", short(id))
}

func (r *dockerRunner) remove(ctx context.Context, id string) {
	cli, err := r.client()
	if err != nil {
		return
	}
	timeout := int(or(r.s.cfg.Run.StopTimeout, 10*time.Second).Seconds())
	if err := cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
		r.s.log.Warn("docker: stopping a container", "container", short(id), "err", err)
	}
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
		r.s.log.Warn("docker: removing a container", "container", short(id), "err", err)
	}
	r.s.log.Info("docker: container removed", "container", short(id))
}

// Pull finds the image of an image release locally, by REF@DIGEST or by
// the image ID DIGEST (images built on the host have no registry digest),
// or pulls REF@DIGEST.
func (r *dockerRunner) Pull(ctx context.Context, img *nodeproto.Image) (string, error) {
	cli, err := r.client()
	if err != nil {
		return "", err
	}
	byDigest := img.Ref + "@" + img.Digest
	if _, err := cli.ImageInspect(ctx, byDigest); err == nil {
		return byDigest, nil
	}
	if info, err := cli.ImageInspect(ctx, img.Digest); err == nil && info.ID == img.Digest {
		return img.Digest, nil
	}
	rc, err := cli.ImagePull(ctx, byDigest, image.PullOptions{})
	if err != nil {
		return "", fmt.Errorf("docker: pulling %s: %w", byDigest, err)
	}
	defer rc.Close()
	if err := readPull(rc); err != nil {
		return "", fmt.Errorf("docker: pulling %s: %w", byDigest, err)
	}
	return byDigest, nil
}

// readPull drains a pull's progress stream and returns its error, if any.
func readPull(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

func short(id string) string { return id[:min(12, len(id))] }

// withContainerIP returns hc with {container_ip} replaced by ip.
func withContainerIP(hc *nodeproto.HealthCheck, ip string) *nodeproto.HealthCheck {
	c := *hc
	for _, p := range []*string{&c.URL, &c.Address, &c.Command} {
		*p = strings.ReplaceAll(*p, "{container_ip}", ip)
	}
	return &c
}
