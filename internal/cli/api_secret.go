package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/ferryci/ferry/internal/apiclient"
)

// maxSecretValue is the largest value the server stores.
const maxSecretValue = 64 << 10

// SecretOptions are the flags of `ferry secret add` and `ferry secret
// update`.
type SecretOptions struct {
	// Value is the secret's value (--value).
	Value *string
	// FromFile reads the value from a file, as it is (--from-file).
	FromFile string
	// Events limits the secret to builds of these events. For a new
	// secret, empty means every event; an update leaves the events as
	// they are when Events is nil, and makes them every event when it is
	// empty but not nil.
	Events []string
	// AllowPullRequest exposes the secret to pull requests from forks;
	// nil leaves it as it is (no, for a new secret).
	AllowPullRequest *bool
}

// SecretAdd runs `ferry secret add`: it adds a secret to the repo slug,
// or a global one when slug is empty. The value comes from --value, from
// --from-file, or else from Stdin: typed without echo at a terminal, or
// read to its end with one trailing newline removed. The value is never
// printed.
func (a *API) SecretAdd(ctx context.Context, slug, name string, o SecretOptions) error {
	if err := a.checkSecretTarget(slug, name); err != nil {
		return err
	}
	value, err := a.secretValue(name, o, true)
	if err != nil {
		return err
	}
	req := &apiclient.SecretRequest{Name: &name, Value: value, AllowPullRequest: o.AllowPullRequest}
	if len(o.Events) > 0 {
		req.Events = &o.Events
	}
	s, err := a.Client.CreateSecret(ctx, slug, req)
	if err != nil {
		return fmt.Errorf("adding %s: %w", secretDesc(slug, name), err)
	}
	if a.JSON {
		return a.printJSON(s)
	}
	fmt.Fprintf(a.Stdout, "added %s (events: %s; pull requests from forks: %s)\n",
		secretDesc(slug, s.Name), events(s.Events), yesNo(s.AllowPullRequest))
	return nil
}

// SecretUpdate runs `ferry secret update`: it changes a secret's value
// (only when --value or --from-file is given), events or pull request
// setting.
func (a *API) SecretUpdate(ctx context.Context, slug, name string, o SecretOptions) error {
	if err := a.checkSecretTarget(slug, name); err != nil {
		return err
	}
	value, err := a.secretValue(name, o, false)
	if err != nil {
		return err
	}
	req := &apiclient.SecretRequest{Value: value, AllowPullRequest: o.AllowPullRequest}
	if o.Events != nil {
		req.Events = &o.Events
	}
	if *req == (apiclient.SecretRequest{}) {
		return usagef("secret update: nothing to change; give --value, --from-file, --event or --allow-pull-request")
	}
	s, err := a.Client.UpdateSecret(ctx, slug, name, req)
	if err != nil {
		return fmt.Errorf("updating %s: %w", secretDesc(slug, name), err)
	}
	if a.JSON {
		return a.printJSON(s)
	}
	fmt.Fprintf(a.Stdout, "updated %s (events: %s; pull requests from forks: %s)\n",
		secretDesc(slug, s.Name), events(s.Events), yesNo(s.AllowPullRequest))
	return nil
}

// SecretList runs `ferry secret ls`: the names and settings of the repo's
// secrets, or of the global ones when slug is empty; never their values.
func (a *API) SecretList(ctx context.Context, slug string) error {
	if slug != "" {
		if err := CheckSlug(slug); err != nil {
			return err
		}
	}
	ss, err := a.Client.Secrets(ctx, slug)
	if err != nil {
		return fmt.Errorf("listing the secrets of %s: %w", scope(slug), err)
	}
	return printList(a, ss, "no secrets in "+scope(slug), []string{"NAME", "EVENTS", "PULL REQUESTS", "UPDATED"}, func(s *apiclient.Secret) []string {
		return []string{s.Name, events(s.Events), yesNo(s.AllowPullRequest), a.ago(s.Updated)}
	})
}

// SecretRemove runs `ferry secret rm`.
func (a *API) SecretRemove(ctx context.Context, slug, name string) error {
	if err := a.checkSecretTarget(slug, name); err != nil {
		return err
	}
	if err := a.Client.DeleteSecret(ctx, slug, name); err != nil {
		return fmt.Errorf("removing %s: %w", secretDesc(slug, name), err)
	}
	if !a.JSON {
		fmt.Fprintf(a.Stdout, "removed %s\n", secretDesc(slug, name))
	}
	return nil
}

func (a *API) checkSecretTarget(slug, name string) error {
	if slug != "" {
		if err := CheckSlug(slug); err != nil {
			return err
		}
	}
	if name == "" {
		return usagef("the secret's NAME must not be empty")
	}
	return nil
}

// secretValue returns the value the options give: --value, --from-file,
// or when required Stdin. It returns nil when none is given and none is
// required.
func (a *API) secretValue(name string, o SecretOptions, required bool) (*string, error) {
	if o.Value != nil && o.FromFile != "" {
		return nil, usagef("give --value or --from-file, not both")
	}
	var v string
	switch {
	case o.Value != nil:
		v = *o.Value
	case o.FromFile != "":
		data, err := os.ReadFile(o.FromFile)
		if err != nil {
			return nil, usagef("--from-file: %v", err)
		}
		v = string(data)
	case !required:
		return nil, nil
	default:
		var err error
		if v, err = a.readSecret(name); err != nil {
			return nil, err
		}
	}
	if v == "" {
		return nil, usagef("the value of secret %s is empty", name)
	}
	if len(v) > maxSecretValue {
		return nil, usagef("the value of secret %s is %d bytes; the server stores at most %d", name, len(v), maxSecretValue)
	}
	return &v, nil
}

// readSecret reads a secret's value from Stdin: one line typed without
// echo at a terminal, or else everything up to the end, less one trailing
// newline.
func (a *API) readSecret(name string) (string, error) {
	if f, ok := terminal(a.Stdin); ok {
		fmt.Fprintf(a.Stderr, "value of secret %s: ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Stderr)
		if err != nil {
			return "", fmt.Errorf("reading the secret's value from the terminal: %w", err)
		}
		return string(b), nil
	}
	if a.Stdin == nil {
		return "", usagef("give the value of secret %s with --value, --from-file or on standard input", name)
	}
	data, err := io.ReadAll(io.LimitReader(a.Stdin, maxSecretValue+2))
	if err != nil {
		return "", fmt.Errorf("reading the secret's value from standard input: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	return string(data), nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminal returns r as a file when it is a terminal.
func terminal(r io.Reader) (*os.File, bool) {
	f, ok := r.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	return f, true
}

// scope names where secrets live.
func scope(slug string) string {
	if slug == "" {
		return "the global scope"
	}
	return slug
}

// secretDesc names a secret.
func secretDesc(slug, name string) string {
	if slug == "" {
		return "global secret " + name
	}
	return "secret " + name + " of " + slug
}

// events formats a secret's events.
func events(ev []string) string {
	if len(ev) == 0 {
		return "all"
	}
	return strings.Join(ev, ",")
}
