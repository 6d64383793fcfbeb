package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/docker/progress"
)

// exitSIGKILL is the exit status of a process killed by SIGKILL, which is how
// the kernel's OOM killer ends a container's main process.
const exitSIGKILL = 137

// Run creates the step's container, attaches to its output, starts it and
// waits for it to exit, then removes it. The sequence mirrors `docker run
// --rm`: create, attach, wait, start; the exit is then read from the wait
// already registered, and the container is inspected only when its exit
// status says it may have run out of memory.
func (e *engine) Run(ctx context.Context, spec *backend.Spec, step *backend.Step, out io.Writer) (*backend.State, error) {
	if out == nil {
		out = io.Discard
	}
	r, err := e.lookup(spec)
	if err != nil {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	cfg, host, net, err := e.containerConfig(spec, step)
	if err != nil {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	name := containerName(spec, step)
	id, err := e.create(ctx, r, step, cfg, host, net, name)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, errDestroyed) {
			// The create request may have reached the Engine before the
			// cancellation: remove by name what may have been created.
			e.removeContainer(ctx, name)
			return &backend.State{Killed: true}, nil
		}
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	removed := false
	defer func() {
		if !removed {
			e.removeContainer(ctx, id)
		}
	}()
	if ctx.Err() != nil {
		return &backend.State{Killed: true}, nil
	}

	// Attach before starting, so that no output is lost.
	hijack, err := e.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return e.startFailed(ctx, r, step, fmt.Errorf("attaching to container: %w", err))
	}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, hijack.Reader)
		if err != nil {
			// out failed: keep reading, or the step would block once the
			// stream's buffers are full.
			_, _ = io.Copy(io.Discard, hijack.Reader)
		}
		copied <- err
	}()
	// Whatever happens below, the copy must end before Run returns: out
	// belongs to the caller again afterwards.
	defer func() {
		hijack.Close()
		if err := <-copied; err != nil {
			e.log.Debug("step output stream ended", "step", step.Name, "err", err)
		}
	}()

	// Register the wait before starting, so that a step that exits at once
	// cannot be missed. The helper goroutine ends when waitCtx does.
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	exited := e.wait(waitCtx, id)
	// A step with a memory limit: follow the container's "oom" events from
	// now on, so that an OOM kill is known even when the Engine learns of
	// it after the exit, or its short event history has moved on.
	var oom <-chan struct{}
	if step.MemLimit > 0 {
		oom = e.watchOOM(waitCtx, id)
	}

	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return e.startFailed(ctx, r, step, fmt.Errorf("starting container: %w", err))
	}
	backend.Started(ctx)

	// On cancellation the container is killed and removed at once: a
	// forced removal sends SIGKILL, so a step that ignores SIGTERM cannot
	// delay it, and the output stream ends with the container.
	kill := func() (*backend.State, error) {
		e.removeContainer(ctx, id)
		removed = true
		return &backend.State{Killed: true, ExitCode: exitSIGKILL}, nil
	}
	var res waitResult
	select {
	case <-ctx.Done():
		return kill()
	case res = <-exited:
	}
	if res.err != nil {
		if ctx.Err() != nil {
			return kill()
		}
		return nil, &backend.ExitError{Step: step.Name, Err: fmt.Errorf("waiting for container: %w", res.err)}
	}
	// The output stream ends once the Engine has copied everything the
	// step wrote.
	select {
	case <-ctx.Done():
		return kill()
	case err := <-copied:
		copied <- err // for the deferred drain
		if err != nil {
			e.log.Warn("reading step output", "step", step.Name, "err", err)
		}
	}

	state := &backend.State{ExitCode: int(res.code)}
	switch {
	case state.ExitCode != 0 && destroyed(r):
		// Destroy removed the container while it ran (a detached step or
		// a service at the end of the pipeline).
		state.Killed = true
	case state.ExitCode == exitSIGKILL:
		state.OOMKilled = e.oomKilled(ctx, step, id, oom)
	}
	return state, nil
}

// oomKilled reports whether a container that died of SIGKILL ran out of
// memory. Engine 20.10 sets State.OOMKilled only when the kernel's OOM
// notification reaches it before the exit does; when it comes later, it is
// still logged as an "oom" event, so for steps with a memory limit the event
// log is consulted too, for a short while.
func (e *engine) oomKilled(ctx context.Context, step *backend.Step, id string, oom <-chan struct{}) bool {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		e.log.Warn("inspecting container", "step", step.Name, "err", err)
		return false
	}
	if info.State == nil || info.State.OOMKilled || step.MemLimit == 0 {
		return info.State != nil && info.State.OOMKilled
	}
	started, err := time.Parse(time.RFC3339Nano, info.State.StartedAt)
	if err != nil {
		return false
	}
	for range 4 {
		select {
		case <-oom: // nil without a watch: never ready
			e.log.Debug("out of memory, by the engine's events", "step", step.Name)
			return true
		default:
		}
		logged, err := e.oomEvent(ctx, id, started)
		if err != nil {
			e.log.Warn("reading engine events", "step", step.Name, "err", err)
			return false
		}
		if logged {
			e.log.Debug("out of memory, by the engine's event log", "step", step.Name)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-oom:
			e.log.Debug("out of memory, by the engine's events", "step", step.Name)
			return true
		case <-time.After(250 * time.Millisecond):
		}
	}
	return false
}

// watchOOM follows the Engine's "oom" events of container id from now
// until ctx ends, and returns a channel that is closed at the first one.
func (e *engine) watchOOM(ctx context.Context, id string) <-chan struct{} {
	oom := make(chan struct{})
	now := time.Now()
	msgs, errs := e.cli.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("container", id), filters.Arg("event", "oom")),
	})
	go func() {
		select {
		case <-msgs:
			close(oom)
		case err := <-errs:
			// ctx ended, or the stream failed: oomEvent remains.
			if ctx.Err() == nil {
				e.log.Debug("following oom events", "container", id, "err", err)
			}
		}
	}()
	return oom
}

// oomEvent reports whether the Engine has logged an "oom" event for the
// container since it started.
func (e *engine) oomEvent(ctx context.Context, id string, since time.Time) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	msgs, errs := e.cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(since.Unix()-1, 10),
		Until:   fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("container", id), filters.Arg("event", "oom")),
	})
	select {
	case <-msgs:
		return true, nil
	case err := <-errs:
		if err == nil || errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
}

// startFailed reports a step whose container could not be started: an
// error, unless the run was cancelled or destroyed meanwhile, which caused
// the failure and makes the step killed instead.
func (e *engine) startFailed(ctx context.Context, r *run, step *backend.Step, err error) (*backend.State, error) {
	if ctx.Err() == nil && !destroyed(r) {
		return nil, &backend.ExitError{Step: step.Name, Err: err}
	}
	e.log.Debug("step stopped before it started", "step", step.Name, "err", err)
	return &backend.State{Killed: true}, nil
}

// destroyed reports whether Destroy has started for r.
func destroyed(r *run) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.destroyed
}

// waitResult is how a container wait ended.
type waitResult struct {
	code int64
	err  error
}

// wait waits for the container's next exit. The returned channel receives
// exactly one result; the goroutine behind it ends when ctx is done.
func (e *engine) wait(ctx context.Context, id string) <-chan waitResult {
	resC, errC := e.cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
	exited := make(chan waitResult, 1)
	go func() {
		select {
		case res := <-resC:
			var err error
			if res.Error != nil && res.Error.Message != "" {
				err = errors.New(res.Error.Message)
			}
			exited <- waitResult{code: res.StatusCode, err: err}
		case err := <-errC:
			exited <- waitResult{err: err}
		}
	}()
	return exited
}

// create creates the step's container, pulling its image first when the
// pull policy asks for it. With the default policy, "if-not-exists" and
// "never" the image is not inspected up front: a create that fails for lack
// of the image says so, which saves a round trip on every step.
func (e *engine) create(ctx context.Context, r *run, step *backend.Step, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, name string) (string, error) {
	if step.Pull == backend.PullAlways {
		if err := e.pull(ctx, step.Image); err != nil {
			return "", err
		}
	}
	id, err := e.createContainer(ctx, r, cfg, host, net, name)
	if err == nil || !cerrdefs.IsNotFound(err) || step.Pull == backend.PullAlways {
		return id, wrapCreate(err)
	}
	// Not found: the image, or something else the container refers to
	// (a network of NetworkMode "container:..."). Only a missing image is
	// pulled.
	if _, ierr := e.cli.ImageInspect(ctx, step.Image); !cerrdefs.IsNotFound(ierr) {
		return "", wrapCreate(err)
	}
	if step.Pull == backend.PullNever {
		return "", fmt.Errorf("image %s is not present locally and the pull policy is %q", step.Image, backend.PullNever)
	}
	if err := e.pull(ctx, step.Image); err != nil {
		return "", err
	}
	id, err = e.createContainer(ctx, r, cfg, host, net, name)
	return id, wrapCreate(err)
}

func wrapCreate(err error) error {
	if err == nil || errors.Is(err, errDestroyed) {
		return err
	}
	return fmt.Errorf("creating container: %w", err)
}

// pull pulls ref and waits for the pull to finish. Its error is a
// *backend.ImageError holding the registry's answer.
func (e *engine) pull(ctx context.Context, ref string) error {
	e.log.Debug("pulling image", "image", ref)
	body, err := e.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return &backend.ImageError{Image: ref, Err: engineAnswer(err)}
	}
	defer body.Close()
	if err := progress.Read(body); err != nil {
		return &backend.ImageError{Image: ref, Err: err}
	}
	return nil
}

// engineAnswer drops the client's "Error response from daemon: " prefix,
// leaving what the Engine (or the registry through it) said; the error
// still unwraps to err.
func engineAnswer(err error) error {
	if msg, ok := strings.CutPrefix(err.Error(), "Error response from daemon: "); ok {
		return &answerError{msg: msg, err: err}
	}
	return err
}

type answerError struct {
	msg string
	err error
}

func (e *answerError) Error() string { return e.msg }
func (e *answerError) Unwrap() error { return e.err }

// containerConfig translates a step into the Engine's container
// configuration. It refuses what an untrusted pipeline may not do.
func (e *engine) containerConfig(spec *backend.Spec, step *backend.Step) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	if step.Image == "" {
		return nil, nil, nil, errors.New("step has no image")
	}
	if step.Privileged && !spec.Trusted {
		return nil, nil, nil, errors.New("privileged mode needs a trusted pipeline")
	}

	entrypoint, command := step.Entrypoint, step.Command
	env := step.Env
	if len(step.Commands) > 0 {
		var scriptEnv map[string]string
		entrypoint, command, scriptEnv = backend.ContainerEntrypoint(step.Shell, step.Commands)
		env = maps.Clone(env)
		if env == nil {
			env = make(map[string]string, len(scriptEnv))
		}
		maps.Copy(env, scriptEnv)
	}
	envList := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}

	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = make(map[string]string, len(e.labels)+2)
	}
	maps.Copy(labels, e.labels)
	labels[backend.LabelRun] = spec.ID
	labels[backend.LabelStep] = step.Name

	workDir := step.WorkingDir
	if workDir == "" && spec.Workspace.Base != "" {
		workDir = spec.Workspace.Dir()
	}

	cfg := &container.Config{
		Image:      step.Image,
		Entrypoint: entrypoint,
		Cmd:        command,
		Env:        envList,
		WorkingDir: workDir,
		User:       step.User,
		Labels:     labels,
	}
	host := &container.HostConfig{
		Privileged: step.Privileged,
		ExtraHosts: step.ExtraHosts,
		DNS:        step.DNS,
		DNSSearch:  step.DNSSearch,
		ShmSize:    step.ShmSize,
		Resources: container.Resources{
			Memory:     step.MemLimit,
			MemorySwap: step.MemSwapLimit,
			CPUPeriod:  step.CPUPeriod,
			CPUQuota:   step.CPUQuota,
			CPUShares:  step.CPUShares,
			CpusetCpus: step.CPUSet,
		},
	}
	for _, d := range step.Devices {
		// A device names a host volume; the device is its host path.
		i := slices.IndexFunc(spec.Volumes, func(v *backend.Volume) bool { return v.Name == d.Name })
		switch {
		case !spec.Trusted:
			return nil, nil, nil, fmt.Errorf("device %q needs a trusted pipeline", d.Name)
		case i < 0 || spec.Volumes[i].HostPath == "":
			return nil, nil, nil, fmt.Errorf("device %q does not name a host volume of the pipeline", d.Name)
		}
		host.Devices = append(host.Devices, container.DeviceMapping{PathOnHost: spec.Volumes[i].HostPath, PathInContainer: d.Path, CgroupPermissions: "rwm"})
	}
	if spec.Workspace.Base != "" {
		host.Mounts = append(host.Mounts, mount.Mount{
			Type:   mount.TypeVolume,
			Source: workspaceVolume(spec),
			Target: spec.Workspace.Base,
			// The workspace holds the repository only, never files of
			// whichever image happens to mount it first.
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		})
	}
	for _, m := range step.Mounts {
		i := slices.IndexFunc(spec.Volumes, func(v *backend.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return nil, nil, nil, fmt.Errorf("volume %q is not declared by the pipeline", m.Name)
		}
		switch v := spec.Volumes[i]; {
		case v.HostPath != "":
			if !spec.Trusted {
				return nil, nil, nil, fmt.Errorf("host volume %q needs a trusted pipeline", m.Name)
			}
			// A bind in the Binds form creates a missing host path, as
			// `docker run -v` and Drone do; the Mounts form would fail.
			host.Binds = append(host.Binds, v.HostPath+":"+m.Path)
		default:
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: volumeName(spec, v.Name), Target: m.Path})
		}
	}

	var net *network.NetworkingConfig
	if step.NetworkMode != "" {
		if !spec.Trusted {
			return nil, nil, nil, fmt.Errorf("network_mode %q needs a trusted pipeline", step.NetworkMode)
		}
		host.NetworkMode = container.NetworkMode(step.NetworkMode)
	} else {
		name := networkName(spec)
		host.NetworkMode = container.NetworkMode(name)
		net = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			name: {Aliases: []string{step.Name}},
		}}
	}
	return cfg, host, net, nil
}
