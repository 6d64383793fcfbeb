// Package httpjson is the client plumbing that the agents' protocol
// (internal/rpc) and the nodes' protocol (internal/nodeproto) share: one
// JSON request with a bearer token, one attempt, and the answer's status
// turned into an error. Retrying is the caller's policy.
//
// It is a leaf: it imports the standard library only.
package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxErrorBody bounds how much of an unexpected answer is read into a
// StatusError.
const maxErrorBody = 4096

// StatusError is a non-2xx answer that the client has no sentinel error
// for. Temporary reports whether a retry may succeed (5xx, 429).
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Code, e.Message)
}

// Temporary reports whether the request may succeed when retried.
func (e *StatusError) Temporary() bool { return e.Code >= 500 || e.Code == http.StatusTooManyRequests }

// Client calls the JSON endpoints of one server with one bearer token. It
// makes exactly one attempt per call. Safe for concurrent use.
type Client struct {
	base      string
	token     string
	http      *http.Client
	sentinels map[int]error
}

// NewClient returns a client for the server at base (e.g.
// "http://ferry.example.com:8080"; a trailing slash is dropped) using
// token. hc may be nil: the client then uses one that honours the proxy
// environment variables. sentinels maps answer statuses to the errors
// returned for them (wrapped with the call's name), e.g. 401 to the
// protocol's "token refused"; any other non-2xx answer is a *StatusError.
// The token is held in memory only.
func NewClient(base, token string, hc *http.Client, sentinels map[int]error) *Client {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc, sentinels: sentinels}
}

// Request is one call.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is appended to the base URL; it may carry a query.
	Path string
	// Name names the call in errors; when empty, Path without its query.
	Name string
	// ETag, when set, is sent as If-None-Match.
	ETag string
	// In, when not nil, is sent as the JSON body.
	In any
	// Out, when not nil, receives a 2xx answer's JSON body.
	Out any
}

// Do sends r and decodes a 2xx answer into r.Out. It reports false, and no
// error, for 204 No Content and 304 Not Modified.
func (c *Client) Do(ctx context.Context, r Request) (bool, error) {
	name := r.Name
	if name == "" {
		name, _, _ = strings.Cut(r.Path, "?")
	}
	var body io.Reader
	if r.In != nil {
		b, err := json.Marshal(r.In)
		if err != nil {
			return false, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.base+r.Path, body)
	if err != nil {
		return false, err
	}
	if r.In != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ETag != "" {
		req.Header.Set("If-None-Match", `"`+r.ETag+`"`)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if s, ok := c.sentinels[res.StatusCode]; ok {
		return false, fmt.Errorf("%s: %w", name, s)
	}
	switch {
	case res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified:
		_, _ = io.Copy(io.Discard, res.Body)
		return false, nil
	case res.StatusCode < 200 || res.StatusCode > 299:
		msg, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		return false, fmt.Errorf("%s: %w", name, &StatusError{Code: res.StatusCode, Message: strings.TrimSpace(string(msg))})
	}
	if r.Out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return true, nil
	}
	if err := json.NewDecoder(res.Body).Decode(r.Out); err != nil {
		return false, fmt.Errorf("decoding %s answer: %w", name, err)
	}
	return true, nil
}
