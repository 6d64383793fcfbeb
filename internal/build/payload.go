package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/metadata"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/store"
)

// JobPayload is what a job carries for its lease (store.Job.Payload). It
// holds no secret: secrets are resolved when the job is leased. The config
// is kept as read from git and ${VAR}-expanded at lease time, when the
// build's number is known.
type JobPayload struct {
	// Pipeline is the pipeline's name, Number its 1-based position in the
	// config file.
	Pipeline   string `json:"pipeline"`
	Number     int    `json:"number"`
	ConfigFile string `json:"config_file"`
	Config     string `json:"config"`
	// Metadata is the build context; Build.Number, Parent, Created and
	// Started are filled in at lease time.
	Metadata metadata.Metadata `json:"metadata"`
	// Params are a manual build's parameters, also available to ${VAR}
	// substitution.
	Params map[string]string `json:"params,omitempty"`
	// CloneURL is where the agent fetches the commit from.
	CloneURL     string `json:"clone_url"`
	CloneDisable bool   `json:"clone_disable,omitempty"`
	CloneDepth   int    `json:"clone_depth,omitempty"`
	// OnSuccess and OnFailure say whether the pipeline runs when its
	// dependencies passed, or when one failed (trigger.status).
	OnSuccess bool `json:"on_success"`
	OnFailure bool `json:"on_failure"`
}

// DecodePayload decodes job j's payload.
func DecodePayload(j *store.Job) (*JobPayload, error) {
	var p JobPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return nil, fmt.Errorf("decoding payload of job %d: %w", j.ID, err)
	}
	return &p, nil
}

// ExpandConfig returns the pipeline file as the agent receives it: the
// file as read from git, ${VAR}-expanded with the build's variables and
// the manual build's parameters.
func ExpandConfig(p *JobPayload) (string, error) {
	env := compiler.Environ(&p.Metadata)
	maps.Copy(env, p.Params)
	out, err := pipeline.Expand([]byte(p.Config), env)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.ConfigFile, err)
	}
	return string(out), nil
}

// TrustProblems returns, as FILE:LINE:COL: message, what the pipeline of
// a stored job's payload does that only a trusted repository may
// (compiler.CheckTrust), or nothing when it does none of it. A payload
// that no longer parses has no problems here: the agent reports it.
func TrustProblems(payload []byte) []string {
	var p JobPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil
	}
	data, err := ExpandConfig(&p)
	if err != nil {
		return nil
	}
	cfg, err := pipeline.Parse(p.ConfigFile, []byte(data))
	if err != nil {
		return nil
	}
	for _, pl := range cfg.Pipelines {
		var te *compiler.TrustError
		if pl.Name == p.Pipeline && errors.As(compiler.CheckTrust(pl, JobLabels(pl)["backend"], ""), &te) {
			return te.Located(p.ConfigFile)
		}
	}
	return nil
}
