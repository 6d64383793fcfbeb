package rpc

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryci/ferry/internal/httpjson"
)

// ErrLeaseLost is returned when the server no longer holds the job's lease
// for this agent (409): the job was re-queued, finished or taken by another
// agent. The agent must stop the job and forget it.
var ErrLeaseLost = errors.New("lease lost")

// ErrUnauthorized is returned for a missing, wrong or revoked token (401
// or 403). Retrying does not help.
var ErrUnauthorized = errors.New("agent token refused")

// StatusError is any other non-2xx answer. Temporary reports whether a
// retry may succeed (5xx, 429).
type StatusError = httpjson.StatusError

// Client calls the agent endpoints of one server. It makes exactly one
// attempt per call; retrying is the caller's policy. Safe for concurrent use.
type Client struct {
	c *httpjson.Client
}

// NewClient returns a client for the server at base (e.g.
// "http://ferry.example.com:8080") using token. hc may be nil.
func NewClient(base, token string, hc *http.Client) *Client {
	return &Client{c: httpjson.NewClient(base, token, hc, map[int]error{
		http.StatusConflict:     ErrLeaseLost,
		http.StatusUnauthorized: ErrUnauthorized,
		http.StatusForbidden:    ErrUnauthorized,
	})}
}

// Lease long-polls for a job. It returns nil, nil when none came in time.
func (c *Client) Lease(ctx context.Context, req *LeaseRequest) (*Job, error) {
	var job Job
	ok, err := c.call(ctx, PathLease, 0, req, &job)
	if err != nil || !ok {
		return nil, err
	}
	return &job, nil
}

// Extend renews the lease of job id.
func (c *Client) Extend(ctx context.Context, id int64, req *ExtendRequest) (*ExtendResponse, error) {
	var res ExtendResponse
	if _, err := c.call(ctx, PathExtend, id, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// UpdateStep reports a step's state.
func (c *Client) UpdateStep(ctx context.Context, id int64, req *StepUpdate) error {
	_, err := c.call(ctx, PathStep, id, req, nil)
	return err
}

// AppendLogs sends a batch of log lines.
func (c *Client) AppendLogs(ctx context.Context, id int64, req *LogBatch) error {
	_, err := c.call(ctx, PathLogs, id, req, nil)
	return err
}

// Complete ends a job.
func (c *Client) Complete(ctx context.Context, id int64, req *CompleteRequest) error {
	_, err := c.call(ctx, PathComplete, id, req, nil)
	return err
}

// Report sends several reports about job id in one request; see Report.
func (c *Client) Report(ctx context.Context, id int64, req *Report) error {
	_, err := c.call(ctx, PathReport, id, req, nil)
	return err
}

// call POSTs in as JSON and decodes a 200 answer into out. It reports
// false for 204 No Content.
func (c *Client) call(ctx context.Context, path string, id int64, in, out any) (bool, error) {
	return c.c.Do(ctx, httpjson.Request{
		Method: http.MethodPost,
		Path:   strings.Replace(path, "{id}", strconv.FormatInt(id, 10), 1),
		Name:   path,
		In:     in,
		Out:    out,
	})
}
