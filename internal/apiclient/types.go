package apiclient

import "github.com/ferryci/ferry/internal/api"

// The API's types are defined once, in internal/api; the client uses them
// under these names.
type (
	Duration          = api.Duration
	Status            = api.Status
	User              = api.User
	UserRequest       = api.UserRequest
	Token             = api.Token
	TokenRequest      = api.TokenRequest
	Repo              = api.Repo
	RepoRequest       = api.RepoRequest
	Credential        = api.Credential
	CredentialRequest = api.CredentialRequest
	Secret            = api.Secret
	SecretRequest     = api.SecretRequest
	Build             = api.Build
	Pipeline          = api.Pipeline
	Step              = api.Step
	Job               = api.Job
	BuildRequest      = api.BuildRequest
	StepEnd           = api.StepEnd
	Agent             = api.Agent
	QueueEntry        = api.QueueEntry
	Perm              = api.Perm
	Cron              = api.Cron
	CronRequest       = api.CronRequest
	RestartRequest    = api.RestartRequest
	SessionRequest    = api.SessionRequest
	PasswordRequest   = api.PasswordRequest
)

// The statuses the API reports.
const (
	StatusBlocked  = api.StatusBlocked
	StatusPending  = api.StatusPending
	StatusRunning  = api.StatusRunning
	StatusSuccess  = api.StatusSuccess
	StatusFailure  = api.StatusFailure
	StatusError    = api.StatusError
	StatusKilled   = api.StatusKilled
	StatusSkipped  = api.StatusSkipped
	StatusDeclined = api.StatusDeclined
)

// BuildFilter selects builds to list; zero fields select all.
type BuildFilter struct {
	Branch string
	Event  string
	Status Status
	// PullRequest selects the builds of one pull request number.
	PullRequest int64
	// Before selects builds numbered below it, for paging.
	Before int64
	// Limit is the page size, 1 to 100; zero means the server's default
	// (25).
	Limit int
}

// LogLine is one line of a step's log.
type LogLine struct {
	// Seq is the line's sequence number; it grows with every line, but
	// not necessarily by one.
	Seq  int64
	Text string
}
