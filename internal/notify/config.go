package notify

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is one notification endpoint, as written in a deploy spec's
// notify: list or in a --notify flag. Validate checks it; NewTarget builds
// it.
type Config struct {
	// Type is a registered notifier type: webhook, slack or graphite.
	Type string `json:"type"`
	// URL is the endpoint: the webhook's URL, the Slack (Mattermost,
	// Rocket.Chat) incoming webhook URL, or graphite-web's base URL
	// (events are posted to URL/events/). Basic auth may be given as
	// https://USER:PASSWORD@host/.
	URL string `json:"url"`
	// Secret, for webhooks, signs each request (X-Ferry-Signature-256).
	Secret string `json:"secret,omitempty"`
	// Headers are added to each request, e.g. an Authorization header.
	Headers map[string]string `json:"headers,omitempty"`
	// On filters the events sent (see Filter); empty means DefaultOn.
	On []string `json:"on,omitempty"`
	// Timeout bounds each attempt (DefaultTimeout when 0).
	Timeout time.Duration `json:"timeout,omitempty"`
	// Channel, Username and Icon (an :emoji: or an image URL) override the
	// Slack webhook's defaults.
	Channel  string `json:"channel,omitempty"`
	Username string `json:"username,omitempty"`
	Icon     string `json:"icon,omitempty"`
	// Tags are added to each Graphite event's tags.
	Tags []string `json:"tags,omitempty"`
	// FromSecret names the repository secrets that hold some values, as
	// Drone's from_secret does, so that a Slack webhook URL or a signing
	// key need not be written into .ferry.yml: "url", "secret" or
	// "headers.NAME" → the secret's name. Resolve fills them in.
	FromSecret map[string]string `json:"from_secret,omitempty"`
}

// SecretNames returns the names of the secrets c's values come from,
// sorted and without repeats.
func (c *Config) SecretNames() []string {
	var out []string
	for _, name := range c.FromSecret {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Resolve returns a copy of c with the values that come from secrets
// filled in from secrets (name → value), validated. A secret that is
// missing is an error naming the field and the secret.
func (c *Config) Resolve(secrets map[string]string) (Config, error) {
	r := *c
	r.FromSecret = nil
	r.Headers = maps.Clone(c.Headers)
	for _, field := range slices.Sorted(maps.Keys(c.FromSecret)) {
		name := c.FromSecret[field]
		v, ok := secrets[name]
		if !ok {
			return r, fieldErr(field, "from_secret: no secret %q that deployments may use; add it with `ferry secret add OWNER/NAME %s` (for no event, or for push or promote)", name, name)
		}
		switch {
		case field == "url":
			r.URL = v
		case field == "secret":
			r.Secret = v
		case strings.HasPrefix(field, "headers."):
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers[strings.TrimPrefix(field, "headers.")] = v
		}
	}
	return r, r.Validate()
}

// placeholders returns a copy of c with a stand-in for each value that
// comes from a secret, to validate the rest before the secrets are known.
func (c *Config) placeholders() Config {
	stand := map[string]string{}
	for _, name := range c.FromSecret {
		stand[name] = "from-secret"
	}
	r, _ := c.Resolve(stand)
	if c.FromSecret["url"] != "" {
		r.URL = "https://from-secret.invalid/"
	}
	return r
}

// DefaultTimeout bounds one delivery attempt when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// MaxTimeout is the longest Config.Timeout accepted.
const MaxTimeout = 5 * time.Minute

// DefaultOn is the filter of a Config without one: every finished build,
// and every deployment that ended (succeeded, failed, rolled back,
// cancelled), as a deploy spec's notify: documents.
var DefaultOn = []string{"build.finished", "deployment.succeeded", "deployment.failed", "deployment.rolled_back", "deployment.cancelled"}

// The actions and statuses a filter may name, per kind.
var (
	buildWords      = []string{ActionStarted, ActionFinished, "success", "failure", "error", "killed"}
	deploymentWords = []string{DeploymentStarted, DeploymentSucceeded, DeploymentFailed, DeploymentRolledBack, DeploymentCancelled}
)

// FieldError is a problem with one field of a Config.
type FieldError struct {
	// Field is the field's key, as in YAML: "url", "on[1]", "headers".
	Field string
	// Msg says what is wrong and what would be valid.
	Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks the fields every type shares (type, url, on, timeout,
// headers) and, through the type's Factory, the type's own. The error is
// a *FieldError naming the field.
func (c *Config) Validate() error {
	if len(c.FromSecret) > 0 {
		p := c.placeholders()
		_, err := p.build()
		return err
	}
	_, err := c.build()
	return err
}

// build validates c and returns its Notifier.
func (c *Config) build() (Notifier, error) {
	if c.Type == "" {
		return nil, fieldErr("type", "missing; use one of %s", strings.Join(Types(), ", "))
	}
	f := factory(c.Type)
	if f == nil {
		return nil, fieldErr("type", "unknown type %q; use one of %s", c.Type, strings.Join(Types(), ", "))
	}
	if err := checkURL(c.URL); err != nil {
		return nil, err
	}
	for i, p := range c.On {
		if err := checkPattern(p); err != nil {
			return nil, fieldErr(fmt.Sprintf("on[%d]", i), "%v", err)
		}
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		return nil, fieldErr("timeout", "%s is out of range; use a duration from 1ms to %s, or leave it out for %s", c.Timeout, MaxTimeout, DefaultTimeout)
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			return nil, fieldErr("headers", "%q is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~)", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, fieldErr("headers", "the value of %s contains a line break", k)
		}
	}
	n, err := f(c)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fieldErr("type", "%s: %v", c.Type, err)
	}
	return n, nil
}

func checkURL(s string) error {
	if s == "" {
		return fieldErr("url", "missing; give the endpoint's http:// or https:// URL")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr("url", "%q is not an http:// or https:// URL", redact(s))
	}
	return nil
}

// redact hides the passwords of the URLs in s, for messages and logs.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		host := s[:strings.IndexAny(s+"/", "/?#")]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			if user, _, ok := strings.Cut(host[:at], ":"); ok {
				b.WriteString(user + ":xxxxx")
				s = s[at:]
			}
		}
	}
	b.WriteString(s)
	return b.String()
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r) {
			continue
		}
		return false
	}
	return true
}

// checkPattern validates one filter pattern; see Filter.
func checkPattern(p string) error {
	kind, word, dotted := strings.Cut(p, ".")
	if !dotted {
		if p == "*" || slices.Contains(buildWords, p) || slices.Contains(deploymentWords, p) {
			return nil
		}
		return fmt.Errorf("unknown event %q; use KIND.ACTION (build.finished, deployment.failed, build.*, *) or an action or status alone (%s)",
			p, strings.Join(uniq(append(slices.Clone(buildWords), deploymentWords...)), ", "))
	}
	var words []string
	switch kind {
	case string(KindBuild):
		words = buildWords
	case string(KindDeployment):
		words = deploymentWords
	default:
		return fmt.Errorf("unknown kind %q in %q; use build or deployment", kind, p)
	}
	if word == "*" || slices.Contains(words, word) {
		return nil
	}
	return fmt.Errorf("unknown %s event %q; use %s.* or one of %s", kind, p, kind, strings.Join(prefixAll(kind+".", words), ", "))
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func prefixAll(prefix string, s []string) []string {
	out := make([]string, len(s))
	for i, w := range s {
		out[i] = prefix + w
	}
	return out
}

// Filter reports whether an endpoint with filter on (DefaultOn when empty)
// wants ev. A pattern is:
//
//   - KIND.ACTION, e.g. build.finished or deployment.rolled_back;
//   - KIND.STATUS, e.g. build.failure (a build that finished failing);
//   - KIND.* for every event of a kind, or * for every event;
//   - an action or status alone, e.g. failed, for every kind that has it
//     (a deploy spec's on: [failed, rolled_back]).
func Filter(on []string, ev *Event) bool {
	if len(on) == 0 {
		on = DefaultOn
	}
	for _, p := range on {
		kind, word, dotted := strings.Cut(p, ".")
		if !dotted {
			kind, word = "*", p
		}
		if kind != "*" && kind != string(ev.Kind) {
			continue
		}
		if word == "*" || word == ev.Action || word == ev.Status {
			return true
		}
	}
	return false
}

// header returns c.Headers as an http.Header.
func (c *Config) header() http.Header {
	h := http.Header{}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	return h
}

// timeout returns the per-attempt timeout.
func (c *Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// String describes the endpoint for logs: its type and URL, password
// hidden.
func (c *Config) String() string { return c.Type + " " + redact(c.URL) }

// accepts checks that of the fields only some types take (secret,
// channel, username, icon, tags), c sets none but those its type's Factory
// names.
func (c *Config) accepts(fields ...string) error {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"secret", c.Secret != ""}, {"channel", c.Channel != ""}, {"username", c.Username != ""},
		{"icon", c.Icon != ""}, {"tags", len(c.Tags) > 0},
	} {
		if f.set && !slices.Contains(fields, f.name) {
			return fieldErr(f.name, "does not apply to type %s", c.Type)
		}
	}
	return nil
}
