package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// State is a build's state as reported to a forge.
type State string

// The states a StatusClient reports. Each forge has its own vocabulary;
// a state a forge lacks is mapped to its nearest one (see SetStatus).
const (
	StatePending  State = "pending"
	StateRunning  State = "running"
	StateSuccess  State = "success"
	StateFailure  State = "failure"
	StateError    State = "error"
	StateCanceled State = "canceled"
)

// Status is one commit status: a state under a context name.
type Status struct {
	State State
	// Context names the check on the forge, so that each event and each
	// pipeline gets its own line; see StatusContext. Empty means "ferry".
	Context string
	// TargetURL links the status to the build's page.
	TargetURL string
	// Description is a short sentence; it is cut to 140 characters, the
	// most GitHub accepts.
	Description string
}

// StatusContext returns the status context of a build's event, and of one
// of its pipelines when pipeline is not empty. It follows Drone's labels,
// which give a push, a pull request and a tag of the same commit each its
// own line on the forge rather than one that each build overwrites:
//
//	push          ferry/push  ferry/PIPELINE/push
//	pull_request  ferry/pr    ferry/PIPELINE/pr
//	tag           ferry/tag   ferry/PIPELINE/tag
//	other events  ferry       ferry/PIPELINE
//
// Like Drone, other events (cron, custom, promote, rollback) share the
// plain context: they are started by hand or by a schedule, not by the
// forge, and the latest of them is the one to show.
func StatusContext(pipeline, event string) string {
	name := "ferry"
	if pipeline != "" {
		name += "/" + pipeline
	}
	switch event {
	case EventPush:
		return name + "/push"
	case EventPullRequest:
		return name + "/pr"
	case EventTag:
		return name + "/tag"
	}
	return name
}

// StatusClient reports commit statuses to a forge.
//
// SetStatus sets status s on commit sha of the repository slug
// ("namespace/name"). Setting the same context again replaces the earlier
// status. It retries with backoff when the forge answers 5xx or 429 or
// cannot be reached, and gives up at once on any other 4xx, returning a
// *StatusError. Implementations are safe for concurrent use and hold no
// state between calls.
type StatusClient interface {
	SetStatus(ctx context.Context, slug, sha string, s Status) error
}

// NopStatusClient is a StatusClient that reports nothing, for repositories
// with no forge.
var NopStatusClient StatusClient = nopStatus{}

type nopStatus struct{}

func (nopStatus) SetStatus(context.Context, string, string, Status) error { return nil }

// StatusError is a forge's refusal of a status.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Message is the start of the response body.
	Message string
}

// Error returns the code and the forge's message.
func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("forge answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("forge answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// temporary reports whether the request may succeed if repeated.
func (e *StatusError) temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests
}

// StatusOption configures a StatusClient.
type StatusOption func(*statusClient)

// WithHTTPClient sets the HTTP client; the default is one with a 30 s
// timeout.
func WithHTTPClient(c *http.Client) StatusOption {
	return func(s *statusClient) { s.http = c }
}

// WithRetry sets how many attempts SetStatus makes in all (at least 1;
// default 4) and the wait before the first retry, which doubles with each
// further one (default 500 ms).
func WithRetry(attempts int, backoff time.Duration) StatusOption {
	return func(s *statusClient) {
		s.attempts = max(attempts, 1)
		s.backoff = backoff
	}
}

// WithStatusLogger sets the logger for retries; the default discards.
func WithStatusLogger(l *slog.Logger) StatusOption {
	return func(s *statusClient) {
		if l != nil {
			s.log = l
		}
	}
}

// Default API base URLs.
const (
	DefaultGitHubAPI = "https://api.github.com"
	DefaultGitLabURL = "https://gitlab.com"
)

// maxRetryAfter caps how long a Retry-After header can make SetStatus
// wait.
const maxRetryAfter = 30 * time.Second

// NewStatusClient returns a StatusClient for forge kind. baseURL is the API
// root: "https://api.github.com" (the default when empty) or
// "https://HOST/api/v3" for GitHub Enterprise; the server's root URL for
// Gitea ("https://gitea.example.com", required) and GitLab (default
// "https://gitlab.com"). token authenticates: a GitHub token with
// repo:status (or a fine-grained token with commit statuses: write), a
// Gitea access token, or a GitLab token with the api scope.
func NewStatusClient(kind Kind, baseURL, token string, opts ...StatusOption) (StatusClient, error) {
	if baseURL == "" {
		switch kind {
		case GitHub:
			baseURL = DefaultGitHubAPI
		case GitLab:
			baseURL = DefaultGitLabURL
		case Gitea:
			return nil, errors.New("creating gitea status client: the server URL is required")
		}
	}
	if !kind.Valid() {
		return nil, fmt.Errorf("creating status client: unknown forge %q", kind)
	}
	if token == "" {
		return nil, fmt.Errorf("creating %s status client: a token is required", kind)
	}
	base, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("creating %s status client: parsing base URL: %w", kind, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("creating %s status client: base URL %q is not an http(s) URL", kind, baseURL)
	}
	c := &statusClient{
		kind:     kind,
		base:     base,
		token:    token,
		http:     &http.Client{Timeout: 30 * time.Second},
		attempts: 4,
		backoff:  500 * time.Millisecond,
		log:      slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// statusClient implements StatusClient for all three forges; they differ
// only in the request they want.
type statusClient struct {
	kind     Kind
	base     *url.URL
	token    string
	http     *http.Client
	attempts int
	backoff  time.Duration
	log      *slog.Logger
}

var _ StatusClient = (*statusClient)(nil)

// SetStatus posts s. GitHub and Gitea have no "running" state, so it is
// reported as pending; nor a "canceled" one, reported as error. GitLab has
// no "error", reported as failed; a GitLab refusal to move a status to the
// state it already has is success.
func (c *statusClient) SetStatus(ctx context.Context, slug, sha string, s Status) error {
	u, body, err := c.request(slug, sha, s)
	if err != nil {
		return fmt.Errorf("setting %s status on %s@%s: %w", c.kind, slug, sha, err)
	}
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.post(ctx, u, body)
		if err == nil {
			return nil
		}
		var se *StatusError
		if c.kind == GitLab && errors.As(err, &se) && se.Code == http.StatusBadRequest &&
			strings.Contains(se.Message, "Cannot transition status") {
			// GitLab refuses to set a status to the state it already
			// has (https://gitlab.com/gitlab-org/gitlab-foss/-/issues/25807).
			return nil
		}
		temporary := ctx.Err() == nil && (!errors.As(err, &se) || se.temporary())
		if !temporary || attempt >= c.attempts {
			return fmt.Errorf("setting %s status on %s@%s: %w", c.kind, slug, sha, err)
		}
		wait := c.backoff << (attempt - 1)
		wait += rand.N(wait/4 + 1) // jitter, so that many builds do not retry in step
		if retryAfter > 0 {
			wait = min(retryAfter, maxRetryAfter)
		}
		c.log.Warn("commit status failed; retrying", "forge", c.kind, "repo", slug, "sha", sha,
			"attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("setting %s status on %s@%s: %w (after: %w)", c.kind, slug, sha, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// request builds the URL and JSON body of a status for c's forge.
func (c *statusClient) request(slug, sha string, s Status) (*url.URL, []byte, error) {
	if !validSHA(sha) {
		return nil, nil, fmt.Errorf("invalid commit sha %q", sha)
	}
	parts := strings.Split(slug, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, nil, fmt.Errorf("invalid repository %q", slug)
		}
	}
	if len(parts) < 2 || c.kind != GitLab && len(parts) != 2 {
		return nil, nil, fmt.Errorf("invalid repository %q: want namespace/name", slug)
	}
	ctxName := s.Context
	if ctxName == "" {
		ctxName = StatusContext("", "")
	}
	desc := truncate(s.Description, 140)
	u := *c.base
	var body any
	switch c.kind {
	case GitHub, Gitea:
		prefix := ""
		if c.kind == Gitea {
			prefix = "/api/v1"
		}
		u = *u.JoinPath(prefix, "repos", parts[0], parts[1], "statuses", sha)
		state := s.State
		switch state {
		case StateRunning:
			state = StatePending
		case StateCanceled:
			state = StateError
		}
		body = map[string]string{"state": string(state), "context": ctxName, "target_url": s.TargetURL, "description": desc}
	case GitLab:
		// The project is addressed by its URL-encoded path: a/b → a%2Fb.
		project := url.PathEscape(slug)
		u.Path = c.base.Path + "/api/v4/projects/" + slug + "/statuses/" + sha
		u.RawPath = c.base.EscapedPath() + "/api/v4/projects/" + project + "/statuses/" + sha
		state := string(s.State)
		switch s.State {
		case StateFailure, StateError:
			state = "failed"
		}
		body = map[string]string{"state": state, "name": ctxName, "target_url": s.TargetURL, "description": desc}
	}
	switch s.State {
	case StatePending, StateRunning, StateSuccess, StateFailure, StateError, StateCanceled:
	default:
		return nil, nil, fmt.Errorf("unknown state %q", s.State)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding status: %w", err)
	}
	return &u, data, nil
}

// post sends one attempt. It returns the forge's Retry-After, if any.
func (c *statusClient) post(ctx context.Context, u *url.URL, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ferry")
	switch c.kind {
	case GitHub:
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	case Gitea:
		req.Header.Set("Authorization", "token "+c.token)
	case GitLab:
		req.Header.Set("PRIVATE-TOKEN", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return retryAfter, &StatusError{Code: resp.StatusCode, Message: errorMessage(msg)}
}

// errorMessage extracts a forge's error text from a response body.
func errorMessage(body []byte) string {
	var v struct {
		Message any `json:"message"`
		Error   any `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil {
		for _, m := range []any{v.Message, v.Error} {
			switch m := m.(type) {
			case string:
				if m != "" {
					return m
				}
			case nil:
			default:
				if b, err := json.Marshal(m); err == nil {
					return string(b)
				}
			}
		}
	}
	return truncate(strings.TrimSpace(string(body)), 200)
}

// truncate cuts s to at most n characters, ending with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
