package pipeline

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/bmatcuk/doublestar/v4"
)

// events are the build events Drone knows, and the values "event"
// conditions may name.
var events = []string{"push", "pull_request", "tag", "promote", "rollback", "cron", "custom"}

// statuses are the values "status" conditions may name.
var statuses = []string{"success", "failure"}

var pullPolicies = []string{"always", "if-not-exists", "never"}

// reservedVolumes are volume names Drone keeps for itself.
var reservedVolumes = []string{"workspace", "_workspace", "_docker_socket"}

// Validate checks a Config for problems that involve more than one value,
// or a value with a fixed set of choices: missing and duplicate names,
// dependencies on steps or pipelines that do not exist, dependency cycles,
// steps without an image in docker pipelines, undeclared volumes, pull and
// failure policies, timeouts, and condition patterns, events and statuses.
//
// Parse calls Validate; call it yourself for a Config built or changed in
// code. Errors point at the exact value when the Config came from Parse,
// and at the enclosing pipeline, step or volume otherwise.
func Validate(c *Config) Errors {
	v := &validator{file: c.File, pos: c.pos}
	v.pipelines(c.Pipelines)
	for _, p := range c.Pipelines {
		v.pipeline(p)
	}
	return v.errs.sorted()
}

type validator struct {
	file string
	pos  *positions
	errs Errors
}

func (v *validator) errorAt(pos Pos, key, format string, args ...any) {
	v.errs = append(v.errs, &Error{
		File:   v.file,
		Line:   pos.Line,
		Column: pos.Column,
		Key:    key,
		Msg:    fmt.Sprintf(format, args...),
	})
}

// warnAt records a warning: something Drone tolerates (see Error.Warning).
func (v *validator) warnAt(pos Pos, key, format string, args ...any) {
	v.errorAt(pos, key, format, args...)
	v.errs[len(v.errs)-1].Warning = true
}

// pipelineName is the name Drone gives a pipeline: "default" when unnamed.
func pipelineName(p *Pipeline) string {
	if p.Name == "" {
		return "default"
	}
	return p.Name
}

// controlChar returns the first control character in s (NUL, a line break,
// a tab, an escape, DEL), or -1 when there is none. Such a name fails at
// run time (a NUL cannot be passed to a process) or garbles a terminal.
func controlChar(s string) rune {
	for _, r := range s {
		if unicode.IsControl(r) {
			return r
		}
	}
	return -1
}

// pipelines checks names and dependencies between pipelines.
func (v *validator) pipelines(ps []*Pipeline) {
	byName := map[string]*Pipeline{}
	var order []string
	for _, p := range ps {
		name := pipelineName(p)
		if c := controlChar(name); c >= 0 {
			v.errorAt(v.pos.get(p, "name", 0, p.Pos), "name",
				"pipeline name %q contains the control character %U; names must be printable text (letters, digits, punctuation, spaces)", name, c)
		}
		if first, dup := byName[name]; dup {
			hint := ""
			if name == "default" {
				hint = ` (a pipeline without a name is called "default")`
			}
			v.errorAt(v.pos.get(p, "name", 0, p.Pos), "name",
				"duplicate pipeline name %q%s, first used at line %d; pipeline names must be unique in a file", name, hint, first.Pos.Line)
			continue
		}
		byName[name] = p
		order = append(order, name)
	}
	deps := map[string][]string{}
	for _, p := range ps {
		name := pipelineName(p)
		for i, dep := range p.DependsOn {
			at := v.pos.get(p, "depends_on", i, p.Pos)
			key := index("depends_on", i)
			switch {
			case dep == name:
				v.errorAt(at, key, "pipeline %q depends on itself; remove %q from its depends_on", name, dep)
			case byName[dep] == nil:
				// Drone's server ignores a dependency on a pipeline that is
				// not in the file (it is treated as finished).
				v.warnAt(at, key, "pipeline %q depends on %q, which is not a pipeline in this file, so the dependency is ignored (as Drone does); %s",
					name, dep, choices(dep, "pipelines are", order))
			default:
				if byName[name] == p {
					deps[name] = append(deps[name], dep)
				}
			}
		}
	}
	for _, c := range findCycles(order, deps) {
		p := byName[c.from]
		v.errorAt(v.pos.get(p, "depends_on", slices.Index(p.DependsOn, c.to), p.Pos),
			index("depends_on", slices.Index(p.DependsOn, c.to)),
			"dependency cycle between pipelines: %s", strings.Join(c.path, " -> "))
	}
}

// member is a step or a service with its place in the pipeline.
type member struct {
	step *Step
	kind string // "step" or "service"
	key  string // "steps[2]"
}

func (m member) label() string {
	if m.step.Name == "" {
		return "unnamed " + m.kind
	}
	return fmt.Sprintf("%s %q", m.kind, m.step.Name)
}

func (v *validator) pipeline(p *Pipeline) {
	vols := v.volumes(p)

	var members []member
	for i, s := range p.Services {
		members = append(members, member{s, "service", index("services", i)})
	}
	for i, s := range p.Steps {
		members = append(members, member{s, "step", index("steps", i)})
	}

	// Names: steps and services share one namespace. Drone adds a step
	// called "clone" unless cloning is disabled, and steps may depend on it.
	byName := map[string]member{}
	var order []string
	if !p.Clone.Disable {
		order = append(order, "clone")
	}
	for _, m := range members {
		s := m.step
		at := v.pos.get(s, "name", 0, s.Pos)
		switch {
		case s.Name == "":
			if !v.pos.isBad(s, "name") {
				v.errorAt(s.Pos, m.key, "%s has no name; every step and service needs a name that is unique in its pipeline", m.kind)
			}
		case controlChar(s.Name) >= 0:
			v.errorAt(at, join(m.key, "name"), "%s name %q contains the control character %U; names must be printable text (letters, digits, punctuation, spaces)",
				m.kind, s.Name, controlChar(s.Name))
		case s.Name == "clone" && !p.Clone.Disable:
			v.errorAt(at, join(m.key, "name"), `%s name "clone" is taken by the automatic clone step; rename the %s or set clone.disable: true`, m.kind, m.kind)
		default:
			if first, dup := byName[s.Name]; dup {
				v.errorAt(at, join(m.key, "name"),
					"duplicate name %q: the %s at line %d has it already; steps and services share one namespace and names must be unique in a pipeline",
					s.Name, first.kind, first.step.Pos.Line)
				continue
			}
			byName[s.Name] = m
			order = append(order, s.Name)
		}
	}

	for _, m := range members {
		v.step(p, m, vols)
	}

	// Dependencies between steps.
	deps := map[string][]string{}
	for _, m := range members {
		s := m.step
		for i, dep := range s.DependsOn {
			at := v.pos.get(s, "depends_on", i, s.Pos)
			key := index(join(m.key, "depends_on"), i)
			_, exists := byName[dep]
			switch {
			case dep == s.Name:
				v.errorAt(at, key, "%s depends on itself; remove %q from its depends_on", m.label(), dep)
			case dep == "clone" && !p.Clone.Disable:
			case !exists:
				v.errorAt(at, key, "%s depends on %q, which is not a step or service of pipeline %q; %s",
					m.label(), dep, pipelineName(p), choices(dep, "valid names are", order))
			default:
				if s.Name != "" && byName[s.Name].step == s {
					deps[s.Name] = append(deps[s.Name], dep)
				}
			}
		}
	}
	for _, c := range findCycles(order, deps) {
		m := byName[c.from]
		i := slices.Index(m.step.DependsOn, c.to)
		v.errorAt(v.pos.get(m.step, "depends_on", i, m.step.Pos), index(join(m.key, "depends_on"), i),
			"dependency cycle between steps: %s", strings.Join(c.path, " -> "))
	}

	v.conditions(&p.Trigger, "trigger", "trigger", p.Pos)
}

// volumes checks the pipeline's volumes and returns them by name.
func (v *validator) volumes(p *Pipeline) map[string]*Volume {
	vols := map[string]*Volume{}
	for i, vol := range p.Volumes {
		key := index("volumes", i)
		switch {
		case vol.Name == "":
			v.errorAt(vol.Pos, key, "volume has no name; steps mount volumes by name")
		case slices.Contains(reservedVolumes, vol.Name):
			v.errorAt(vol.Pos, join(key, "name"), "volume name %q is reserved; choose another name", vol.Name)
		case vols[vol.Name] != nil:
			v.errorAt(vol.Pos, join(key, "name"), "duplicate volume name %q, first declared at line %d; volume names must be unique in a pipeline", vol.Name, vols[vol.Name].Pos.Line)
		default:
			vols[vol.Name] = vol
		}
		label := "volume"
		if vol.Name != "" {
			label = fmt.Sprintf("volume %q", vol.Name)
		}
		if p.Type != TypeDocker && p.Type != TypeExec && p.Type != "" {
			continue // other runners have other volume kinds (claim, config_map)
		}
		switch {
		case vol.Host == nil && vol.Temp == nil:
			if !v.pos.isBad(vol, "source") {
				v.warnAt(vol.Pos, key, "%s has neither host: {path: ...} nor temp: {}, so Drone does not create it and steps that mount it get nothing; give it one of them", label)
			}
		case vol.Host != nil && vol.Temp != nil:
			v.warnAt(vol.Pos, key, "%s has both host and temp, so it is a temp volume (as in Drone); keep one", label)
		case vol.Host != nil && vol.Host.Path == "":
			v.errorAt(vol.Pos, join(key, "host.path"), "%s needs host.path, the directory on the host to mount", label)
		case vol.Host != nil && !isAbs(p, vol.Host.Path):
			v.errorAt(v.pos.get(vol, "host.path", 0, vol.Pos), join(key, "host.path"), "%s: host.path must be an absolute path, got %q", label, vol.Host.Path)
		case vol.Temp != nil && vol.Temp.Medium != "" && vol.Temp.Medium != "memory":
			v.warnAt(v.pos.get(vol, "temp.medium", 0, vol.Pos), join(key, "temp.medium"), `%s: unknown temp.medium %q, so the volume is a directory on disk (as Drone does); write "memory" for a tmpfs or leave it out`, label, vol.Temp.Medium)
		}
	}
	return vols
}

// isAbs reports whether p is absolute on the pipeline's platform.
func isAbs(pl *Pipeline, p string) bool {
	if strings.EqualFold(pl.Platform.OS, "windows") {
		return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') || strings.HasPrefix(p, `\\`)
	}
	return path.IsAbs(p)
}

func (v *validator) step(p *Pipeline, m member, vols map[string]*Volume) {
	s := m.step
	if p.Type == TypeDocker || p.Type == "" {
		if s.Image == "" && !v.pos.isBad(s, "image") {
			if len(s.Commands) > 0 {
				v.errorAt(s.Pos, m.key, "%s has commands but no image; docker pipelines need an image for every step", m.label())
			} else {
				v.errorAt(s.Pos, m.key, "%s has no image; docker pipelines need an image for every step and service", m.label())
			}
		}
	}
	// Drone takes any other pull or failure value as the default policy;
	// "pull: default" is its own name for it.
	if s.Pull != "" && s.Pull != "default" && !slices.Contains(pullPolicies, s.Pull) {
		v.warnAt(v.pos.get(s, "pull", 0, s.Pos), join(m.key, "pull"), "unknown pull policy %q, so the default applies (pull when the image is missing); %s", s.Pull, choices(s.Pull, "valid values are", pullPolicies))
	}
	switch s.Failure {
	case "", "ignore", "fail-fast", "fast", "fast-fail":
	default:
		v.warnAt(v.pos.get(s, "failure", 0, s.Pos), join(m.key, "failure"),
			`unknown failure policy %q, so a failure of this step fails the pipeline; valid values are: ignore, fail-fast (or leave it out)`, s.Failure)
	}
	// timeout is ferry's extension, a key Drone ignores: a value ferry
	// cannot use is ignored too, with a warning, so that a Drone file that
	// happens to have one still runs.
	if s.Timeout != "" {
		at := v.pos.get(s, "timeout", 0, s.Pos)
		d, err := time.ParseDuration(s.Timeout)
		switch {
		case err != nil:
			v.warnAt(at, join(m.key, "timeout"), `invalid timeout %q is ignored; use a duration such as "90s", "10m" or "1h30m"`, s.Timeout)
		case d <= 0:
			v.warnAt(at, join(m.key, "timeout"), "timeout %q is not longer than zero and is ignored; leave it out for no limit", s.Timeout)
		}
	}
	declared := slices.Sorted(func(yield func(string) bool) {
		for name := range vols {
			if !yield(name) {
				return
			}
		}
	})
	for i, mnt := range s.Volumes {
		at := v.pos.get(s, "volumes", i, s.Pos)
		key := index(join(m.key, "volumes"), i)
		switch {
		case mnt.Name == "":
			v.errorAt(at, key, "volume mount of %s has no name; name one of the pipeline's volumes", m.label())
		case slices.Contains(reservedVolumes, mnt.Name):
			v.errorAt(at, join(key, "name"), "%s mounts volume %q, a name Drone reserves for itself; mount one of the pipeline's own volumes", m.label(), mnt.Name)
		case vols[mnt.Name] == nil:
			v.warnAt(at, join(key, "name"), "%s mounts volume %q, which the pipeline does not declare, so the mount is skipped (as Drone does); %s", m.label(), mnt.Name, volumeChoices(mnt.Name, declared))
		}
		switch {
		case mnt.Path == "":
			v.errorAt(at, key, "volume mount %q of %s has no path; give the directory inside the container", mnt.Name, m.label())
		case !isAbs(p, mnt.Path):
			v.errorAt(at, join(key, "path"), "volume mount %q of %s: path must be absolute, got %q", mnt.Name, m.label(), mnt.Path)
		}
	}
	for i, dev := range s.Devices {
		at := v.pos.get(s, "devices", i, s.Pos)
		key := index(join(m.key, "devices"), i)
		switch {
		case dev.Name == "":
			v.errorAt(at, key, "device of %s has no name; name one of the pipeline's host volumes", m.label())
		case vols[dev.Name] == nil:
			v.errorAt(at, join(key, "name"), "%s maps device volume %q, which the pipeline does not declare; %s", m.label(), dev.Name, volumeChoices(dev.Name, declared))
		case vols[dev.Name].Host == nil:
			// As in Drone: the device is the host volume's host.path; a
			// temp volume's name is no path on the host.
			v.errorAt(at, join(key, "name"), "%s maps device volume %q, which is not a host volume; declare it as {name: %s, host: {path: /dev/...}}", m.label(), dev.Name, dev.Name)
		}
		if dev.Path == "" {
			v.errorAt(at, key, "device %q of %s has no path; give the device path inside the container", dev.Name, m.label())
		}
	}
	v.conditions(&s.When, m.kind+".when", join(m.key, "when"), s.Pos)
}

func volumeChoices(name string, declared []string) string {
	if len(declared) == 0 {
		return `the pipeline declares no volumes (add it under the pipeline's "volumes" with host or temp)`
	}
	return choices(name, "declared volumes are", declared)
}

// conditions checks the patterns of a "when" or "trigger" block.
func (v *validator) conditions(c *Conditions, what, key string, fallback Pos) {
	for i := range c.Any {
		v.conditions(&c.Any[i], what+".any", index(join(key, "any"), i), fallback)
	}
	for _, nc := range []struct {
		name string
		c    *Condition
	}{
		{"branch", &c.Branch}, {"event", &c.Event}, {"ref", &c.Ref},
		{"repo", &c.Repo}, {"status", &c.Status}, {"target", &c.Target},
		{"cron", &c.Cron}, {"action", &c.Action}, {"instance", &c.Instance},
		{"paths", &c.Paths},
	} {
		for _, list := range []struct {
			field    string
			patterns []string
		}{{"include", nc.c.Include}, {"exclude", nc.c.Exclude}} {
			for i, pat := range list.patterns {
				at := v.pos.get(nc.c, list.field, i, fallback)
				k := join(key, nc.name)
				if !doublestar.ValidatePattern(pat) {
					// Drone's matcher fails on it, so it never matches.
					v.warnAt(at, k, "invalid pattern %q in %s.%s never matches; check its brackets and braces (patterns are globs such as \"feature/*\")", pat, what, nc.name)
					continue
				}
				switch nc.name {
				case "event":
					if !matchesAny(pat, events) {
						v.warnAt(at, k, "unknown event %q in %s never matches; %s", pat, what, choices(pat, "valid events are", events))
					}
				case "status":
					if !matchesAny(pat, statuses) {
						v.warnAt(at, k, "unknown status %q in %s never matches; %s", pat, what, choices(pat, "valid values are", statuses))
					}
				}
			}
		}
	}
}

// matchesAny reports whether the pattern names at least one of values.
func matchesAny(pattern string, values []string) bool {
	for _, val := range values {
		if ok, _ := doublestar.Match(pattern, val); ok {
			return true
		}
	}
	return false
}

// choices words the list of valid values, suggesting the closest one.
func choices(got, intro string, valid []string) string {
	msg := ""
	if s := closest(got, valid); s != "" {
		msg = fmt.Sprintf("did you mean %q? ", s)
	}
	if len(valid) == 0 {
		return msg + "there are none"
	}
	// A long list helps nobody and, repeated in every message, makes the
	// output grow with the square of the file.
	const maxListed = 20
	if len(valid) > maxListed {
		return fmt.Sprintf("%s%s: %s and %d more", msg, intro, strings.Join(valid[:maxListed], ", "), len(valid)-maxListed)
	}
	return msg + intro + ": " + strings.Join(valid, ", ")
}

// cycle is one dependency cycle: path lists the names along it, the first
// repeated at the end; from depends on to in the edge that closes it.
type cycle struct {
	path     []string
	from, to string
}

// findCycles finds the dependency cycles of a graph given as each node's
// dependencies, walking the nodes in order so that the result is stable.
// Each cycle is reported once, at the edge that closes it.
func findCycles(order []string, deps map[string][]string) []cycle {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var out []cycle
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := slices.Index(stack, d)
				path := append(slices.Clone(stack[i:]), d)
				out = append(out, cycle{path: path, from: n, to: d})
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, n := range order {
		if color[n] == white {
			visit(n)
		}
	}
	return out
}
