package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AuditFilter selects audit entries; zero fields select all.
type AuditFilter struct {
	Service, Environment string
	DeploymentID         int64
	Limit                int
}

// Audit lists audit entries, newest first.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error) {
	q := url.Values{}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	if f.Environment != "" {
		q.Set("environment", f.Environment)
	}
	if f.DeploymentID != 0 {
		q.Set("deployment", strconv.FormatInt(f.DeploymentID, 10))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []*AuditEntry
	if _, err := c.call(ctx, http.MethodGet, "/api/audit", q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
