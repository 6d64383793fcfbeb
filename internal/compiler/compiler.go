// Package compiler turns a parsed pipeline and the context of one build into
// a backend.Spec: the dependency graph, each step's complete environment,
// secrets, images, volumes and run policies.
package compiler

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/pipeline"
)

// Options are the inputs of one compilation besides the pipeline itself.
type Options struct {
	// Metadata is the build context.
	Metadata *Metadata
	// Backend is "docker" or "local"; it decides the workspace layout.
	Backend string
	// RunID names the run; backends label their resources with it.
	RunID string
	// Number is the pipeline's 1-based position in its file (DRONE_STAGE_NUMBER).
	Number int
	// HostDir is a host directory holding the workspace (ferry exec uses the
	// current directory).
	HostDir string
	// Env is extra environment for every step (ferry exec --env). It
	// overrides the build variables and is overridden by the YAML.
	Env map[string]string
	// Secrets maps secret names to values. Only secrets listed here can be
	// referenced with from_secret; the caller has already filtered them by
	// event and by repository trust.
	Secrets map[string]string
	// Trusted allows what only a trusted pipeline may do (see CheckTrust):
	// host volumes, privileged steps, devices, network_mode and, unless
	// LocalUntrusted is set, the local backend.
	Trusted bool
	// TrustHint says, in the error for an untrusted pipeline, what it
	// needs; empty means RepoTrustHint.
	TrustHint string
	// LocalUntrusted lets an untrusted pipeline run on the local backend.
	// ferry exec sets it: whoever runs it runs their own checkout on their
	// own machine, as with make. Agents never set it.
	LocalUntrusted bool
	// Labels are added to every resource the backend creates.
	Labels map[string]string
}

// Result is a compiled pipeline.
type Result struct {
	Spec *backend.Spec
	// Warnings are problems that do not stop the run, such as a from_secret
	// naming a secret that was not provided.
	Warnings []string
}

// Default workspace layout of container backends, as in Drone.
const (
	DefaultWorkspaceBase = "/drone"
	DefaultWorkspacePath = "src"
)

// Match reports whether a pipeline's trigger matches the build.
func Match(p *pipeline.Pipeline, m *Metadata) bool {
	return p.Trigger.Match(matchContext(m))
}

func matchContext(m *Metadata) pipeline.MatchContext {
	branch := m.Commit.Branch
	if tag := m.Tag(); tag != "" && m.Build.Event == "tag" {
		// Drone matches a tag build's branch conditions against the tag.
		branch = tag
	}
	return pipeline.MatchContext{
		Branch: branch,
		Event:  m.Build.Event,
		Ref:    m.Commit.Ref,
		Repo:   m.Repo.Slug,
		Target: m.Build.Target,
		Cron:   m.Build.Cron,
		Action: m.Build.Action,
		// Drone matches `instance` against its server's host name,
		// DRONE_SYSTEM_HOST, not against the machine running the step.
		Instance: m.System.Host,
		Paths:    m.Build.ChangedPaths,
	}
}

// Compile compiles one pipeline for one build.
func Compile(p *pipeline.Pipeline, opts Options) (*Result, error) {
	if opts.Metadata == nil {
		opts.Metadata = &Metadata{}
	}
	res := &Result{}
	spec := &backend.Spec{
		ID:      opts.RunID,
		Name:    p.Name,
		Labels:  maps.Clone(opts.Labels),
		Trusted: opts.Trusted,
	}
	res.Spec = spec

	local := opts.Backend == "local"
	if !opts.Trusted {
		be := opts.Backend
		if local && opts.LocalUntrusted {
			be = ""
		}
		if err := CheckTrust(p, be, opts.TrustHint); err != nil {
			return nil, err
		}
	}
	switch {
	case local:
		spec.Workspace = backend.Workspace{Base: opts.HostDir, HostDir: opts.HostDir}
		if p.Workspace.Path != "" && opts.HostDir == "" {
			spec.Workspace.Path = p.Workspace.Path
		}
	default:
		spec.Workspace = backend.Workspace{Base: DefaultWorkspaceBase, Path: DefaultWorkspacePath, HostDir: opts.HostDir}
		if p.Workspace.Base != "" {
			spec.Workspace.Base = p.Workspace.Base
		}
		if p.Workspace.Path != "" {
			spec.Workspace.Path = strings.Trim(p.Workspace.Path, "/")
		}
	}

	for _, v := range p.Volumes {
		vol := &backend.Volume{Name: v.Name}
		switch {
		case v.Host != nil:
			vol.HostPath = v.Host.Path
		default:
			vol.Temp = true
			if v.Temp != nil {
				vol.Medium = v.Temp.Medium
			}
		}
		spec.Volumes = append(spec.Volumes, vol)
	}

	mc := matchContext(opts.Metadata)
	base := Environ(opts.Metadata)
	stage := stageEnv(p, opts)
	ws := workspaceEnv(spec.Workspace)
	secretValues := secretList(opts.Secrets)

	newStep := func(src *pipeline.Step, number int, service bool) (*backend.Step, error) {
		dst := &backend.Step{
			ID:            stepID(opts.RunID, number, src.Name),
			Name:          src.Name,
			Number:        number,
			Image:         expandImage(src.Image),
			Pull:          backend.PullPolicy(src.Pull),
			Entrypoint:    src.Entrypoint,
			Command:       src.Command,
			Commands:      src.Commands,
			WorkingDir:    src.WorkingDir,
			User:          src.User,
			Privileged:    src.Privileged,
			NetworkMode:   src.NetworkMode,
			ExtraHosts:    src.ExtraHosts,
			DNS:           src.DNS,
			DNSSearch:     src.DNSSearch,
			ShmSize:       src.ShmSize,
			MemLimit:      src.MemLimit,
			MemSwapLimit:  src.MemSwapLimit,
			CPUPeriod:     src.CPUPeriod,
			CPUQuota:      src.CPUQuota,
			CPUShares:     src.CPUShares,
			CPUSet:        src.CPUSet,
			Shell:         src.Shell,
			Detach:        src.Detach || service,
			Service:       service,
			RunPolicy:     runPolicy(src),
			IgnoreFailure: src.Failure == "ignore",
			FailFast:      src.Failure == "fail-fast",
			Secrets:       secretValues,
		}
		if src.Timeout != "" {
			d, err := time.ParseDuration(src.Timeout)
			if err != nil {
				return nil, fmt.Errorf("step %q: timeout: %w", src.Name, err)
			}
			dst.Timeout = d
		}
		if !service && !src.When.Match(mc) {
			dst.RunPolicy = backend.RunNever
		}
		for _, d := range src.Devices {
			dst.Devices = append(dst.Devices, backend.Mount{Name: d.Name, Path: d.Path})
		}
		for _, m := range src.Volumes {
			dst.Mounts = append(dst.Mounts, backend.Mount{Name: m.Name, Path: m.Path})
		}

		env := make(map[string]string, len(base)+len(stage)+32)
		maps.Copy(env, base)
		maps.Copy(env, stage)
		maps.Copy(env, ws)
		n := strconv.Itoa(number)
		env["DRONE_STEP_NAME"], env["FERRY_STEP_NAME"], env["CI_STEP_NAME"] = src.Name, src.Name, src.Name
		env["DRONE_STEP_NUMBER"], env["FERRY_STEP_NUMBER"], env["CI_STEP_NUMBER"] = n, n, n
		maps.Copy(env, opts.Env)
		for _, vars := range []map[string]pipeline.Value{p.Environment, src.Environment} {
			for k, v := range vars {
				if err := setValue(env, k, v, opts.Secrets, res, src.Name); err != nil {
					return nil, err
				}
			}
		}
		for k, v := range src.Settings {
			if v.Secret == "" && v.Raw == nil {
				continue // Drone skips null settings
			}
			if err := setValue(env, "PLUGIN_"+strings.ToUpper(k), v, opts.Secrets, res, src.Name); err != nil {
				return nil, err
			}
		}
		dst.Env = env
		return dst, nil
	}

	number := 0
	for _, s := range p.Services {
		number++
		st, err := newStep(s, number, true)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
		st.DependsOn = []string{}
		spec.Services = append(spec.Services, st)
	}
	graph := slices.ContainsFunc(p.Steps, func(s *pipeline.Step) bool { return len(s.DependsOn) > 0 })
	// Dependencies on the automatic clone step and on services are met
	// before any step starts: the clone runs before the steps, and the
	// services are started first (Drone's steps wait for them to start,
	// not to end). The runtime waits only for steps, so they go.
	started := map[string]bool{}
	if !p.Clone.Disable {
		started["clone"] = true
	}
	for _, s := range p.Services {
		started[s.Name] = true
	}
	var prev string
	for _, s := range p.Steps {
		number++
		st, err := newStep(s, number, false)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
		switch {
		case graph:
			st.DependsOn = slices.DeleteFunc(slices.Clone(s.DependsOn), func(d string) bool { return started[d] })
		case prev != "":
			st.DependsOn = []string{prev}
		default:
			st.DependsOn = []string{}
		}
		prev = s.Name
		spec.Steps = append(spec.Steps, st)
	}
	return res, nil
}

// setValue stores one environment or settings value.
func setValue(env map[string]string, key string, v pipeline.Value, secrets map[string]string, res *Result, step string) error {
	if v.Secret != "" {
		val, ok := secrets[v.Secret]
		if !ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("step %q: secret %q (for %s) was not provided; the variable is left unset", step, v.Secret, key))
			return nil
		}
		env[key] = val
		return nil
	}
	env[key] = Encode(v.Raw)
	return nil
}

// Encode renders a YAML value as an environment variable the way Drone
// does for plugin settings: scalars as strings, a list of scalars joined
// with commas, anything else as JSON.
func Encode(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			switch e.(type) {
			case string, bool, int, int64, uint64, float64:
				parts = append(parts, Encode(e))
			default:
				return marshalJSON(v)
			}
		}
		return strings.Join(parts, ",")
	default:
		return marshalJSON(v)
	}
}

func marshalJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// runPolicy derives when a step runs from when.status, as Drone does: no
// status means on success; a status that matches failure and success means
// always; one that matches failure only means on failure.
func runPolicy(s *pipeline.Step) backend.RunPolicy {
	onSuccess, onFailure := s.When.RunsOnSuccess(), s.When.RunsOnFailure()
	switch {
	case onSuccess && onFailure:
		return backend.RunAlways
	case onFailure:
		return backend.RunOnFailure
	case onSuccess:
		return backend.RunOnSuccess
	default:
		return backend.RunNever
	}
}

func stageEnv(p *pipeline.Pipeline, opts Options) map[string]string {
	typ := p.Type
	if typ == "" {
		typ = "docker"
	}
	n := strconv.Itoa(max(opts.Number, 1))
	env := map[string]string{
		"DRONE_STAGE_KIND":       "pipeline",
		"DRONE_STAGE_TYPE":       typ,
		"DRONE_STAGE_NAME":       p.Name,
		"DRONE_STAGE_NUMBER":     n,
		"DRONE_STAGE_OS":         p.Platform.OS,
		"DRONE_STAGE_ARCH":       p.Platform.Arch,
		"DRONE_STAGE_VARIANT":    p.Platform.Variant,
		"DRONE_STAGE_STATUS":     "success",
		"DRONE_STAGE_DEPENDS_ON": strings.Join(p.DependsOn, ","),
		"DRONE_STAGE_STARTED":    unix(time.Time{}),
		"DRONE_STAGE_FINISHED":   unix(time.Time{}),
		"DRONE_STAGE_MACHINE":    opts.Metadata.Build.Instance,
	}
	if env["DRONE_STAGE_OS"] == "" {
		env["DRONE_STAGE_OS"] = "linux"
	}
	if env["DRONE_STAGE_ARCH"] == "" {
		env["DRONE_STAGE_ARCH"] = "amd64"
	}
	out := make(map[string]string, len(env)*2+4)
	for k, v := range env {
		out[k] = v
		out["FERRY_"+strings.TrimPrefix(k, "DRONE_")] = v
	}
	out["CI_WORKFLOW_NAME"] = p.Name
	out["CI_WORKFLOW_NUMBER"] = n
	out["CI_STAGE_NAME"] = p.Name
	out["CI_STAGE_NUMBER"] = n
	return out
}

func workspaceEnv(w backend.Workspace) map[string]string {
	dir := w.Dir()
	return map[string]string{
		"DRONE_WORKSPACE":      dir,
		"DRONE_WORKSPACE_BASE": w.Base,
		"DRONE_WORKSPACE_PATH": w.Path,
		"FERRY_WORKSPACE":      dir,
		"FERRY_WORKSPACE_BASE": w.Base,
		"FERRY_WORKSPACE_PATH": w.Path,
		"CI_WORKSPACE":         dir,
		"CI_WORKSPACE_BASE":    w.Base,
		"CI_WORKSPACE_PATH":    w.Path,
	}
}

func secretList(secrets map[string]string) []string {
	out := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var unsafeID = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// stepID is unique within the run and safe for container names.
func stepID(run string, n int, name string) string {
	s := strings.Trim(unsafeID.ReplaceAllString(strings.ToLower(name), "-"), "-.")
	if len(s) > 40 {
		s = s[:40]
	}
	id := strconv.Itoa(n)
	if s != "" {
		id += "-" + s
	}
	if run != "" {
		id = run + "-" + id
	}
	return id
}

// expandImage adds the ":latest" tag to an untagged image, as Docker would.
func expandImage(image string) string {
	if image == "" || strings.Contains(image, "@") {
		return image
	}
	slash := strings.LastIndex(image, "/")
	if !strings.Contains(image[slash+1:], ":") {
		return image + ":latest"
	}
	return image
}
