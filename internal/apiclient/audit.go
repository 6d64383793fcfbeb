package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEntry is one line of the append-only audit log (schema AuditEntry).
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
