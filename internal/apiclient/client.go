// Package apiclient is a small typed client for ferry's user API: repos,
// builds, logs (whole, tailed or followed live over Server-Sent Events),
// secrets, users and tokens. The server side is internal/server; the API is
// described by docs/openapi.json, and the types here mirror its schemas
// field for field, so that encoding one of them again yields the object
// the server sent.
//
// Every call makes one request, except FollowLog, which reconnects a
// dropped stream where it left off. A non-2xx answer is returned as an
// *Error carrying the server's message and status code.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultServer is the server URL the CLI uses when none is given.
const DefaultServer = "http://localhost:8080"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Error is a non-2xx answer from the server. Message is the server's
// "error" field, or the start of the body when the answer is not ferry's
// JSON error (a proxy's page, for instance).
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Message is the server's explanation.
	Message string
	// Field names the request field at fault, when the server names one.
	Field string
}

// Error returns the server's message followed by the HTTP status.
func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// IsStatus reports whether err is, or wraps, an *Error with the given
// HTTP status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// Client calls one ferry server's API with one personal token. Create it
// with New. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client for the server at server (an http:// or https://
// URL, e.g. "https://ci.example.com") that authenticates with token. When
// hc is nil the client uses one that honours the proxy environment
// variables and gives up on a server that sends no answer headers within
// two minutes; there is no overall timeout, so log streams may run long:
// bound calls with their context.
func New(server, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", server, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q must be an http:// or https:// URL with a host", server)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q must not have a query or fragment", server)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 2 * time.Minute
		hc = &http.Client{Transport: t}
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// Server returns the server's base URL.
func (c *Client) Server() string { return c.base.String() }

// CloseIdleConnections closes the connections the client keeps open for
// reuse. Call it when done with the client.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// endpoint returns the URL of path (already escaped) with query q.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	// path was built with url.PathEscape, so unescaping it cannot fail.
	plain, _ := url.PathUnescape(path)
	u.Path = c.base.Path + plain
	u.RawPath = c.base.EscapedPath() + path
	u.RawQuery = q.Encode()
	return u.String()
}

// newRequest builds a request to path (already escaped) with query q and
// a JSON body in (none when nil).
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send sends req and returns the answer when its status is 2xx; any other
// answer is read and returned as an *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	res, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("cannot reach the server at %s: %w", c.Server(), err)
	}
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		return res, nil
	}
	defer res.Body.Close()
	return nil, readError(res)
}

// readError turns a non-2xx answer into an *Error.
func readError(res *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	e := &Error{StatusCode: res.StatusCode}
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/json" &&
		json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Field = body.Error, body.Field
		return e
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "…"
	}
	if msg == "" {
		msg = http.StatusText(res.StatusCode)
	}
	if msg == "" {
		msg = "no message"
	}
	e.Message = msg
	return e
}

// call sends a request with a JSON body in (none when nil) and decodes a
// JSON answer into out (discarded when nil).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	h, _, err := c.callStatus(ctx, method, path, q, in, out)
	return h, err
}

// callStatus is call for a caller that needs the answer's status code.
func (c *Client) callStatus(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, int, error) {
	req, err := c.newRequest(ctx, method, path, q, in)
	if err != nil {
		return nil, 0, err
	}
	res, err := c.send(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	if out == nil || res.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, res.Body)
		return res.Header, res.StatusCode, nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return nil, 0, fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return res.Header, res.StatusCode, nil
}

// repoPath returns the escaped API path of the repo slug ("OWNER/NAME").
func repoPath(slug string) (string, error) {
	owner, name, ok := strings.Cut(slug, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("repo %q must be OWNER/NAME", slug)
	}
	return "/api/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name), nil
}

// buildPath returns the escaped API path of build number of repo slug.
func buildPath(slug string, number int64) (string, error) {
	p, err := repoPath(slug)
	if err != nil {
		return "", err
	}
	if number <= 0 {
		return "", fmt.Errorf("build number %d must be positive", number)
	}
	return p + "/builds/" + strconv.FormatInt(number, 10), nil
}
