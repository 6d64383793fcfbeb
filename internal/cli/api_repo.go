package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryci/ferry/internal/apiclient"
)

// RepoAdd runs `ferry repo add`: it adds the repo req.GitURL names, and
// prints it with its webhook URL and secret (which the server shows this
// once).
func (a *API) RepoAdd(ctx context.Context, req *apiclient.RepoRequest) error {
	if req.GitURL == nil || strings.TrimSpace(*req.GitURL) == "" {
		return usagef("repo add needs the repository's GIT_URL")
	}
	if err := checkLocalPath(*req.GitURL); err != nil {
		return err
	}
	if req.Slug != nil {
		if err := CheckSlug(*req.Slug); err != nil {
			return err
		}
	}
	r, err := a.Client.CreateRepo(ctx, req)
	if err != nil {
		return fmt.Errorf("adding %s: %w", *req.GitURL, err)
	}
	if a.JSON {
		return a.printJSON(r)
	}
	fmt.Fprintf(a.Stdout, "added %s (%s)\n", r.Slug, r.GitURL)
	a.printRepo(r)
	if r.Forge != "none" {
		fmt.Fprintf(a.Stdout, "\nConfigure a webhook in %s that sends its events to\n  %s\nwith the secret above; it is not shown again. Tick these events: %s.\n",
			r.Forge, r.WebhookURL, strings.Join(r.WebhookEvents, ", "))
		switch r.Forge {
		case "github", "gitea":
			fmt.Fprintf(a.Stdout, "(%s sends tags as push events.)\n", r.Forge)
		}
	}
	a.printWarnings(r.Warnings)
	return nil
}

// printWarnings prints the server's warnings about a repo's setup.
func (a *API) printWarnings(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(a.Stderr, "warning: %s\n", w)
	}
}

// CredentialOptions are the flags that give a repo's git credential. The
// secrets come from files, never from the command line, where the process
// list and the shell's history would show them.
type CredentialOptions struct {
	// User is the HTTPS username (--credential-user).
	User string
	// TokenFile holds the HTTPS password or access token
	// (--credential-token-file); one trailing newline is removed.
	TokenFile string
	// SSHKeyFile holds an SSH private key (--ssh-key-file).
	SSHKeyFile string
	// KnownHostsFile holds the known_hosts lines of the SSH server
	// (--known-hosts-file).
	KnownHostsFile string
}

// Request reads the files o names and returns the credential request, or
// nil when o gives no credential.
func (o CredentialOptions) Request() (*apiclient.CredentialRequest, error) {
	if o == (CredentialOptions{}) {
		return nil, nil
	}
	if o.SSHKeyFile != "" && (o.User != "" || o.TokenFile != "") {
		return nil, usagef("give --ssh-key-file, or --credential-user with --credential-token-file, not both")
	}
	if o.KnownHostsFile != "" && o.SSHKeyFile == "" {
		return nil, usagef("--known-hosts-file goes with --ssh-key-file")
	}
	if o.User != "" && o.TokenFile == "" {
		return nil, usagef("--credential-user needs --credential-token-file, the file holding the password or access token")
	}
	read := func(flag, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", usagef("%s: %v", flag, err)
		}
		if len(data) == 0 {
			return "", usagef("%s: %s is empty", flag, path)
		}
		return string(data), nil
	}
	req := &apiclient.CredentialRequest{Username: o.User}
	token, err := read("--credential-token-file", o.TokenFile)
	if err != nil {
		return nil, err
	}
	req.Password = strings.TrimSuffix(strings.TrimSuffix(token, "\n"), "\r")
	if req.SSHKey, err = read("--ssh-key-file", o.SSHKeyFile); err != nil {
		return nil, err
	}
	if req.KnownHosts, err = read("--known-hosts-file", o.KnownHostsFile); err != nil {
		return nil, err
	}
	return req, nil
}

// RepoCredentialSet runs `ferry repo credential set`: it sets or replaces
// the git credential the server and the agents use to read the repo.
func (a *API) RepoCredentialSet(ctx context.Context, slug string, o CredentialOptions) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	req, err := o.Request()
	if err != nil {
		return err
	}
	if req == nil {
		return usagef("repo credential set needs --credential-user with --credential-token-file, or --ssh-key-file")
	}
	cr, err := a.Client.SetCredential(ctx, slug, req)
	if err != nil {
		return fmt.Errorf("setting the credential of %s: %w", slug, err)
	}
	if a.JSON {
		return a.printJSON(cr)
	}
	fmt.Fprintf(a.Stdout, "set the credential of %s: %s\n", slug, credential(cr))
	return nil
}

// RepoCredentialRemove runs `ferry repo credential rm`.
func (a *API) RepoCredentialRemove(ctx context.Context, slug string) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if err := a.Client.DeleteCredential(ctx, slug); err != nil {
		return fmt.Errorf("removing the credential of %s: %w", slug, err)
	}
	if !a.JSON {
		fmt.Fprintf(a.Stdout, "removed the credential of %s\n", slug)
	}
	return nil
}

// credential describes a credential without its secret.
func credential(c *apiclient.Credential) string {
	switch {
	case c == nil || !c.Set:
		return "none"
	case c.Username != "":
		return c.Kind + " (user " + c.Username + ")"
	}
	return c.Kind
}

// checkLocalPath refuses a git URL that is a path on this machine, which
// git would take for one but the server does not, and suggests its
// file:// URL.
func checkLocalPath(u string) error {
	u = strings.TrimSpace(u)
	if strings.Contains(u, "://") {
		return nil
	}
	isPath := filepath.IsAbs(u) || strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../") || u == "." || u == ".."
	if !isPath && !strings.Contains(u, ":") {
		_, err := os.Stat(u) // a directory named like a relative path
		isPath = err == nil
	}
	if !isPath {
		return nil
	}
	abs, err := filepath.Abs(u)
	if err != nil {
		abs = u
	}
	return usagef("GIT_URL %q is a path, not a URL; did you mean file://%s ? (the server reads it from its own disk)", u, abs)
}

// RepoUpdate runs `ferry repo update`: it changes the fields req sets and
// prints the repo as it is now.
func (a *API) RepoUpdate(ctx context.Context, slug string, req *apiclient.RepoRequest) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if *req == (apiclient.RepoRequest{}) {
		return usagef("repo update: nothing to change; give at least one flag")
	}
	if req.Slug != nil {
		if err := CheckSlug(*req.Slug); err != nil {
			return err
		}
	}
	r, err := a.Client.UpdateRepo(ctx, slug, req)
	if err != nil {
		return fmt.Errorf("updating %s: %w", slug, err)
	}
	if a.JSON {
		return a.printJSON(r)
	}
	fmt.Fprintf(a.Stdout, "updated %s\n", r.Slug)
	a.printRepo(r)
	a.printWarnings(r.Warnings)
	return nil
}

// RepoList runs `ferry repo ls`: the repos the caller has a role on.
func (a *API) RepoList(ctx context.Context) error {
	rs, err := a.Client.Repos(ctx)
	if err != nil {
		return fmt.Errorf("listing repos: %w", err)
	}
	return printList(a, rs, "no repos; add one with `ferry repo add GIT_URL`", []string{"REPO", "FORGE", "BRANCH", "POLL", "ACTIVE", "ROLE", "BUILDS", "GIT URL"}, func(r *apiclient.Repo) []string {
		return []string{r.Slug, r.Forge, orDash(r.DefaultBranch), pollInterval(r.PollInterval), yesNo(r.Active),
			orDash(r.Role), fmt.Sprint(r.BuildCounter), r.GitURL}
	})
}

// RepoInfo runs `ferry repo info`: one repo's settings.
func (a *API) RepoInfo(ctx context.Context, slug string) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	r, err := a.Client.Repo(ctx, slug)
	if err != nil {
		return fmt.Errorf("getting %s: %w", slug, err)
	}
	if a.JSON {
		return a.printJSON(r)
	}
	fmt.Fprintln(a.Stdout, r.Slug)
	a.printRepo(r)
	return nil
}

// RepoRemove runs `ferry repo rm`: it removes the repo with its builds,
// logs and secrets.
func (a *API) RepoRemove(ctx context.Context, slug string) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if err := a.Client.DeleteRepo(ctx, slug); err != nil {
		return fmt.Errorf("removing %s: %w", slug, err)
	}
	if !a.JSON {
		fmt.Fprintf(a.Stdout, "removed %s\n", slug)
	}
	return nil
}

// printRepo prints a repo's settings as an indented list.
func (a *API) printRepo(r *apiclient.Repo) {
	w := a.table()
	row(w, "  git url:", r.GitURL)
	row(w, "  forge:", r.Forge)
	row(w, "  default branch:", orDash(r.DefaultBranch))
	row(w, "  config path:", configPath(r.ConfigPath))
	row(w, "  polling:", pollInterval(r.PollInterval))
	row(w, "  timeout:", timeout(r.Timeout))
	row(w, "  trusted:", yesNo(r.Trusted))
	row(w, "  active:", yesNo(r.Active))
	row(w, "  builds:", fmt.Sprint(r.BuildCounter))
	row(w, "  webhook url:", r.WebhookURL)
	if r.Credential != nil {
		row(w, "  credential:", credential(r.Credential))
	}
	if r.WebhookSecret != "" {
		row(w, "  webhook secret:", r.WebhookSecret)
	}
	if r.Role != "" {
		row(w, "  your role:", r.Role)
	}
	row(w, "  created:", a.stamp(r.Created))
	_ = w.Flush()
}

func configPath(p string) string {
	if p == "" {
		return ".ferry.yml, then .drone.yml (default)"
	}
	return p
}

func pollInterval(d apiclient.Duration) string {
	if d == 0 {
		return "off"
	}
	return "every " + d.String()
}

func timeout(d apiclient.Duration) string {
	if d == 0 {
		return "server default"
	}
	return d.String()
}
