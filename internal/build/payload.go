package build

import (
	"encoding/json"
	"fmt"

	"github.com/ferryci/ferry/internal/metadata"
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
