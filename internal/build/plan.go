package build

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/metadata"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/store"
)

// Plan is what a new build is made of: its trigger, recorded in Build,
// and the pipeline file at its commit, parsed.
type Plan struct {
	// Repo is the build's repo.
	Repo *store.Repo
	// Build is the build to create: its trigger fields (event, ref,
	// commit, author, ...) are set; Plan.Pipelines sets its status and
	// approval.
	Build *store.Build
	// File is the pipeline file's name, Data its content as read from
	// git, and Config the parsed, ${VAR}-expanded content.
	File   string
	Data   []byte
	Config *pipeline.Config
	// Metadata is the build context that triggers match against.
	Metadata metadata.Metadata
	// Params are a manual build's parameters.
	Params map[string]string
	// CloneURL is where the agents fetch the commit from.
	CloneURL string
}

// ErrNothingToBuild is Pipelines' answer when no pipeline's trigger
// matches the build.
var ErrNothingToBuild = errors.New("no pipeline matches")

// UntrustedError is Pipelines' answer when the repo is not trusted and a
// selected pipeline needs that it be (docs/security.md): the build is
// created in error with the problems, each located in the file.
type UntrustedError struct{ Problems []string }

func (e *UntrustedError) Error() string { return strings.Join(e.Problems, "\n") }

// Pipelines selects the pipelines of p.Config whose trigger matches the
// build and returns them, with their steps and one job each, ready for
// Create. The rules: a pipeline waits (blocked) for the pipelines it
// depends on among those selected; a pull request from a fork waits for
// an approval, all of it; an untrusted repo's pipelines may not run on
// the host or widen their container's reach (an UntrustedError). It sets
// b's status and approval accordingly.
func (p *Plan) Pipelines() ([]*store.Pipeline, error) {
	b := p.Build
	var selected []*pipeline.Pipeline
	numbers := map[string]int{}
	for i, pl := range p.Config.Pipelines {
		if compiler.Match(pl, &p.Metadata) {
			selected = append(selected, pl)
			numbers[pl.Name] = i + 1
		}
	}
	if len(selected) == 0 {
		return nil, ErrNothingToBuild
	}
	if !p.Repo.Trusted {
		// The agent checks this again before it runs anything; here the
		// build shows why at once.
		var problems []string
		for _, pl := range selected {
			var te *compiler.TrustError
			if err := compiler.CheckTrust(pl, JobLabels(pl)["backend"], ""); errors.As(err, &te) {
				problems = append(problems, te.Located(p.File)...)
			}
		}
		if len(problems) > 0 {
			return nil, &UntrustedError{Problems: problems}
		}
	}
	b.Status = store.StatusPending
	if b.Fork {
		b.Approval = store.ApprovalPending
		b.Status = store.StatusBlocked
	}
	pls := make([]*store.Pipeline, 0, len(selected))
	for _, pl := range selected {
		var deps []string
		for _, d := range pl.DependsOn {
			if _, ok := numbers[d]; ok {
				deps = append(deps, d)
			}
		}
		payload, err := json.Marshal(&JobPayload{
			Pipeline: pl.Name, Number: numbers[pl.Name], ConfigFile: p.File, Config: string(p.Data), Metadata: p.Metadata,
			Params: p.Params, CloneURL: p.CloneURL, CloneDisable: pl.Clone.Disable, CloneDepth: pl.Clone.Depth,
			OnSuccess: pl.Trigger.RunsOnSuccess(), OnFailure: pl.Trigger.RunsOnFailure(),
		})
		if err != nil {
			return nil, fmt.Errorf("encoding job: %w", err)
		}
		status := store.StatusPending
		if len(deps) > 0 || b.Approval == store.ApprovalPending {
			status = store.StatusBlocked
		}
		sp := &store.Pipeline{Name: pl.Name, Status: status, DependsOn: deps,
			Job: &store.Job{RepoID: p.Repo.ID, Status: status, Labels: JobLabels(pl), Payload: payload}}
		for _, st := range append(append([]*pipeline.Step(nil), pl.Services...), pl.Steps...) {
			sp.Steps = append(sp.Steps, &store.Step{Name: st.Name, Status: store.StatusPending})
		}
		pls = append(pls, sp)
	}
	return pls, nil
}

// JobLabels are the labels an agent needs to run p: its node labels, the
// backend its type runs on, and its platform when the pipeline names one.
func JobLabels(p *pipeline.Pipeline) map[string]string {
	labels := maps.Clone(p.Node)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["backend"] = p.Type // no agent offers it; the build waits
	if name, ok := backend.ForType(p.Type); ok {
		labels["backend"] = name
	}
	if p.Platform.OS != "" || p.Platform.Arch != "" {
		labels["platform"] = cmp.Or(p.Platform.OS, "linux") + "/" + cmp.Or(p.Platform.Arch, "amd64")
	}
	return labels
}
