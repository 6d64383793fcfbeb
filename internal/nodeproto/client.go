package nodeproto

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/ferryci/ferry/internal/httpjson"
)

// ErrUnauthorized is returned for a missing, wrong or revoked node token
// (401 or 403). Retrying does not help.
var ErrUnauthorized = errors.New("node token refused")

// StatusError is any other unexpected answer.
type StatusError = httpjson.StatusError

// Client calls the node endpoints of one server. It makes one attempt per
// call; retrying is the caller's policy. Safe for concurrent use.
type Client struct {
	c *httpjson.Client
}

// NewClient returns a client for the server at base using token; hc may be
// nil. The token is held in memory only: read it from a file, never from
// the command line, so that no other process can see it.
func NewClient(base, token string, hc *http.Client) *Client {
	return &Client{c: httpjson.NewClient(base, token, hc, map[int]error{
		http.StatusUnauthorized: ErrUnauthorized,
		http.StatusForbidden:    ErrUnauthorized,
	})}
}

// Register introduces the node to the server.
func (c *Client) Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
	var res RegisterResponse
	if _, err := c.do(ctx, http.MethodPost, PathRegister, "", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Desired long-polls the desired state. It returns nil, nil when the state
// is still version after wait.
func (c *Client) Desired(ctx context.Context, version string, wait time.Duration) (*DesiredState, error) {
	q := url.Values{}
	q.Set("version", version)
	q.Set("wait", wait.String())
	var ds DesiredState
	ok, err := c.do(ctx, http.MethodGet, PathDesired+"?"+q.Encode(), version, nil, &ds)
	if err != nil || !ok {
		return nil, err
	}
	return &ds, nil
}

// Report sends the node's actual state.
func (c *Client) Report(ctx context.Context, rep *Report) error {
	_, err := c.do(ctx, http.MethodPost, PathReport, "", rep, nil)
	return err
}

// do sends in as JSON (when not nil) and decodes a 200 answer into out. It
// reports false for 204 and 304.
func (c *Client) do(ctx context.Context, method, path, etag string, in, out any) (bool, error) {
	return c.c.Do(ctx, httpjson.Request{Method: method, Path: path, ETag: etag, In: in, Out: out})
}
