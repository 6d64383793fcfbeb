package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferryci/ferry/internal/api"
)

// The delivery API's types are defined once, in internal/api.
type (
	Release           = api.Release
	Artifact          = api.Artifact
	Image             = api.Image
	ReleaseRequest    = api.ReleaseRequest
	Deployment        = api.Deployment
	DeploymentNode    = api.DeploymentNode
	DeployRequest     = api.DeployRequest
	ActionRequest     = api.ActionRequest
	AuditEntry        = api.AuditEntry
	Lock              = api.Lock
	Node              = api.Node
	NodeServiceStatus = api.NodeServiceStatus
	Service           = api.Service
	EnvironmentStatus = api.EnvironmentStatus
)

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
