package nodeproto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrUnauthorized is returned for a missing, wrong or revoked node token
// (401 or 403). Retrying does not help.
var ErrUnauthorized = errors.New("node token refused")

// StatusError is any other unexpected answer.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Code, e.Message)
}

// Temporary reports whether the request may succeed when retried.
func (e *StatusError) Temporary() bool { return e.Code >= 500 || e.Code == http.StatusTooManyRequests }

// Client calls the node endpoints of one server. It makes one attempt per
// call; retrying is the caller's policy. Safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the server at base using token; hc may be
// nil. The token is held in memory only: read it from a file, never from
// the command line, so that no other process can see it.
func NewClient(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			IdleConnTimeout: 90 * time.Second,
		}}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}
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
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return false, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if etag != "" {
		req.Header.Set("If-None-Match", `"`+etag+`"`)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	name := strings.SplitN(path, "?", 2)[0]
	switch {
	case res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified:
		_, _ = io.Copy(io.Discard, res.Body)
		return false, nil
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return false, fmt.Errorf("%s: %w", name, ErrUnauthorized)
	case res.StatusCode < 200 || res.StatusCode > 299:
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return false, fmt.Errorf("%s: %w", name, &StatusError{Code: res.StatusCode, Message: strings.TrimSpace(string(msg))})
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return true, nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return false, fmt.Errorf("decoding %s answer: %w", name, err)
	}
	return true, nil
}
