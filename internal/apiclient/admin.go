package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Crons lists the repo's crons.
func (c *Client) Crons(ctx context.Context, slug string) ([]*Cron, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	var out []*Cron
	if _, err := c.call(ctx, http.MethodGet, p+"/crons", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateCron adds a cron to the repo.
func (c *Client) CreateCron(ctx context.Context, slug string, req *CronRequest) (*Cron, error) {
	p, err := repoPath(slug)
	if err != nil {
		return nil, err
	}
	var out Cron
	if _, err := c.call(ctx, http.MethodPost, p+"/crons", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteCron removes the repo's cron name.
func (c *Client) DeleteCron(ctx context.Context, slug, name string) error {
	p, err := repoPath(slug)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p+"/crons/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// Tokens lists the caller's own tokens (never their secret strings).
func (c *Client) Tokens(ctx context.Context) ([]*Token, error) {
	var out []*Token
	if _, err := c.call(ctx, http.MethodGet, "/api/user/tokens", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken deletes one of the caller's tokens.
func (c *Client) RevokeToken(ctx context.Context, id int64) error {
	_, err := c.call(ctx, http.MethodDelete, "/api/user/tokens/"+strconv.FormatInt(id, 10), nil, nil, nil)
	return err
}

// Agents lists the registered agents (administrators only).
func (c *Client) Agents(ctx context.Context) ([]*Agent, error) {
	var out []*Agent
	if _, err := c.call(ctx, http.MethodGet, "/api/agents", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Queue lists the running, pending and blocked jobs, oldest first, each
// with why it waits (administrators only).
func (c *Client) Queue(ctx context.Context) ([]*QueueEntry, error) {
	var out []*QueueEntry
	if _, err := c.call(ctx, http.MethodGet, "/api/queue", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
