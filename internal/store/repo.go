package store

import (
	"context"
	"time"
)

// Forge names the code-hosting service a repo lives on, which decides how
// its webhooks are verified and where commit statuses are reported.
type Forge string

// The forges. ForgeNone is a plain git URL, triggered by polling.
const (
	ForgeNone   Forge = ""
	ForgeGitHub Forge = "github"
	ForgeGitea  Forge = "gitea"
	ForgeGitLab Forge = "gitlab"
)

// Repo is a git repository that ferry builds.
type Repo struct {
	ID int64
	// Slug is the repo's unique name in ferry, usually "owner/name".
	Slug string
	// GitURL is where the repository is cloned from.
	GitURL        string
	Forge         Forge
	DefaultBranch string
	// WebhookSecret verifies incoming webhooks (an HMAC key for GitHub and
	// Gitea, the token for GitLab).
	WebhookSecret string
	// ConfigPath is the pipeline file, e.g. ".drone.yml"; empty means the
	// server's default lookup.
	ConfigPath string
	// PollInterval enables git polling when positive.
	PollInterval time.Duration
	// NextPoll is when the repo should be polled next; see ClaimPoll.
	NextPoll time.Time
	// Trusted repos may use host execution, privileged steps, host
	// volumes, devices and network_mode (docs/security.md).
	Trusted bool
	// Timeout limits a pipeline's run time; zero means the server default.
	Timeout time.Duration
	// Active repos accept triggers.
	Active bool
	// BuildCounter is the number of the repo's latest build. The store
	// advances it; Update does not write it.
	BuildCounter int64
	Created      time.Time
	Updated      time.Time
}

// RepoStore persists repos.
type RepoStore interface {
	// Create inserts r and sets its ID, Created and Updated. A duplicate
	// slug returns ErrConflict.
	Create(ctx context.Context, r *Repo) error
	// Get returns the repo with the given ID, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Repo, error)
	// GetBySlug returns the repo with the given slug, or ErrNotFound.
	GetBySlug(ctx context.Context, slug string) (*Repo, error)
	// List returns every repo, ordered by slug.
	List(ctx context.Context) ([]*Repo, error)
	// Update writes every field of r except ID, BuildCounter and Created,
	// and sets Updated.
	Update(ctx context.Context, r *Repo) error
	// Delete removes the repo with its builds, logs, secrets, permissions
	// and crons.
	Delete(ctx context.Context, id int64) error
	// DuePolls returns the active repos with a positive PollInterval whose
	// NextPoll is not after now.
	DuePolls(ctx context.Context, now time.Time) ([]*Repo, error)
	// ClaimPoll moves a repo's NextPoll from prev to next, and reports
	// whether it did: of several servers that try the same claim, exactly
	// one wins and polls.
	ClaimPoll(ctx context.Context, id int64, prev, next time.Time) (bool, error)
	// PollRefs returns the refs (name → commit SHA) the poller last saw for
	// the repo, or nil when it was never polled.
	PollRefs(ctx context.Context, id int64) (map[string]string, error)
	// SavePollRefs records the refs the poller saw for the repo.
	SavePollRefs(ctx context.Context, id int64, refs map[string]string) error
}

// Role is a user's permission level on a repo.
type Role string

// The roles, from least to most powerful.
const (
	RoleRead  Role = "read"
	RoleWrite Role = "write"
	RoleAdmin Role = "admin"
)

// Allows reports whether r includes the rights of need.
func (r Role) Allows(need Role) bool {
	return r.rank() >= need.rank() && need.rank() > 0
}

func (r Role) rank() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// RepoPerm grants a user a role on a repo.
type RepoPerm struct {
	UserID  int64
	RepoID  int64
	Role    Role
	Created time.Time
	Updated time.Time
}

// PermStore persists repo permissions.
type PermStore interface {
	// Set creates or replaces the user's role on the repo.
	Set(ctx context.Context, p *RepoPerm) error
	// Get returns the user's permission on the repo, or ErrNotFound.
	Get(ctx context.Context, userID, repoID int64) (*RepoPerm, error)
	// ListByRepo returns the permissions on a repo, ordered by user ID.
	ListByRepo(ctx context.Context, repoID int64) ([]*RepoPerm, error)
	// ListByUser returns the permissions of a user, ordered by repo ID.
	ListByUser(ctx context.Context, userID int64) ([]*RepoPerm, error)
	// Delete removes the user's permission on the repo.
	Delete(ctx context.Context, userID, repoID int64) error
}
