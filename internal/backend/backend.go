// Package backend defines the execution contract between ferry's runtime and
// the engines that actually run steps (Docker containers, host processes).
//
// The compiler turns a pipeline configuration into a Spec; the runtime walks
// the Spec's DAG and calls a Backend for each step. Backends know nothing of
// YAML, triggers or scheduling: they create resources, run one step, and tear
// everything down again.
package backend

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Backend runs the steps of one pipeline.
//
// Lifecycle: the runtime calls Setup exactly once, then Run any number of
// times (concurrently, for steps that the DAG allows to run in parallel, and
// for detached steps and services that run in the background), then Destroy
// exactly once. Destroy is always called, also after a failed or cancelled
// Setup, and must remove every resource that Setup or Run created, even ones
// that are still running. Destroy must be safe to call when Setup failed half
// way, and must not depend on the context passed to Setup or Run being alive.
//
// A Backend value may serve several Specs at once; all per-run state is keyed
// by Spec.ID.
type Backend interface {
	// Name is the backend's name as used on the command line ("docker", "local").
	Name() string
	// Setup creates the per-pipeline resources: network, workspace, volumes.
	Setup(ctx context.Context, spec *Spec) error
	// Run starts one step, copies its combined stdout and stderr to out, and
	// blocks until it exits. A cancelled ctx kills the step (the whole process
	// group or container) and Run returns promptly with State.Killed set.
	// A step that cannot be started (missing image, bad entrypoint) returns an
	// error; the runtime marks it as errored. Run calls Started(ctx) once,
	// as soon as the step's process (or container) is running.
	Run(ctx context.Context, spec *Spec, step *Step, out io.Writer) (*State, error)
	// Destroy stops anything still running and removes every resource
	// created for spec.
	Destroy(ctx context.Context, spec *Spec) error
}

// Spec is a compiled pipeline: everything a backend needs to run it.
type Spec struct {
	// ID uniquely identifies this run of this pipeline. Backends name and
	// label their resources with it.
	ID string
	// Name is the pipeline's name.
	Name string
	// Labels are attached to every resource the backend creates, in addition
	// to the backend's own "ferry.run=<ID>" label.
	Labels map[string]string
	// Workspace is where the repository lives inside each step.
	Workspace Workspace
	// Volumes are the pipeline-level volumes that steps may mount.
	Volumes []*Volume
	// Services run for the whole pipeline, in the background, and are
	// reachable from steps by their name (docker backend).
	Services []*Step
	// Steps are the pipeline's steps, in declaration order.
	Steps []*Step
	// Trusted allows privileged steps, host volumes, devices and
	// NetworkMode; backends refuse them otherwise.
	Trusted bool
}

// Workspace describes the working copy.
type Workspace struct {
	// Base is the mount point of the workspace volume inside a container,
	// e.g. "/drone/src" is Base "/drone", Path "src".
	Base string
	// Path is relative to Base; the step's default working directory is
	// Base/Path.
	Path string
	// HostDir, when set, is a directory on the host whose content becomes the
	// workspace. The docker backend copies it into the workspace volume once
	// at Setup; the local backend runs steps in it directly.
	HostDir string
}

// Dir is the absolute path of the working directory inside a container.
func (w Workspace) Dir() string {
	if w.Path == "" {
		return w.Base
	}
	return w.Base + "/" + w.Path
}

// Volume is a named pipeline volume.
type Volume struct {
	Name string
	// HostPath mounts a host directory (trusted pipelines only).
	HostPath string
	// Temp is a scratch volume that lives for the pipeline run.
	Temp bool
	// Medium is "memory" for a tmpfs temp volume.
	Medium string
}

// Mount attaches a pipeline volume to a step.
type Mount struct {
	Name string
	Path string
}

// PullPolicy says when to pull a step's image.
type PullPolicy string

// The pull policies, as in Drone.
const (
	PullDefault     PullPolicy = ""
	PullAlways      PullPolicy = "always"
	PullIfNotExists PullPolicy = "if-not-exists"
	PullNever       PullPolicy = "never"
)

// RunPolicy says in which pipeline state a step runs.
type RunPolicy string

// The run policies, derived from when.status.
const (
	RunOnSuccess RunPolicy = "on-success"
	RunOnFailure RunPolicy = "on-failure"
	RunAlways    RunPolicy = "always"
	RunNever     RunPolicy = "never"
)

// Step is one container or process.
type Step struct {
	// ID is unique within the Spec and safe for resource names.
	ID string
	// Name is the step's name as written in the YAML.
	Name string
	// Number is the step's 1-based position in the pipeline, services first.
	Number int
	// Image is the container image (docker backend only).
	Image string
	Pull  PullPolicy
	// Entrypoint and Command override the image's. When Commands is set the
	// backend runs them as a shell script instead (see Script).
	Entrypoint []string
	Command    []string
	// Commands are shell commands, run in order, stopping at the first that
	// fails.
	Commands []string
	// Env is the complete environment of the step, secrets included.
	Env map[string]string
	// WorkingDir overrides the workspace directory.
	WorkingDir string
	User       string
	Privileged bool
	Mounts     []Mount
	// NetworkMode replaces the pipeline network (docker backend only;
	// trusted pipelines only).
	NetworkMode  string
	ExtraHosts   []string
	DNS          []string
	DNSSearch    []string
	ShmSize      int64
	MemLimit     int64
	MemSwapLimit int64
	CPUPeriod    int64
	CPUQuota     int64
	CPUShares    int64
	CPUSet       string
	// Devices map host devices into the container: Name names a host
	// volume of the Spec, whose HostPath is the device; Path is where it
	// appears. Trusted pipelines only.
	Devices []Mount
	// Shell runs Commands instead of /bin/sh (e.g. "bash").
	Shell string
	// Detach runs the step in the background; it is stopped when the
	// pipeline ends. Services are always detached.
	Detach bool
	// Service marks a pipeline service.
	Service bool
	// DependsOn names the steps (by Name) that must finish before this one
	// starts; it is the complete list, as resolved by the compiler. A
	// detached step counts as finished once it has started.
	DependsOn []string
	// RunPolicy decides whether the step runs given the pipeline's state.
	RunPolicy RunPolicy
	// IgnoreFailure keeps a failing step from failing the pipeline.
	IgnoreFailure bool
	// FailFast stops the steps still running when this step fails.
	FailFast bool
	// Timeout bounds the step's run time; zero means no limit.
	Timeout time.Duration
	// Secrets are the secret values visible to this step, for masking.
	Secrets []string
}

// startedKey is the context key of the hook that Started calls.
type startedKey struct{}

// WithStarted returns a copy of ctx that makes Started(ctx) call fn. The
// runtime passes such a context to Run to learn when a step's process is
// running: a step's timeout counts from then, so that the time an engine
// takes to pull and create a step's container on a busy machine does not
// use up the step's time (the pipeline's timeout still bounds it). Like
// net/http/httptrace, the hook travels in the context so that the Backend
// interface stays three methods.
func WithStarted(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, startedKey{}, fn)
}

// Started tells the caller of Run that the step's process is running. A
// backend calls it once per Run, right after the process or container
// started; it does nothing when ctx carries no hook.
func Started(ctx context.Context) {
	if fn, ok := ctx.Value(startedKey{}).(func()); ok {
		fn()
	}
}

// State is how a step ended.
type State struct {
	ExitCode int
	// Killed is set when the step was stopped by cancellation or a timeout.
	// A step killed before its process started has ExitCode 0; the runtime
	// reports every killed step with exit code 137 (runtime.ExitKilled).
	Killed bool
	// OOMKilled is set when the container was killed for exceeding its memory limit.
	OOMKilled bool
}

// ExitError is returned by a backend when a step could not run at all.
type ExitError struct {
	Step string
	Err  error
}

func (e *ExitError) Error() string { return fmt.Sprintf("step %s: %v", e.Step, e.Err) }
func (e *ExitError) Unwrap() error { return e.Err }

// ImageError is returned, possibly wrapped, by a backend that could not
// get a step's image (a failed pull). The runtime marks the steps that use
// Image as failed with it, also when Setup returned it.
type ImageError struct {
	Image string
	// Err is the registry's (or the Engine's) answer.
	Err error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("image %s could not be pulled: %v", e.Image, e.Err)
}
func (e *ImageError) Unwrap() error { return e.Err }

// Labels every backend attaches to the resources it creates, so that
// leftovers of a crashed run can be found and removed.
const (
	LabelManaged = "ferry.managed"
	LabelRun     = "ferry.run"
	LabelStep    = "ferry.step"
	// LabelPID is the process id of the ferry process that owns the run;
	// a cleaner removes resources whose owner is no longer alive.
	LabelPID = "ferry.pid"
	// LabelHost is the hostname of the owning process.
	LabelHost = "ferry.host"
)
