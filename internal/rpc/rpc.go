// Package rpc is the contract between the server and its agents: the JSON
// messages of the agent endpoints and an HTTP client for them. Agents
// depend on this package only, never on the server or the store.
//
// Every call carries the agent's token as "Authorization: Bearer TOKEN".
// An agent token is good for these endpoints and nothing else.
//
// The protocol is at-least-once and idempotent: an agent re-sends anything
// that was not acknowledged (a 2xx answer), and the server ignores what it
// already has (log lines by sequence number, step updates by state).
package rpc

import (
	"time"

	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/metadata"
)

// Endpoint paths. {id} is a job id.
const (
	PathLease    = "/api/agent/lease"
	PathExtend   = "/api/agent/jobs/{id}/extend"
	PathStep     = "/api/agent/jobs/{id}/steps"
	PathLogs     = "/api/agent/jobs/{id}/logs"
	PathComplete = "/api/agent/jobs/{id}/complete"
	PathReport   = "/api/agent/jobs/{id}/report"
)

// LeaseRequest asks for a job. The server holds the request open (long
// poll) until a job matches or Wait passes, and then answers 204.
type LeaseRequest struct {
	// Name identifies the agent in the UI and in metrics.
	Name string `json:"name"`
	// Labels describe the agent; a job runs only on an agent with every
	// label the job requires. The agent always sends platform
	// ("os/arch") and backend ("docker" or "local") labels.
	Labels map[string]string `json:"labels"`
	// Capacity is how many jobs the agent runs at once.
	Capacity int `json:"capacity"`
	// Wait is how long the server may hold the request; the server caps it.
	Wait time.Duration `json:"wait"`
}

// Job is a leased job: everything an agent needs to run one pipeline.
type Job struct {
	ID int64 `json:"id"`
	// LeaseToken proves the lease in every later call about the job.
	LeaseToken string `json:"lease_token"`
	// LeaseTTL is how long the lease lasts unless extended.
	LeaseTTL time.Duration `json:"lease_ttl"`
	BuildID  int64         `json:"build_id"`
	// Pipeline is the name of the pipeline to run in Config.
	Pipeline string `json:"pipeline"`
	// Number is the pipeline's position in the config (1-based).
	Number int `json:"number"`
	// ConfigFile is the config's file name, for messages.
	ConfigFile string `json:"config_file"`
	// Config is the whole config file, already ${VAR}-expanded.
	Config string `json:"config"`
	// Metadata is the build context (repo, commit, trigger).
	Metadata metadata.Metadata `json:"metadata"`
	// Secrets are the secrets this job may see: already filtered by event,
	// and empty for pull requests from forks unless a secret allows them.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Env is extra environment for every step: a manual build's
	// parameters.
	Env map[string]string `json:"env,omitempty"`
	// Trusted allows what only a trusted repo may do (compiler.CheckTrust):
	// host execution, privileged steps, host volumes, devices, network_mode.
	Trusted bool `json:"trusted"`
	// Timeout bounds the whole pipeline; zero means the agent's default.
	Timeout time.Duration `json:"timeout"`
	// Clone says how to get the source.
	Clone Clone `json:"clone"`
}

// Clone describes the checkout an agent makes before the steps run.
type Clone struct {
	// Disable skips the checkout (clone: disable: true).
	Disable bool `json:"disable"`
	// URL is the git URL to fetch from.
	URL string `json:"url"`
	// Ref is fetched; SHA is checked out.
	Ref   string `json:"ref"`
	SHA   string `json:"sha"`
	Depth int    `json:"depth"`
	// Credential, when set, is what git authenticates with to fetch URL:
	// the repo's HTTPS token or SSH deploy key. The agent hands it to git
	// only (see package gitauth), never to the steps.
	Credential *gitauth.Credential `json:"credential,omitempty"`
}

// ExtendRequest renews a lease.
type ExtendRequest struct {
	LeaseToken string `json:"lease_token"`
}

// ExtendResponse answers ExtendRequest.
type ExtendResponse struct {
	Expires time.Time `json:"expires"`
	// Cancel is set when the job was cancelled through the API: the agent
	// stops it and completes it as killed.
	Cancel bool `json:"cancel"`
}

// StepUpdate reports a step's state. Updates may be re-sent; the server
// never moves a finished step back.
type StepUpdate struct {
	LeaseToken string    `json:"lease_token"`
	Step       string    `json:"step"`
	Status     string    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	Error      string    `json:"error,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
}

// LogBatch carries consecutive log lines of one step. Seq is the sequence
// number of the first line (0-based, per step); the server drops lines it
// already has, so a batch may be re-sent.
type LogBatch struct {
	LeaseToken string   `json:"lease_token"`
	Step       string   `json:"step"`
	Seq        int64    `json:"seq"`
	Lines      []string `json:"lines"`
}

// CompleteRequest ends a job.
type CompleteRequest struct {
	LeaseToken string `json:"lease_token"`
	// Status is success, failure, killed or error.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Report carries several reports about one job in one request: step
// updates and log batches, applied in the order of Items, and optionally
// the job's completion, applied after them. Agents send it when more than
// one report is queued, which cuts the requests of a short job from four
// to one. Like every report it may be re-sent: the server ignores step
// updates it already has and log lines by sequence number, and answers
// 409 when Complete was already applied (the lease ended with it).
type Report struct {
	LeaseToken string       `json:"lease_token"`
	Items      []ReportItem `json:"items"`
	// Complete, when set, ends the job after every item was applied. Its
	// LeaseToken may be left empty; the report's is used.
	Complete *CompleteRequest `json:"complete,omitempty"`
}

// ReportItem is one entry of a Report: exactly one of Step and Logs is
// set. Their LeaseToken fields may be left empty; the report's is used.
type ReportItem struct {
	Step *StepUpdate `json:"step,omitempty"`
	Logs *LogBatch   `json:"logs,omitempty"`
}
