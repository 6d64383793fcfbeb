package forge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Kind names a forge.
type Kind string

// The forges ferry understands.
const (
	GitHub Kind = "github"
	Gitea  Kind = "gitea"
	GitLab Kind = "gitlab"
)

// Valid reports whether k is one of the forges ferry understands.
func (k Kind) Valid() bool {
	return k == GitHub || k == Gitea || k == GitLab
}

// The events a Hook carries.
const (
	EventPush        = "push"
	EventTag         = "tag"
	EventPullRequest = "pull_request"
)

// The pull request actions a Hook carries, spelled as Drone spells them
// (DRONE_BUILD_ACTION) whatever the forge calls them.
const (
	ActionOpened       = "opened"
	ActionSynchronized = "synchronized"
	ActionReopened     = "reopened"
)

var (
	// ErrSignature means the request is not signed with the webhook secret:
	// the signature header is missing, malformed or wrong, or no secret is
	// configured. Nothing in such a request may be trusted or stored; a
	// server answers 401.
	ErrSignature = errors.New("webhook signature missing or invalid")

	// ErrIgnored means the request is genuine but ferry builds nothing for
	// it: an event such as "issues" or "ping", a branch deletion, or a
	// closed pull request. The error wraps it with the reason. A server
	// answers 204.
	ErrIgnored = errors.New("webhook event ignored")

	// ErrTooLarge means the body is larger than MaxPayload allows. It is
	// wrapped in a *PayloadError; a server may answer 413.
	ErrTooLarge = errors.New("webhook payload too large")
)

// PayloadError reports a webhook body that cannot be read or parsed. A
// server answers 400.
type PayloadError struct {
	// Kind is the forge the request claims to come from.
	Kind Kind
	// Event is the event named by the request's event header.
	Event string
	// Err says what is wrong with the payload.
	Err error
}

// Error returns a message naming the forge, the event and the problem.
func (e *PayloadError) Error() string {
	if e.Event == "" {
		return fmt.Sprintf("%s webhook payload: %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%s %q webhook payload: %v", e.Kind, e.Event, e.Err)
}

// Unwrap returns the underlying problem.
func (e *PayloadError) Unwrap() error { return e.Err }

// Hook is a verified webhook (or a polled change, see RefChange.Hook),
// reduced to what a build needs.
type Hook struct {
	// Event is EventPush, EventTag or EventPullRequest.
	Event string `json:"event"`
	// Action is the pull request action (ActionOpened, ActionSynchronized
	// or ActionReopened); it is empty for pushes and tags.
	Action string `json:"action,omitempty"`
	// Delivery is the forge's unique id for this delivery, when it sends
	// one, for recognising a redelivery.
	Delivery string `json:"delivery,omitempty"`
	// Repo is the repository the event happened in; for a pull request it
	// is the target repository, never the fork.
	Repo Repo `json:"repo"`
	// Ref is the full ref being built: refs/heads/BRANCH for a push,
	// refs/tags/TAG for a tag, and the forge's pull request ref
	// (refs/pull/N/head, or refs/merge-requests/N/head on GitLab) for a
	// pull request.
	Ref string `json:"ref"`
	// Branch is the target branch: the branch pushed to, or the branch a
	// pull request wants to merge into. It is empty for a tag, whose name
	// is in Ref.
	Branch string `json:"branch,omitempty"`
	// SourceBranch is the branch a pull request comes from; for a push it
	// equals Branch.
	SourceBranch string `json:"source_branch,omitempty"`
	// SHA is the commit to build. For an annotated tag it is the commit the
	// tag points to, not the tag object.
	SHA string `json:"sha"`
	// Before is the commit the ref pointed to before, when the forge says.
	// It is all zeros for a new branch.
	Before string `json:"before,omitempty"`
	// Message is the commit message without trailing newlines, or a pull
	// request's title.
	Message string `json:"message,omitempty"`
	// Link is a web page for the change: a compare view, the commit or the
	// pull request.
	Link string `json:"link,omitempty"`
	// Author is who wrote the change: the commit's author for a push or a
	// tag, the pull request's author for a pull request, and the sender
	// when the payload names no commit. Forges do not always send every
	// field.
	Author User `json:"author"`
	// Sender is the account whose action sent the webhook.
	Sender User `json:"sender"`
	// PullRequest describes the pull request; it is zero for other events.
	PullRequest PullRequest `json:"pull_request,omitzero"`
	// ChangedPaths lists the files the pushed commits added, modified or
	// removed, sorted. It is nil when unknown: for pull requests, and when
	// the forge truncated the commit list. Never treat nil as "no files
	// changed".
	ChangedPaths []string `json:"changed_paths,omitempty"`
}

// Repo describes a repository as a forge reports it.
type Repo struct {
	// Slug is the full name, "namespace/name". On GitLab the namespace can
	// hold subgroups: "group/subgroup/name".
	Slug      string `json:"slug"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// CloneURL is the HTTP(S) clone URL.
	CloneURL string `json:"clone_url"`
	// SSHURL is the SSH clone URL.
	SSHURL string `json:"ssh_url,omitempty"`
	// Link is the repository's web page.
	Link          string `json:"link,omitempty"`
	DefaultBranch string `json:"default_branch,omitempty"`
	// Private is true unless anyone may clone the repository without
	// credentials. GitLab's "internal" visibility counts as private.
	Private bool `json:"private"`
}

// User is an account on a forge, or a commit's author.
type User struct {
	Login  string `json:"login,omitempty"`
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	Avatar string `json:"avatar,omitempty"`
}

// PullRequest describes a pull request (a merge request on GitLab).
type PullRequest struct {
	// Number is the number shown in the forge's UI (GitLab's iid).
	Number int64  `json:"number"`
	Title  string `json:"title,omitempty"`
	// Fork is true when the source branch lives in another repository than
	// the target. Code from a fork is untrusted: secrets are never given to
	// its builds unless a secret allows it.
	Fork bool `json:"fork"`
	// SourceRepoCloneURL is the HTTP(S) clone URL of the repository the
	// source branch lives in.
	SourceRepoCloneURL string `json:"source_repo_clone_url,omitempty"`
}

// Detect names the forge a webhook request comes from by its event header,
// or returns "" when it carries none that ferry knows. Gitea also sends
// GitHub's and Gogs' headers, so Gitea's own header is checked first.
func Detect(r *http.Request) Kind {
	switch {
	case r.Header.Get("X-Gitea-Event") != "", r.Header.Get("X-Forgejo-Event") != "":
		return Gitea
	case r.Header.Get("X-Gitlab-Event") != "":
		return GitLab
	case r.Header.Get("X-GitHub-Event") != "":
		return GitHub
	}
	return ""
}

// ParseHook reads a webhook request from forge kind, verifies it against
// secret, and parses it. It reads at most MaxPayload(kind) bytes of the
// body.
//
// Memory stays bounded before the request is authenticated: what the
// headers alone can prove (the signature header is present and well
// formed; GitLab's X-Gitlab-Token, which is the secret itself) is checked
// before the body is read, and the HMAC (GitHub's X-Hub-Signature-256,
// Gitea's X-Gitea-Signature or the X-Hub-Signature-256 it also sends) is
// computed while the body streams to a small buffer, spilling to an
// unlinked temporary file past 64 KiB. Nothing in the body, not even a
// form encoding, is parsed before the signature matches. An empty secret
// verifies nothing and fails.
//
// It returns an error wrapping ErrSignature for a request that is not
// signed with secret, one wrapping ErrIgnored for an event ferry does not
// build, and a *PayloadError for a body that cannot be read or parsed (one
// wrapping ErrTooLarge for a body over the limit).
func ParseHook(r *http.Request, kind Kind, secret string) (*Hook, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("parsing webhook: unknown forge %q", kind)
	}
	event := eventHeader(r.Header, kind)
	v, err := newVerifier(kind, r.Header, secret)
	if err != nil {
		return nil, err
	}
	body, err := readBody(r, MaxPayload(kind), v)
	if err != nil {
		return nil, &PayloadError{Kind: kind, Event: event, Err: err}
	}
	defer body.Close()
	if err := v.check(); err != nil {
		return nil, err
	}
	if event == "" {
		return nil, fmt.Errorf("%w: no event header", ErrIgnored)
	}
	raw, err := body.Bytes()
	if err != nil {
		return nil, &PayloadError{Kind: kind, Event: event, Err: err}
	}
	payload, err := formPayload(r.Header, raw)
	if err != nil {
		return nil, &PayloadError{Kind: kind, Event: event, Err: err}
	}
	hook, err := parsePayload(kind, event, payload)
	if err != nil {
		return nil, err
	}
	hook.Delivery = deliveryHeader(r.Header, kind)
	return hook, nil
}

// parsePayload parses a verified JSON payload of event from forge kind.
func parsePayload(kind Kind, event string, payload []byte) (*Hook, error) {
	var (
		hook *Hook
		err  error
	)
	switch kind {
	case GitHub:
		hook, err = parseGitHub(event, payload)
	case Gitea:
		hook, err = parseGitea(event, payload)
	case GitLab:
		hook, err = parseGitLab(event, payload)
	default:
		return nil, fmt.Errorf("parsing webhook: unknown forge %q", kind)
	}
	if err != nil {
		if errors.Is(err, ErrIgnored) {
			return nil, err
		}
		return nil, &PayloadError{Kind: kind, Event: event, Err: err}
	}
	hook.Message = strings.TrimRight(hook.Message, "\r\n")
	if hook.Author == (User{}) {
		// A tag of an existing commit lists no commits: the pusher is
		// the best answer there is.
		hook.Author = hook.Sender
	}
	return hook, nil
}

// eventHeader returns the event a request names in kind's header.
func eventHeader(h http.Header, kind Kind) string {
	var names []string
	switch kind {
	case GitHub:
		names = []string{"X-GitHub-Event"}
	case Gitea:
		names = []string{"X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event", "X-GitHub-Event"}
	case GitLab:
		names = []string{"X-Gitlab-Event"}
	}
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// deliveryHeader returns the forge's delivery id, if any.
func deliveryHeader(h http.Header, kind Kind) string {
	var names []string
	switch kind {
	case GitHub:
		names = []string{"X-GitHub-Delivery"}
	case Gitea:
		names = []string{"X-Gitea-Delivery", "X-Forgejo-Delivery", "X-GitHub-Delivery"}
	case GitLab:
		names = []string{"X-Gitlab-Event-UUID", "Idempotency-Key"}
	}
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// formPayload returns the JSON document in body. GitHub and Gitea can send
// it form-encoded, as the "payload" field; the signature still covers the
// raw body.
func formPayload(h http.Header, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("decoding form body: %w", err)
	}
	if !form.Has("payload") {
		return nil, errors.New(`form body has no "payload" field`)
	}
	return []byte(form.Get("payload")), nil
}

// decode unmarshals a JSON payload into v, with errors that say where the
// problem is.
func decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return errors.New("empty body")
	}
	err := json.Unmarshal(data, v)
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax) && int(syntax.Offset) >= len(data):
		return fmt.Errorf("invalid JSON: the document is truncated after %d bytes", len(data))
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid JSON at byte %d: %w", syntax.Offset, err)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q is a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// splitSlug splits "a/b/c" into namespace "a/b" and name "c".
func splitSlug(slug string) (namespace, name string) {
	if i := strings.LastIndex(slug, "/"); i >= 0 {
		return slug[:i], slug[i+1:]
	}
	return "", slug
}

// isZeroSHA reports whether sha is the all-zeros id forges send for a ref
// that does not exist (before a creation, after a deletion).
func isZeroSHA(sha string) bool {
	return sha != "" && strings.Trim(sha, "0") == ""
}

// changedPaths merges the files of a push's commits; truncated says the
// forge left commits out, in which case the answer is unknown (nil).
func changedPaths(truncated bool, lists ...[]string) []string {
	if truncated {
		return nil
	}
	seen := map[string]bool{}
	for _, l := range lists {
		for _, p := range l {
			seen[p] = true
		}
	}
	if len(seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// refKind classifies a pushed ref.
func refKind(ref string) (event, short string, ok bool) {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return EventPush, b, true
	}
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return EventTag, t, true
	}
	return "", "", false
}

// required returns an error naming the first empty field; pairs are
// name, value.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("missing field %q", pairs[i])
		}
	}
	return nil
}

// WebhookEvents returns the events to tick in the webhook settings of forge
// kind, by the names its settings page gives them, so that pushes, tags and
// pull requests all build; nil for an unknown forge.
//
// GitHub and Gitea send a pushed tag as a push event, so "push" covers
// tags there; GitLab sends tags as "Tag push events" of their own. A
// pull request that gets new commits comes as "Pull Request Synchronized"
// on Gitea, which its settings list apart from "Pull Request".
func WebhookEvents(kind Kind) []string {
	switch kind {
	case GitHub:
		return []string{"Pushes", "Pull requests"}
	case Gitea:
		return []string{"Push", "Pull Request", "Pull Request Synchronized"}
	case GitLab:
		return []string{"Push events", "Tag push events", "Merge request events"}
	}
	return nil
}
