package compiler

import (
	"fmt"
	"strings"

	"github.com/ferryci/ferry/internal/pipeline"
)

// RepoTrustHint is what a server and an agent say an untrusted pipeline
// needs (docs/security.md, "Trust model").
const RepoTrustHint = "a trusted repository (an administrator marks it with ferry repo update --trusted)"

// ExecTrustHint is what ferry exec says: there the person running it
// decides, with --trusted.
const ExecTrustHint = "a trusted run (--trusted)"

// TrustError lists what an untrusted pipeline asked for that only a
// trusted one may do. Each problem names the pipeline, the step and the
// rule; Pos is where the pipeline, volume or step that asks for it starts.
type TrustError struct {
	Problems []string
	Pos      []pipeline.Pos
}

func (e *TrustError) Error() string { return strings.Join(e.Problems, "\n") }

// Located returns the problems as file:line:col: message, the way
// ferry lint reports problems.
func (e *TrustError) Located(file string) []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = fmt.Sprintf("%s:%d:%d: %s", file, e.Pos[i].Line, e.Pos[i].Column, p)
	}
	return out
}

// CheckTrust returns a *TrustError when pipeline p, run on backend
// ("docker" or "local"), does something that only a trusted pipeline may:
// run on the host (the local backend), mount a host volume, run a
// privileged step, map a device or choose a step's network_mode. It
// returns nil when p does none of these. hint says what is needed, e.g.
// RepoTrustHint; empty means RepoTrustHint. The server checks this when it
// creates a build and the agent (through Compile) before it runs one, so
// neither alone decides.
func CheckTrust(p *pipeline.Pipeline, backend, hint string) error {
	if hint == "" {
		hint = RepoTrustHint
	}
	e := &TrustError{}
	add := func(at pipeline.Pos, format string, args ...any) {
		e.Problems = append(e.Problems, fmt.Sprintf("pipeline %q: ", p.Name)+fmt.Sprintf(format, args...)+" needs "+hint)
		e.Pos = append(e.Pos, at)
	}
	if backend == "local" {
		if p.Type == pipeline.TypeExec {
			add(p.Pos, "type: exec runs its steps as processes on the agent's host, which")
		} else {
			add(p.Pos, "running on the host (the local backend)")
		}
	}
	for _, v := range p.Volumes {
		if v.Host != nil {
			add(v.Pos, "volume %q mounts host path %s, which", v.Name, v.Host.Path)
		}
	}
	for _, s := range append(append([]*pipeline.Step(nil), p.Services...), p.Steps...) {
		if s.Privileged {
			add(s.Pos, "step %q is privileged, which", s.Name)
		}
		if len(s.Devices) > 0 {
			add(s.Pos, "step %q maps host devices, which", s.Name)
		}
		if s.NetworkMode != "" {
			add(s.Pos, "step %q: network_mode", s.Name)
		}
	}
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}
