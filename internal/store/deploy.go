package store

import (
	"context"
	"encoding/json"
	"time"
)

// TokenNode may only use the node protocol (internal/nodeproto): register,
// poll its desired state and report. Each node token is one node's
// identity.
const TokenNode TokenKind = "node"

// Service is a deployable service, as declared by a "kind: service"
// document (internal/deploy/spec) of a repo's .ferry.yml.
type Service struct {
	ID   int64
	Name string
	// RepoID is the repo whose config declares it (0: created through the
	// API).
	RepoID int64
	// Spec is the service's declaration as JSON (spec.Service).
	Spec    json.RawMessage
	Updated time.Time
}

// Environment is one environment of a service.
type Environment struct {
	ServiceID int64
	Service   string
	Name      string
	// Position is the environment's place in promotion order, from 0.
	Position int
	// Spec is the environment's declaration as JSON (spec.Environment).
	Spec json.RawMessage
}

// ServiceStore persists services and their environments.
type ServiceStore interface {
	// Put creates or updates the service by name, sets its ID and
	// Updated, and replaces its environments with envs, in one
	// transaction.
	Put(ctx context.Context, s *Service, envs []*Environment) error
	// Get returns the service called name, or ErrNotFound.
	Get(ctx context.Context, name string) (*Service, error)
	// List returns every service, by name.
	List(ctx context.Context) ([]*Service, error)
	// Environments returns the environments of the service called name,
	// in promotion order.
	Environments(ctx context.Context, service string) ([]*Environment, error)
}

// Release is one immutable, content-addressed version of a service: an
// artifact with its sha256, or a container image by digest.
type Release struct {
	// ID names the release: the service and the first 12 hex digits of
	// the content's digest ("app-9f86d081884c"). It is also the release's
	// directory on the nodes.
	ID      string
	Service string
	// Version is a human label (a tag, a build number); not unique.
	Version string
	// ArtifactURL, SHA256, Size and Format describe an artifact release.
	ArtifactURL string
	SHA256      string
	Size        int64
	Format      string
	// ImageRef and ImageDigest describe an image release.
	ImageRef    string
	ImageDigest string
	// BuildID is the build that created it (0: the API or CLI), with its
	// repo, commit and branch.
	BuildID int64
	RepoID  int64
	Commit  string
	Branch  string
	// Creator names who created it.
	Creator string
	Created time.Time
}

// ReleaseStore persists releases. Releases are never changed or deleted.
type ReleaseStore interface {
	// Create inserts r. When a release with r's ID exists already (the
	// same content), r is filled from it and created is false.
	Create(ctx context.Context, r *Release) (created bool, err error)
	// Get returns the release, or ErrNotFound.
	Get(ctx context.Context, id string) (*Release, error)
	// List returns the latest releases of a service, newest first.
	List(ctx context.Context, service string, limit int) ([]*Release, error)
}

// DeployState is the state of a deployment.
type DeployState string

// The deployment states: pending → running (batch k/n) → succeeded |
// failed | rolled_back | cancelled; a failure with automatic rollback
// passes through rolling_back.
const (
	DeployPending     DeployState = "pending"
	DeployRunning     DeployState = "running"
	DeployRollingBack DeployState = "rolling_back"
	DeploySucceeded   DeployState = "succeeded"
	DeployFailed      DeployState = "failed"
	DeployRolledBack  DeployState = "rolled_back"
	DeployCancelled   DeployState = "cancelled"
)

// Done reports whether s is final.
func (s DeployState) Done() bool {
	switch s {
	case DeploySucceeded, DeployFailed, DeployRolledBack, DeployCancelled:
		return true
	}
	return false
}

// Deployment is one release going to one environment. The orchestrator
// (internal/deploy) moves it one step at a time; every field it needs to
// resume is here.
type Deployment struct {
	ID          int64
	Service     string
	Environment string
	ReleaseID   string
	// Trigger is manual, auto, promote or rollback.
	Trigger string
	// Creator names who (or which build) asked for it.
	Creator string
	BuildID int64
	State   DeployState
	// Batch is the current batch, from 1, of Batches; 0 before the first.
	Batch   int
	Batches int
	// Reason explains the state: what a pending deployment waits for, why
	// one failed or was rolled back.
	Reason string
	// Plan is the orchestrator's plan as JSON (the batches of nodes).
	Plan json.RawMessage
	// Paused holds the deployment after its current batch; Cancel asks
	// it to stop.
	Paused bool
	Cancel bool
	// Approved and ApprovedBy record the approval gate (or a manual
	// canary pause being released).
	Approved   bool
	ApprovedBy string
	// BatchStarted is when the current batch (or the rollback) started;
	// WaitUntil is when a timed pause ends.
	BatchStarted time.Time
	WaitUntil    time.Time
	// LeaseOwner and LeaseUntil hold the orchestrator that is moving the
	// deployment: one at a time, across servers.
	LeaseOwner string
	LeaseUntil time.Time
	Created    time.Time
	Started    time.Time
	Finished   time.Time
	// Version is incremented by every Update; an Update with a stale
	// version returns ErrConflict.
	Version int64
}

// DeploymentFilter selects deployments.
type DeploymentFilter struct {
	Service     string
	Environment string
	// Active selects the deployments that are not done.
	Active bool
	// Limit caps the result (default 100).
	Limit int
}

// DeploymentNode is one node's part in a deployment.
type DeploymentNode struct {
	DeploymentID int64
	NodeID       int64
	Node         string
	Batch        int
	// State is pending, applying, succeeded, failed or rolled_back.
	State string
	// Previous is the release the node ran before (the rollback target).
	Previous string
	Error    string
	Started  time.Time
	Finished time.Time
}

// DeploymentStore persists deployments and their per-node results.
type DeploymentStore interface {
	// Create inserts d with State pending (unless set) and sets ID,
	// Created and Version.
	Create(ctx context.Context, d *Deployment) error
	// Get returns the deployment, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Deployment, error)
	// List returns deployments matching f, newest first.
	List(ctx context.Context, f DeploymentFilter) ([]*Deployment, error)
	// Update writes every field of d when its Version is current, and
	// increments it; otherwise it returns ErrConflict. The audit entries
	// given are appended in the same transaction, so that a state change
	// and its record are never apart (their DeploymentID is set to d's).
	Update(ctx context.Context, d *Deployment, audit ...*AuditEntry) error
	// Claim takes the deployment's lease for owner until until, when it is
	// free, expired (before now) or already owner's, and reports whether
	// it did. It is how one orchestrator at a time moves a deployment.
	Claim(ctx context.Context, id int64, owner string, now, until time.Time) (bool, error)
	// Nodes returns the deployment's nodes, by batch and name.
	Nodes(ctx context.Context, id int64) ([]*DeploymentNode, error)
	// PutNode creates or replaces a node's result.
	PutNode(ctx context.Context, n *DeploymentNode) error
}

// Lock is an environment's deploy lock: held by a running deployment, or
// taken by hand (DeploymentID 0) to keep deployments out.
type Lock struct {
	Service      string
	Environment  string
	DeploymentID int64
	Holder       string
	Reason       string
	Created      time.Time
}

// LockStore persists deploy locks.
type LockStore interface {
	// Acquire takes the lock l describes. When another holder has it, it
	// returns that lock and ErrConflict; a deployment that holds it
	// already gets it again.
	Acquire(ctx context.Context, l *Lock) (*Lock, error)
	// Get returns the lock of an environment, or ErrNotFound.
	Get(ctx context.Context, service, env string) (*Lock, error)
	// List returns every lock.
	List(ctx context.Context) ([]*Lock, error)
	// Release drops the lock when deployment holds it (deployment 0: a
	// lock taken by hand), and reports whether it did.
	Release(ctx context.Context, service, env string, deployment int64) (bool, error)
	// Force drops the lock whoever holds it, returning what it dropped, or
	// ErrNotFound.
	Force(ctx context.Context, service, env string) (*Lock, error)
}

// AuditEntry is one action in the append-only audit log: who did what,
// when and why.
type AuditEntry struct {
	ID           int64
	Time         time.Time
	Actor        string
	Action       string
	Service      string
	Environment  string
	DeploymentID int64
	Release      string
	Reason       string
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	Service      string
	Environment  string
	DeploymentID int64
	// Limit caps the result (default 100).
	Limit int
}

// AuditStore appends to and reads the audit log; entries are never
// changed or deleted (the database refuses it).
type AuditStore interface {
	// Append adds e and sets its ID and Time (when zero).
	Append(ctx context.Context, e *AuditEntry) error
	// List returns matching entries, newest first.
	List(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

// Node is a host running `ferry node`.
type Node struct {
	ID int64
	// TokenID is the node token that is the node's identity.
	TokenID int64
	Name    string
	Labels  map[string]string
	Version string
	// Actual is the node's last reported state of each service.
	Actual   []NodeService
	LastSeen time.Time
	// DesiredVersion changes whenever the node's desired state does.
	DesiredVersion int64
	Created        time.Time
}

// NodeService is the actual state of one service on a node, as reported
// (nodeproto.ServiceStatus).
type NodeService struct {
	Service string   `json:"service"`
	Release string   `json:"release,omitempty"`
	Desired string   `json:"desired,omitempty"`
	State   string   `json:"state"`
	Healthy bool     `json:"healthy"`
	Error   string   `json:"error,omitempty"`
	Kept    []string `json:"kept,omitempty"`
	// LB is the service's load-balancer driver on the node ("" for none).
	LB string `json:"lb,omitempty"`
	// Serving is the load-balancer state the node last set (nil: not
	// set since it started).
	Serving *bool     `json:"serving,omitempty"`
	Time    time.Time `json:"time"`
}

// Service returns the actual state of the named service, or nil.
func (n *Node) Service(name string) *NodeService {
	for i := range n.Actual {
		if n.Actual[i].Service == name {
			return &n.Actual[i]
		}
	}
	return nil
}

// Desired is the release one node should run for one service.
type Desired struct {
	NodeID      int64
	Service     string
	Environment string
	ReleaseID   string
	// Serving is whether the node should have the service in its load
	// balancer's rotation (nodeproto.Release.Serving); nil leaves the node
	// in charge (it drains around its own switch).
	Serving *bool
	Updated time.Time
}

// NodeStore persists nodes and their desired state.
type NodeStore interface {
	// Register creates or updates the node of n.TokenID (name, labels,
	// version, actual state, last seen) and sets ID and DesiredVersion.
	Register(ctx context.Context, n *Node) error
	// Get returns the node, or ErrNotFound.
	Get(ctx context.Context, id int64) (*Node, error)
	// GetByToken returns the node of a node token, or ErrNotFound.
	GetByToken(ctx context.Context, tokenID int64) (*Node, error)
	// List returns every node, by name.
	List(ctx context.Context) ([]*Node, error)
	// Report records the node's actual state and last-seen time.
	Report(ctx context.Context, id int64, actual []NodeService, at time.Time) error
	// Touch records that the node was seen at the given time.
	Touch(ctx context.Context, id int64, at time.Time) error
	// SetDesired sets the release each of the nodes should run for a
	// service (and whether it serves), in one transaction, and bumps the
	// DesiredVersion of each node whose desired state changed; it sets
	// Updated on the Desired entries that changed and only on them.
	SetDesired(ctx context.Context, ds []*Desired) error
	// Desired returns a node's desired releases, by service, and its
	// DesiredVersion.
	Desired(ctx context.Context, nodeID int64) ([]*Desired, int64, error)
	// Delete removes the node and its desired state.
	Delete(ctx context.Context, id int64) error
}
