package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/store"
)

// credentialJSON describes a repo's git credential without its secret
// part.
type credentialJSON = api.Credential

// credentialRequest sets a repo's git credential: a username with a
// password or token, or an SSH private key.
type credentialRequest struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	SSHKey     string `json:"ssh_key"`
	KnownHosts string `json:"known_hosts"`
}

// sealedCredential is the part of a credential that is sealed.
type sealedCredential struct {
	Password   string `json:"password,omitempty"`
	SSHKey     string `json:"ssh_key,omitempty"`
	KnownHosts string `json:"known_hosts,omitempty"`
}

// credentialSealName binds a sealed credential to its repo and kind. It
// holds a '/', which no secret's name may, so a credential's ciphertext
// never opens as a secret's, nor the other way round.
func credentialSealName(kind string) string { return "repo-credential/" + kind }

// Default usernames for an access token sent without one: what each forge
// documents for HTTPS with a token.
var defaultTokenUser = map[store.Forge]string{
	store.ForgeGitHub: "x-access-token",
	store.ForgeGitLab: "oauth2",
}

// checkCredential validates req for repo and returns the credential it
// describes.
func checkCredential(repo *store.Repo, req *credentialRequest) (gitauth.Credential, error) {
	c := gitauth.Credential{Username: strings.TrimSpace(req.Username), Password: req.Password, SSHKey: req.SSHKey,
		KnownHosts: req.KnownHosts}
	if c.IsZero() {
		return c, badRequest("credential", "credential is empty: give username and password (an HTTPS token), or ssh_key")
	}
	if c.SSHKey == "" && c.KnownHosts != "" {
		return c, badRequest("credential", "known_hosts goes with an ssh_key")
	}
	if c.Kind() == gitauth.KindHTTPS && c.Username == "" && c.Password != "" {
		c.Username = defaultTokenUser[repo.Forge]
		if c.Username == "" {
			return c, badRequest("credential", "credential needs a username with the password or token (the forge's login name; GitHub and GitLab accept any name with a token)")
		}
	}
	if len(c.Password)+len(c.SSHKey)+len(c.KnownHosts) > maxSecretSize {
		return c, badRequest("credential", "credential is larger than %d bytes", maxSecretSize)
	}
	if err := c.Check(repo.GitURL); err != nil {
		return c, badRequest("credential", "%v", err)
	}
	return c, nil
}

// saveCredential seals c and stores it as repo's credential.
func (s *Server) saveCredential(ctx context.Context, repo *store.Repo, c gitauth.Credential) error {
	plain, err := json.Marshal(sealedCredential{Password: c.Password, SSHKey: c.SSHKey, KnownHosts: c.KnownHosts})
	if err != nil {
		return err
	}
	kind := c.Kind()
	sealed, err := s.sealer.seal(repo.ID, credentialSealName(kind), plain)
	if err != nil {
		return err
	}
	return s.store.Credentials.Set(ctx, &store.RepoCredential{RepoID: repo.ID, Kind: kind, Username: c.Username, Value: sealed})
}

// repoCredential returns repo's git credential, or the zero credential
// when it has none.
func (s *Server) repoCredential(ctx context.Context, repo *store.Repo) (gitauth.Credential, error) {
	rc, err := s.store.Credentials.Get(ctx, repo.ID)
	if errors.Is(err, store.ErrNotFound) {
		return gitauth.Credential{}, nil
	}
	if err != nil {
		return gitauth.Credential{}, err
	}
	plain, err := s.sealer.open(repo.ID, credentialSealName(rc.Kind), rc.Value)
	if err != nil {
		return gitauth.Credential{}, fmt.Errorf("opening the credential of %s: %w", repo.Slug, err)
	}
	var sc sealedCredential
	if err := json.Unmarshal(plain, &sc); err != nil {
		return gitauth.Credential{}, fmt.Errorf("decoding the credential of %s: %w", repo.Slug, err)
	}
	return gitauth.Credential{Username: rc.Username, Password: sc.Password, SSHKey: sc.SSHKey, KnownHosts: sc.KnownHosts}, nil
}

// gitOptions returns the options that make the server's git commands
// authenticate as repo's credential says.
func (s *Server) gitOptions(ctx context.Context, repo *store.Repo) ([]forge.GitOption, error) {
	c, err := s.repoCredential(ctx, repo)
	if err != nil || c.IsZero() {
		return nil, err
	}
	return []forge.GitOption{forge.WithCredential(c)}, nil
}

// credentialFits refuses a new git URL that the repo's stored credential
// cannot be used with (an https token for an ssh URL, or the other way).
func (s *Server) credentialFits(ctx context.Context, repo *store.Repo) error {
	rc, err := s.store.Credentials.Get(ctx, repo.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t := gitauth.Transport(repo.GitURL); t != rc.Kind {
		return badRequest("git_url", "the repo's %s credential does not fit the git URL %s: give a credential for it along with the URL, or remove the credential first",
			rc.Kind, repo.GitURL)
	}
	return nil
}

// credentialInfo describes repo's credential for an answer.
func (s *Server) credentialInfo(ctx context.Context, repo *store.Repo) (*credentialJSON, error) {
	rc, err := s.store.Credentials.Get(ctx, repo.ID)
	if errors.Is(err, store.ErrNotFound) {
		return &credentialJSON{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &credentialJSON{Set: true, Kind: rc.Kind, Username: rc.Username}, nil
}

// Names of the secrets a pipeline may ask for (from_secret) to reach the
// repo with its credential, as Drone gives its clone step DRONE_NETRC_*:
// the password or token, or the SSH key. They are in no step's environment
// unless the step names them, and masked in every log like any secret.
const (
	secretNetrcPassword = "netrc_password"
	secretSSHKey        = "clone_ssh_key"
)

// addCredential gives a job's steps the means to ask for c: the secret
// part as a secret (above), unless a secret of that name exists, and, for
// an HTTPS credential, the host and username, which are not secret, as
// DRONE_NETRC_MACHINE and DRONE_NETRC_USERNAME in every step's
// environment. A pull request from a fork gets none of them, as it gets no
// secret that does not allow it. It returns env, or a copy with the
// variables added.
func addCredential(secrets, env map[string]string, remote string, c gitauth.Credential, b *store.Build) map[string]string {
	if c.IsZero() || b.Fork {
		return env
	}
	add := func(name, value string) {
		if _, ok := secrets[name]; !ok {
			secrets[name] = value
		}
	}
	switch c.Kind() {
	case gitauth.KindHTTPS:
		add(secretNetrcPassword, c.Password)
		out := make(map[string]string, len(env)+2)
		maps.Copy(out, env)
		if u, err := url.Parse(remote); err == nil {
			out["DRONE_NETRC_MACHINE"] = u.Hostname()
		}
		out["DRONE_NETRC_USERNAME"] = c.Username
		return out
	case gitauth.KindSSH:
		add(secretSSHKey, c.SSHKey)
	}
	return env
}

func (s *Server) putCredential(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	var req credentialRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	c, err := checkCredential(repo, &req)
	if err != nil {
		return err
	}
	if err := s.saveCredential(r.Context(), repo, c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &credentialJSON{Set: true, Kind: c.Kind(), Username: c.Username})
	return nil
}

func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	info, err := s.credentialInfo(r.Context(), repo)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	if err := s.store.Credentials.Delete(r.Context(), repo.ID); errors.Is(err, store.ErrNotFound) {
		return notFound("%s has no credential", repo.Slug)
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// credentialRefused is the answer to adding a repo that git could not read
// because the server refused access, with or without cred.
func credentialRefused(repo *store.Repo, cred gitauth.Credential, err error) error {
	if cred.IsZero() {
		return badRequest("credential", "%s refused access: the repository is private or needs a credential. Give one: "+
			"an access token (ferry repo add --credential-user NAME --credential-token-file FILE) or an SSH deploy key "+
			"(--ssh-key-file FILE) (%v)", repo.GitURL, err)
	}
	return badRequest("credential", "%s refused the %s credential given: check the username, token or key and its access to the repository (%v)",
		repo.GitURL, cred.Kind(), err)
}
