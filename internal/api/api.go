// Package api defines the JSON types of ferry's HTTP API once: the server
// writes and reads them, and internal/apiclient (the CLI's client) reads
// and writes them. The OpenAPI document (internal/server/openapi.json)
// describes them, and its test checks every schema against these types'
// fields.
package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("90s", "1h0m0s"), as the API writes durations.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string: %w", err)
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parsing duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// String returns the duration in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// Status is the state of a build, pipeline, step or job: the domain's
// statuses, written as they are stored (store.Status.Done tells the final
// ones).
type Status = store.Status

// The statuses the API reports.
const (
	StatusBlocked  = store.StatusBlocked
	StatusPending  = store.StatusPending
	StatusRunning  = store.StatusRunning
	StatusSuccess  = store.StatusSuccess
	StatusFailure  = store.StatusFailure
	StatusError    = store.StatusError
	StatusKilled   = store.StatusKilled
	StatusSkipped  = store.StatusSkipped
	StatusDeclined = store.StatusDeclined
)

// User is a user account (schema User).
type User struct {
	ID      int64     `json:"id"`
	Login   string    `json:"login"`
	Email   string    `json:"email"`
	Admin   bool      `json:"admin"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// UserRequest creates or changes a user (schema UserRequest); nil fields
// are left out.
type UserRequest struct {
	Login *string `json:"login,omitempty"`
	Email *string `json:"email,omitempty"`
	Admin *bool   `json:"admin,omitempty"`
}

// Token is an API token (schema Token). Token, the secret string, is only
// set in the answer that creates it.
type Token struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	User     string    `json:"user,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Token    string    `json:"token,omitempty"`
}

// TokenRequest creates a token (schema TokenRequest).
type TokenRequest struct {
	// Name describes the token; it is required.
	Name string `json:"name"`
	// ExpiresIn limits the token's life; zero means it never expires.
	ExpiresIn Duration `json:"expires_in,omitzero"`
}

// Repo is a repository ferry builds (schema Repo). WebhookSecret is only
// set in the answers that create the repo or change the secret.
type Repo struct {
	ID            int64     `json:"id"`
	Slug          string    `json:"slug"`
	GitURL        string    `json:"git_url"`
	Forge         string    `json:"forge"`
	DefaultBranch string    `json:"default_branch"`
	ConfigPath    string    `json:"config_path"`
	PollInterval  Duration  `json:"poll_interval"`
	Trusted       bool      `json:"trusted"`
	Timeout       Duration  `json:"timeout"`
	Active        bool      `json:"active"`
	BuildCounter  int64     `json:"build_counter"`
	WebhookURL    string    `json:"webhook_url"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	WebhookSecret string    `json:"webhook_secret,omitempty"`
	Role          string    `json:"role,omitempty"`
	// WebhookEvents are the events to tick in the forge's webhook
	// settings, by the names the forge gives them.
	WebhookEvents []string `json:"webhook_events,omitempty"`
	// Credential says whether the repo has a git credential; it is only
	// in the answers about one repo.
	Credential *Credential `json:"credential,omitempty"`
	// Warnings are problems with the repo's setup, in the answers that
	// create or change it.
	Warnings []string `json:"warnings,omitempty"`
}

// Credential describes a repo's git credential (schema Credential); the
// secret part is write-only.
type Credential struct {
	Set      bool   `json:"set"`
	Kind     string `json:"kind,omitempty"`
	Username string `json:"username,omitempty"`
}

// CredentialRequest sets a repo's git credential (schema
// CredentialRequest): a username with a password or access token, or an
// SSH private key with, optionally, the known_hosts lines of its server.
type CredentialRequest struct {
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	SSHKey     string `json:"ssh_key,omitempty"`
	KnownHosts string `json:"known_hosts,omitempty"`
}

// RepoRequest adds or changes a repo (schema RepoRequest); nil fields are
// left out, so that an update changes only the fields given.
type RepoRequest struct {
	GitURL        *string   `json:"git_url,omitempty"`
	Slug          *string   `json:"slug,omitempty"`
	Forge         *string   `json:"forge,omitempty"`
	WebhookSecret *string   `json:"webhook_secret,omitempty"`
	PollInterval  *Duration `json:"poll_interval,omitempty"`
	ConfigPath    *string   `json:"config_path,omitempty"`
	Trusted       *bool     `json:"trusted,omitempty"`
	Timeout       *Duration `json:"timeout,omitempty"`
	DefaultBranch *string   `json:"default_branch,omitempty"`
	Active        *bool     `json:"active,omitempty"`
	// Credential sets the repo's git credential.
	Credential *CredentialRequest `json:"credential,omitempty"`
}

// Secret describes a secret (schema Secret); its value is write-only and
// never part of an answer.
type Secret struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Repo is the repo's slug, or empty for a global secret.
	Repo             string    `json:"repo,omitempty"`
	Events           []string  `json:"events"`
	AllowPullRequest bool      `json:"allow_pull_request"`
	Created          time.Time `json:"created"`
	Updated          time.Time `json:"updated"`
}

// SecretRequest creates or changes a secret (schema SecretRequest); nil
// fields are left out.
type SecretRequest struct {
	Name  *string `json:"name,omitempty"`
	Value *string `json:"value,omitempty"`
	// Events limits the secret to builds of these events; empty means all.
	Events           *[]string `json:"events,omitempty"`
	AllowPullRequest *bool     `json:"allow_pull_request,omitempty"`
}

// Build is one trigger of one commit (schemas Build and BuildDetail).
// Pipelines are only set in the answers about one build.
type Build struct {
	ID           int64             `json:"id"`
	Repo         string            `json:"repo"`
	Number       int64             `json:"number"`
	Parent       int64             `json:"parent,omitempty"`
	Event        string            `json:"event"`
	Ref          string            `json:"ref"`
	Branch       string            `json:"branch"`
	SourceBranch string            `json:"source_branch,omitempty"`
	Commit       string            `json:"commit"`
	Before       string            `json:"before,omitempty"`
	Message      string            `json:"message"`
	Author       string            `json:"author"`
	AuthorEmail  string            `json:"author_email,omitempty"`
	Sender       string            `json:"sender"`
	PullRequest  int64             `json:"pull_request,omitempty"`
	Fork         bool              `json:"fork"`
	Cron         string            `json:"cron,omitempty"`
	Params       map[string]string `json:"params,omitempty"`
	Status       Status            `json:"status"`
	Error        string            `json:"error,omitempty"`
	// Warnings are the pipeline file's problems that Drone tolerates, one
	// "FILE:LINE:COL: warning: message" line each.
	Warnings   []string    `json:"warnings,omitempty"`
	Approval   string      `json:"approval,omitempty"`
	ApprovedBy string      `json:"approved_by,omitempty"`
	Created    time.Time   `json:"created"`
	Started    time.Time   `json:"started,omitzero"`
	Finished   time.Time   `json:"finished,omitzero"`
	Updated    time.Time   `json:"updated"`
	Pipelines  []*Pipeline `json:"pipelines,omitempty"`
}

// Pipeline is one pipeline of a build (schema Pipeline).
type Pipeline struct {
	Number    int64     `json:"number"`
	Name      string    `json:"name"`
	Status    Status    `json:"status"`
	Error     string    `json:"error,omitempty"`
	DependsOn []string  `json:"depends_on"`
	Agent     string    `json:"agent,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	Steps     []*Step   `json:"steps"`
	// Job is the pipeline's job; a pipeline copied by a restart has none.
	Job *Job `json:"job,omitempty"`
}

// Step is one step of a pipeline (schema Step).
type Step struct {
	Number   int64     `json:"number"`
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	ExitCode int       `json:"exit_code"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Job is the unit of work an agent leases: one pipeline (schema Job).
type Job struct {
	ID       int64             `json:"id"`
	Status   Status            `json:"status"`
	Labels   map[string]string `json:"labels"`
	Attempts int               `json:"attempts"`
	Canceled bool              `json:"canceled,omitempty"`
	Error    string            `json:"error,omitempty"`
	Queued   time.Time         `json:"queued,omitzero"`
	Started  time.Time         `json:"started,omitzero"`
	Finished time.Time         `json:"finished,omitzero"`
	// WaitingReason explains why a pending or blocked job has not started.
	WaitingReason string `json:"waiting_reason,omitempty"`
}

// BuildRequest starts a build by hand (schema ManualBuildRequest). Branch,
// Ref and SHA choose the commit: a branch's head, a ref's commit, or a
// commit (with Branch or Ref naming where it is); all empty means the
// head of the default branch.
//
// Event "push" (administrators only) reports a push instead: the build is
// a push of the branch Branch (or Ref, refs/heads/...) to the commit SHA,
// both required, and the commit becomes the branch's poll baseline, so
// that polling does not build it again. A push of a commit that has a
// push build of that branch already is not built again: the answer is
// that build, with status 200 rather than 201.
type BuildRequest struct {
	// Event is "custom" (the default) or "push".
	Event  string `json:"event,omitempty"`
	Branch string `json:"branch,omitempty"`
	Ref    string `json:"ref,omitempty"`
	SHA    string `json:"sha,omitempty"`
	// Params are given to the steps as environment variables and to
	// ${VAR} substitution.
	Params map[string]string `json:"params,omitempty"`
}

// StepEnd is how a followed step ended.
type StepEnd struct {
	Status   Status `json:"status"`
	ExitCode int    `json:"exit_code"`
}

// Agent is a registered agent (schema Agent).
type Agent struct {
	ID       int64             `json:"id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Version  string            `json:"version"`
	LastSeen time.Time         `json:"last_seen,omitzero"`
	// Connected is set when the agent was seen in the last 30 seconds.
	Connected bool `json:"connected"`
	// RunningJobs are the IDs of the jobs the agent holds leases on.
	RunningJobs []int64   `json:"running_jobs"`
	Created     time.Time `json:"created"`
}

// Perm is a user's role on a repo (schema Perm).
type Perm struct {
	User    string    `json:"user"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// PermRequest gives a user a role on a repo (schema PermRequest).
type PermRequest struct {
	Role string `json:"role"`
}

// Cron is a repo's build schedule (schema Cron).
type Cron struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Expr     string    `json:"expr"`
	Branch   string    `json:"branch"`
	Next     time.Time `json:"next,omitzero"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// CronRequest creates or changes a cron job (schema CronRequest).
type CronRequest struct {
	Name     string `json:"name"`
	Expr     string `json:"expr"`
	Branch   string `json:"branch,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
}

// RestartRequest restarts a build (schema RestartRequest).
type RestartRequest struct {
	// FailedOnly re-runs only the pipelines that did not succeed; the
	// others are copied as they ended.
	FailedOnly bool `json:"failed_only"`
}

// SessionRequest signs in with a login and password (schema
// SessionRequest).
type SessionRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

// PasswordRequest sets a password (schema PasswordRequest).
// CurrentPassword proves that a user who has a password is who changes
// it; administrators setting another user's password leave it empty.
type PasswordRequest struct {
	Password        string `json:"password"`
	CurrentPassword string `json:"current_password,omitempty"`
}

// QueueEntry is a job waiting for or held by an agent (schema
// QueueEntry), with the build and pipeline it runs.
type QueueEntry struct {
	Repo     string `json:"repo"`
	Build    int64  `json:"build"`
	Pipeline string `json:"pipeline"`
	// PipelineNumber numbers the pipeline in its build.
	PipelineNumber int64 `json:"pipeline_number"`
	// Agent is the agent running the job ("" while it waits).
	Agent string `json:"agent,omitempty"`
	Job   *Job   `json:"job"`
}
