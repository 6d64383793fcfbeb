package api

import (
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/store"
)

// The delivery API's types: releases, deployments, locks, services and
// nodes.

// Release is an immutable, content-addressed release (schema Release).
type Release struct {
	ID       string    `json:"id"`
	Service  string    `json:"service"`
	Version  string    `json:"version,omitempty"`
	Artifact *Artifact `json:"artifact,omitempty"`
	Image    *Image    `json:"image,omitempty"`
	BuildID  int64     `json:"build_id,omitempty"`
	Commit   string    `json:"commit,omitempty"`
	Branch   string    `json:"branch,omitempty"`
	Creator  string    `json:"creator,omitempty"`
	Created  time.Time `json:"created"`
}

// Artifact is a release's file and its sha256.
type Artifact struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
	Format string `json:"format,omitempty"`
}

// Image is a release's container image by digest.
type Image struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// ReleaseRequest creates a release (schema ReleaseRequest).
type ReleaseRequest struct {
	Version  string    `json:"version,omitempty"`
	Artifact *Artifact `json:"artifact,omitempty"`
	Image    *Image    `json:"image,omitempty"`
	BuildID  int64     `json:"build_id,omitempty"`
	// BuildNumber names the build by its number (DRONE_BUILD_NUMBER).
	BuildNumber int64  `json:"build_number,omitempty"`
	Commit      string `json:"commit,omitempty"`
	Branch      string `json:"branch,omitempty"`
}

// Deployment is a release going to an environment (schema Deployment).
type Deployment struct {
	ID          int64             `json:"id"`
	Service     string            `json:"service"`
	Environment string            `json:"environment"`
	Release     string            `json:"release"`
	Trigger     string            `json:"trigger"`
	Creator     string            `json:"creator"`
	State       string            `json:"state"`
	Batch       int               `json:"batch"`
	Batches     int               `json:"batches"`
	Reason      string            `json:"reason,omitempty"`
	Paused      bool              `json:"paused,omitempty"`
	ApprovedBy  string            `json:"approved_by,omitempty"`
	Created     time.Time         `json:"created"`
	Started     time.Time         `json:"started,omitzero"`
	Finished    time.Time         `json:"finished,omitzero"`
	Nodes       []*DeploymentNode `json:"nodes,omitempty"`
}

// Done reports whether the deployment is in a final state.
func (d *Deployment) Done() bool {
	switch d.State {
	case "succeeded", "failed", "rolled_back", "cancelled":
		return true
	}
	return false
}

// DeploymentNode is one node's part in a deployment.
type DeploymentNode struct {
	Node     string    `json:"node"`
	Batch    int       `json:"batch"`
	State    string    `json:"state"`
	Previous string    `json:"previous,omitempty"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// DeployRequest asks for a deployment, rollback or promotion (schema
// DeployRequest). To is promote's target environment (default: the next
// one).
type DeployRequest struct {
	Release string `json:"release,omitempty"`
	Reason  string `json:"reason,omitempty"`
	To      string `json:"to,omitempty"`
}

// ActionRequest gives the reason of an action on a deployment (schema
// ActionRequest).
type ActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// AuditEntry is one entry of the append-only audit log (schema
// AuditEntry).
type AuditEntry struct {
	ID           int64     `json:"id"`
	Time         time.Time `json:"time"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"`
	Service      string    `json:"service,omitempty"`
	Environment  string    `json:"environment,omitempty"`
	DeploymentID int64     `json:"deployment_id,omitempty"`
	Release      string    `json:"release,omitempty"`
	Reason       string    `json:"reason,omitempty"`
}

// Lock is an environment's deploy lock.
type Lock struct {
	Service      string    `json:"service"`
	Environment  string    `json:"environment"`
	DeploymentID int64     `json:"deployment_id,omitempty"`
	Holder       string    `json:"holder"`
	Reason       string    `json:"reason,omitempty"`
	Created      time.Time `json:"created"`
}

// Node is a host running `ferry node` (schema Node).
type Node struct {
	ID       int64               `json:"id"`
	Name     string              `json:"name"`
	Labels   map[string]string   `json:"labels"`
	Version  string              `json:"version,omitempty"`
	LastSeen time.Time           `json:"last_seen,omitzero"`
	Services []NodeServiceStatus `json:"services"`
	Desired  map[string]string   `json:"desired"`
}

// NodeServiceStatus is a service's actual state on a node, as the server
// stores the node's last report.
type NodeServiceStatus = store.NodeService

// Service is a declared service with its environment matrix.
type Service struct {
	Name string `json:"name"`
	Repo string `json:"repo,omitempty"`
	// Spec is the service's declaration, in the answer about one service.
	Spec         *spec.Service        `json:"spec,omitempty"`
	Environments []*EnvironmentStatus `json:"environments"`
	Updated      time.Time            `json:"updated"`
}

// EnvironmentStatus is one environment of a service: what runs there,
// what is being deployed and who holds the lock.
type EnvironmentStatus struct {
	Name     string            `json:"name"`
	Nodes    map[string]string `json:"nodes"`
	Strategy string            `json:"strategy"`
	Current  string            `json:"current,omitempty"`
	Active   *Deployment       `json:"active,omitempty"`
	Lock     *Lock             `json:"lock,omitempty"`
}
