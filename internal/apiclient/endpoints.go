package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// Self returns the user the client's token belongs to.
func (c *Client) Self(ctx context.Context) (*User, error) {
	var u User
	if _, err := c.call(ctx, http.MethodGet, "/api/user", nil, nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateToken creates a personal token for the caller. The answer holds
// the token string, which the server shows this once.
func (c *Client) CreateToken(ctx context.Context, req *TokenRequest) (*Token, error) {
	var t Token
	if _, err := c.call(ctx, http.MethodPost, "/api/user/tokens", nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateUserToken creates a personal token for the user login
// (administrators only). The answer holds the token string, shown once.
func (c *Client) CreateUserToken(ctx context.Context, login string, req *TokenRequest) (*Token, error) {
	if login == "" {
		return nil, errors.New("user login must not be empty")
	}
	var t Token
	if _, err := c.call(ctx, http.MethodPost, "/api/users/"+url.PathEscape(login)+"/tokens", nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateAgentToken creates a token with which an agent leases jobs
// (administrators only). The answer holds the token string, shown once.
func (c *Client) CreateAgentToken(ctx context.Context, req *TokenRequest) (*Token, error) {
	var t Token
	if _, err := c.call(ctx, http.MethodPost, "/api/agent-tokens", nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Users lists every user (administrators only).
func (c *Client) Users(ctx context.Context) ([]*User, error) {
	var us []*User
	if _, err := c.call(ctx, http.MethodGet, "/api/users", nil, nil, &us); err != nil {
		return nil, err
	}
	return us, nil
}

// CreateUser adds a user (administrators only).
func (c *Client) CreateUser(ctx context.Context, req *UserRequest) (*User, error) {
	var u User
	if _, err := c.call(ctx, http.MethodPost, "/api/users", nil, req, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Repos lists the repos the caller has a role on (every repo for an
// administrator).
func (c *Client) Repos(ctx context.Context) ([]*Repo, error) {
	var rs []*Repo
	if _, err := c.call(ctx, http.MethodGet, "/api/repos", nil, nil, &rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// Repo returns the repo slug ("OWNER/NAME").
func (c *Client) Repo(ctx context.Context, slug string) (*Repo, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	var r Repo
	if _, err := c.call(ctx, http.MethodGet, p, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateRepo adds a repo by its git URL; its slug is derived from the URL
// unless req gives one. The answer holds the webhook secret.
func (c *Client) CreateRepo(ctx context.Context, req *RepoRequest) (*Repo, error) {
	var r Repo
	if _, err := c.call(ctx, http.MethodPost, "/api/repos", nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateRepo changes the fields req sets of the repo slug and returns the
// repo as it is now.
func (c *Client) UpdateRepo(ctx context.Context, slug string, req *RepoRequest) (*Repo, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	var r Repo
	if _, err := c.call(ctx, http.MethodPatch, p, nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SetCredential sets or replaces the git credential of the repo slug.
func (c *Client) SetCredential(ctx context.Context, slug string, req *CredentialRequest) (*Credential, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	var cr Credential
	if _, err := c.call(ctx, http.MethodPut, p+"/credential", nil, req, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

// DeleteCredential removes the git credential of the repo slug.
func (c *Client) DeleteCredential(ctx context.Context, slug string) error {
	p, err := repoPath(slug)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p+"/credential", nil, nil, nil)
	return err
}

// DeleteRepo removes the repo slug with its builds, logs and secrets.
func (c *Client) DeleteRepo(ctx context.Context, slug string) error {
	p, err := repoPath(slug)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	return err
}

// Builds lists one page of the repo's builds, newest first, without their
// pipelines. next is the Before value of the following page, or 0 when
// this page is the last.
func (c *Client) Builds(ctx context.Context, slug string, f BuildFilter) (builds []*Build, next int64, err error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, 0, err
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("branch", f.Branch)
	set("event", f.Event)
	set("status", string(f.Status))
	if f.PullRequest > 0 {
		q.Set("pr", strconv.FormatInt(f.PullRequest, 10))
	}
	if f.Before > 0 {
		q.Set("before", strconv.FormatInt(f.Before, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	h, err := c.call(ctx, http.MethodGet, p+"/builds", q, nil, &builds)
	if err != nil {
		return nil, 0, err
	}
	// The server links a next page when the page is full.
	if h.Get("Link") != "" && len(builds) > 0 {
		next = builds[len(builds)-1].Number
	}
	return builds, next, nil
}

// Build returns build number of the repo with its pipelines, steps and
// jobs, and why its waiting jobs wait.
func (c *Client) Build(ctx context.Context, slug string, number int64) (*Build, error) {
	p, err := buildPath(slug, number)
	if err != nil {
		return nil, err
	}
	var b Build
	if _, err := c.call(ctx, http.MethodGet, p, nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// StartBuild starts a build of the repo by hand (a "custom" event) and
// returns it with its pipelines.
func (c *Client) StartBuild(ctx context.Context, slug string, req *BuildRequest) (*Build, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	if req == nil {
		req = &BuildRequest{}
	}
	var b Build
	if _, err := c.call(ctx, http.MethodPost, p+"/builds", nil, req, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// PushBuild reports to the server that the repo's branch moved to the
// commit sha (administrators only): it builds the commit as a push, and
// makes it the branch's poll baseline. created is false when a push build
// of that branch and commit existed already: b is that build, and nothing
// was built. A commit with nothing to build is an *Error with status 400.
func (c *Client) PushBuild(ctx context.Context, slug, branch, sha string) (b *Build, created bool, err error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, false, err
	}
	b = &Build{}
	_, code, err := c.callStatus(ctx, http.MethodPost, p+"/builds", nil, &BuildRequest{Event: "push", Branch: branch, SHA: sha}, b)
	if err != nil {
		return nil, false, err
	}
	return b, code == http.StatusCreated, nil
}

// buildAction posts to one of a build's action endpoints.
func (c *Client) buildAction(ctx context.Context, slug string, number int64, action string, in any) (*Build, error) {
	p, err := buildPath(slug, number)
	if err != nil {
		return nil, err
	}
	if in == nil {
		in = struct{}{}
	}
	var b Build
	if _, err := c.call(ctx, http.MethodPost, p+"/"+action, nil, in, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// CancelBuild cancels an unfinished build: its queued jobs end at once,
// its running ones when their agents learn of it.
func (c *Client) CancelBuild(ctx context.Context, slug string, number int64) (*Build, error) {
	return c.buildAction(ctx, slug, number, "cancel", nil)
}

// ApproveBuild approves a build that waits for approval.
func (c *Client) ApproveBuild(ctx context.Context, slug string, number int64) (*Build, error) {
	return c.buildAction(ctx, slug, number, "approve", nil)
}

// DeclineBuild declines a build that waits for approval.
func (c *Client) DeclineBuild(ctx context.Context, slug string, number int64) (*Build, error) {
	return c.buildAction(ctx, slug, number, "decline", nil)
}

// RestartBuild starts a new build of a finished build's commit and config
// and returns it. With failedOnly, only the pipelines that did not succeed
// run again.
func (c *Client) RestartBuild(ctx context.Context, slug string, number int64, failedOnly bool) (*Build, error) {
	return c.buildAction(ctx, slug, number, "restart", &RestartRequest{FailedOnly: failedOnly})
}

// secretPath returns the path of the secret name of the repo, or of the
// global secret name when slug is empty.
func secretPath(slug, name string) (string, error) {
	if name == "" {
		return "", errors.New("secret name must not be empty")
	}
	p, err := secretsPath(slug)
	if err != nil {
		return "", err
	}
	return p + "/" + url.PathEscape(name), nil
}

// secretsPath returns the path of the repo's secrets, or of the global
// secrets when slug is empty.
func secretsPath(slug string) (string, error) {
	if slug == "" {
		return "/api/secrets", nil
	}
	p, err := repoPath(slug)
	if err != nil {
		return "", err
	}
	return p + "/secrets", nil
}

// Secrets lists the repo's secrets, or the global ones (administrators
// only) when slug is empty.
func (c *Client) Secrets(ctx context.Context, slug string) ([]*Secret, error) {
	p, err := secretsPath(slug)
	if err != nil {
		return nil, err
	}
	var ss []*Secret
	if _, err := c.call(ctx, http.MethodGet, p, nil, nil, &ss); err != nil {
		return nil, err
	}
	return ss, nil
}

// CreateSecret adds a secret to the repo, or a global one when slug is
// empty. Name and Value are required.
func (c *Client) CreateSecret(ctx context.Context, slug string, req *SecretRequest) (*Secret, error) {
	p, err := secretsPath(slug)
	if err != nil {
		return nil, err
	}
	var s Secret
	if _, err := c.call(ctx, http.MethodPost, p, nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// UpdateSecret changes the fields req sets of the secret name of the repo
// (global when slug is empty).
func (c *Client) UpdateSecret(ctx context.Context, slug, name string, req *SecretRequest) (*Secret, error) {
	p, err := secretPath(slug, name)
	if err != nil {
		return nil, err
	}
	var s Secret
	if _, err := c.call(ctx, http.MethodPatch, p, nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteSecret removes the secret name of the repo (global when slug is
// empty).
func (c *Client) DeleteSecret(ctx context.Context, slug, name string) error {
	p, err := secretPath(slug, name)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	return err
}
