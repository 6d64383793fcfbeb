package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

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

// DeployRequest asks for a deployment, rollback or promotion.
type DeployRequest struct {
	Release string `json:"release,omitempty"`
	Reason  string `json:"reason,omitempty"`
	To      string `json:"to,omitempty"`
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

// NodeServiceStatus is a service's actual state on a node.
type NodeServiceStatus struct {
	Service string    `json:"service"`
	Release string    `json:"release,omitempty"`
	Desired string    `json:"desired,omitempty"`
	State   string    `json:"state"`
	Healthy bool      `json:"healthy"`
	Error   string    `json:"error,omitempty"`
	Kept    []string  `json:"kept,omitempty"`
	Time    time.Time `json:"time"`
}

// Service is a declared service with its environment matrix.
type Service struct {
	Name         string               `json:"name"`
	Repo         string               `json:"repo,omitempty"`
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

func envPath(service, env string) string {
	return "/api/services/" + url.PathEscape(service) + "/environments/" + url.PathEscape(env)
}

// CreateRelease creates a release of service; created is false when one
// with the same content existed.
func (c *Client) CreateRelease(ctx context.Context, service string, req *ReleaseRequest) (rel *Release, created bool, err error) {
	var out Release
	r, err := c.newRequest(ctx, http.MethodPost, "/api/services/"+url.PathEscape(service)+"/releases", nil, req)
	if err != nil {
		return nil, false, err
	}
	res, err := c.send(r)
	if err != nil {
		return nil, false, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return nil, false, fmt.Errorf("decoding the new release: %w", err)
	}
	return &out, res.StatusCode == http.StatusCreated, nil
}

// Releases lists a service's releases, newest first.
func (c *Client) Releases(ctx context.Context, service string) ([]*Release, error) {
	var out []*Release
	_, err := c.call(ctx, http.MethodGet, "/api/services/"+url.PathEscape(service)+"/releases", nil, nil, &out)
	return out, err
}

// Deploy deploys a release to an environment.
func (c *Client) Deploy(ctx context.Context, service, env string, req *DeployRequest) (*Deployment, error) {
	var out Deployment
	_, err := c.call(ctx, http.MethodPost, envPath(service, env)+"/deployments", nil, req, &out)
	return &out, err
}

// Rollback rolls an environment back to its previous release.
func (c *Client) Rollback(ctx context.Context, service, env string, req *DeployRequest) (*Deployment, error) {
	var out Deployment
	_, err := c.call(ctx, http.MethodPost, envPath(service, env)+"/rollback", nil, req, &out)
	return &out, err
}

// Promote deploys what env runs to the next environment (or req.To).
func (c *Client) Promote(ctx context.Context, service, env string, req *DeployRequest) (*Deployment, error) {
	var out Deployment
	_, err := c.call(ctx, http.MethodPost, envPath(service, env)+"/promote", nil, req, &out)
	return &out, err
}

// Deployment gets a deployment with its nodes.
func (c *Client) Deployment(ctx context.Context, id int64) (*Deployment, error) {
	var out Deployment
	_, err := c.call(ctx, http.MethodGet, "/api/deployments/"+strconv.FormatInt(id, 10), nil, nil, &out)
	return &out, err
}

// Deployments lists deployments, newest first.
func (c *Client) Deployments(ctx context.Context, service, env string, active bool) ([]*Deployment, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if env != "" {
		q.Set("environment", env)
	}
	if active {
		q.Set("active", "true")
	}
	var out []*Deployment
	_, err := c.call(ctx, http.MethodGet, "/api/deployments", q, nil, &out)
	return out, err
}

// DeploymentAction approves, pauses, resumes or cancels a deployment.
func (c *Client) DeploymentAction(ctx context.Context, id int64, action, reason string) (*Deployment, error) {
	var out Deployment
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/api/deployments/%d/%s", id, url.PathEscape(action)), nil,
		map[string]string{"reason": reason}, &out)
	return &out, err
}

// Lock locks an environment by hand.
func (c *Client) Lock(ctx context.Context, service, env, reason string) (*Lock, error) {
	var out Lock
	_, err := c.call(ctx, http.MethodPut, envPath(service, env)+"/lock", nil, map[string]string{"reason": reason}, &out)
	return &out, err
}

// Unlock releases an environment's lock; force releases anyone's.
func (c *Client) Unlock(ctx context.Context, service, env, reason string, force bool) (*Lock, error) {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	if reason != "" {
		q.Set("reason", reason)
	}
	var out Lock
	_, err := c.call(ctx, http.MethodDelete, envPath(service, env)+"/lock", q, nil, &out)
	return &out, err
}

// Services lists services with their environment matrix.
func (c *Client) Services(ctx context.Context) ([]*Service, error) {
	var out []*Service
	_, err := c.call(ctx, http.MethodGet, "/api/services", nil, nil, &out)
	return out, err
}

// Service gets one service's environment matrix.
func (c *Client) Service(ctx context.Context, name string) (*Service, error) {
	var out Service
	_, err := c.call(ctx, http.MethodGet, "/api/services/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// Nodes lists the registered nodes.
func (c *Client) Nodes(ctx context.Context) ([]*Node, error) {
	var out []*Node
	_, err := c.call(ctx, http.MethodGet, "/api/nodes", nil, nil, &out)
	return out, err
}

// CreateNodeToken creates a node token (administrators).
func (c *Client) CreateNodeToken(ctx context.Context, req *TokenRequest) (*Token, error) {
	var out Token
	_, err := c.call(ctx, http.MethodPost, "/api/node-tokens", nil, req, &out)
	return &out, err
}
