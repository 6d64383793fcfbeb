package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

// minPollInterval is the shortest polling interval a repo may have.
const minPollInterval = time.Second

type repoJSON = api.Repo

func (s *Server) toRepoJSON(r *store.Repo, role store.Role) *repoJSON {
	f := string(r.Forge)
	if f == "" {
		f = "none"
	}
	return &repoJSON{
		ID: r.ID, Slug: r.Slug, GitURL: r.GitURL, Forge: f, DefaultBranch: r.DefaultBranch,
		ConfigPath: r.ConfigPath, PollInterval: duration(r.PollInterval), Trusted: r.Trusted,
		Timeout: duration(r.Timeout), Active: r.Active, BuildCounter: r.BuildCounter,
		WebhookURL: s.cfg.publicURL() + "/hook/" + r.Slug, Created: r.Created, Updated: r.Updated,
		Role: string(role), WebhookEvents: forge.WebhookEvents(forge.Kind(r.Forge)),
	}
}

type repoRequest struct {
	GitURL        *string `json:"git_url"`
	Slug          *string `json:"slug"`
	Forge         *string `json:"forge"`
	WebhookSecret *string `json:"webhook_secret"`
	PollInterval  *string `json:"poll_interval"`
	ConfigPath    *string `json:"config_path"`
	Trusted       *bool   `json:"trusted"`
	Timeout       *string `json:"timeout"`
	DefaultBranch *string `json:"default_branch"`
	Active        *bool   `json:"active"`
	// Credential sets the repo's git credential along with the rest.
	Credential *credentialRequest `json:"credential"`
}

func (s *Server) listRepos(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := caller(r)
	repos, err := s.store.Repos.List(ctx)
	if err != nil {
		return err
	}
	roles := map[int64]store.Role{}
	if !p.isAdmin() {
		perms, err := s.store.Perms.ListByUser(ctx, p.user.ID)
		if err != nil {
			return err
		}
		for _, pm := range perms {
			roles[pm.RepoID] = pm.Role
		}
	}
	out := []*repoJSON{}
	for _, repo := range repos {
		role := store.RoleAdmin
		if !p.isAdmin() {
			role = roles[repo.ID]
		}
		if role == "" {
			continue
		}
		out = append(out, s.toRepoJSON(repo, role))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createRepo(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if !s.cfg.OpenRegistration && !caller(r).isAdmin() {
		return forbidden("only administrators may register repositories; " +
			"an administrator may allow every user with ferry server --open-registration (FERRY_OPEN_REGISTRATION)")
	}
	var req repoRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if req.GitURL == nil || strings.TrimSpace(*req.GitURL) == "" {
		return badRequest("git_url", "git_url is required")
	}
	repo := &store.Repo{Active: true}
	if err := s.applyRepo(r, repo, &req); err != nil {
		return err
	}
	if req.Slug == nil {
		slug, err := slugFromURL(repo.GitURL)
		if err != nil {
			return badRequest("slug", "%v; give the slug explicitly", err)
		}
		repo.Slug = slug
	}
	if req.PollInterval == nil && repo.Forge == store.ForgeNone {
		repo.PollInterval = s.cfg.PollIntervalDefault
	}
	if repo.WebhookSecret == "" {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		repo.WebhookSecret = hex.EncodeToString(b[:])
	}
	var cred gitauth.Credential
	if req.Credential != nil {
		c, err := checkCredential(repo, req.Credential)
		if err != nil {
			return err
		}
		cred = c
	}
	// A URL git cannot read would fail at every poll and build: refuse it
	// now, saying why.
	branch, err := s.git.checkReadable(ctx, repo.GitURL, forge.WithCredential(cred))
	if errors.Is(err, forge.ErrAuth) {
		return credentialRefused(repo, cred, err)
	}
	if err != nil {
		return unreadable(repo, err)
	}
	if repo.DefaultBranch == "" {
		repo.DefaultBranch = branch
	}
	if repo.PollInterval > 0 {
		repo.NextPoll = time.Now()
	}
	if err := s.store.Repos.Create(ctx, repo); errors.Is(err, store.ErrConflict) {
		return conflict("slug", "a repo with slug %q exists", repo.Slug)
	} else if err != nil {
		return err
	}
	if !cred.IsZero() {
		if err := s.saveCredential(ctx, repo, cred); err != nil {
			if derr := s.store.Repos.Delete(ctx, repo.ID); derr != nil {
				s.log.Error("removing a repo whose credential could not be stored", "repo", repo.Slug, "err", derr)
			}
			return err
		}
	}
	p := caller(r)
	if !p.isAdmin() {
		if err := s.store.Perms.Set(ctx, &store.RepoPerm{UserID: p.user.ID, RepoID: repo.ID, Role: store.RoleAdmin}); err != nil {
			return err
		}
	}
	out := s.toRepoJSON(repo, store.RoleAdmin)
	out.WebhookSecret = repo.WebhookSecret
	out.Credential = &credentialJSON{Set: !cred.IsZero(), Kind: cred.Kind(), Username: cred.Username}
	if w := s.statusWarning(repo.Forge); w != "" {
		out.Warnings = append(out.Warnings, w)
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// applyRepo validates req and copies its fields into repo.
func (s *Server) applyRepo(r *http.Request, repo *store.Repo, req *repoRequest) error {
	if req.GitURL != nil {
		u := strings.TrimSpace(*req.GitURL)
		if err := checkGitURL(u); err != nil {
			return badRequest("git_url", "%v", err)
		}
		if strings.HasPrefix(strings.ToLower(u), "file:") && !caller(r).isAdmin() {
			// The server reads the repo (its config, its refs) from its
			// own disk: any repository there, anyone's.
			return errorf(http.StatusForbidden, "git_url",
				"only an administrator may add a file:// URL, which reads the server's own disk; use an http(s), ssh or git URL")
		}
		repo.GitURL = u
	}
	if req.Slug != nil {
		if err := validateSlug(*req.Slug); err != nil {
			return badRequest("slug", "%v", err)
		}
		repo.Slug = *req.Slug
	}
	if req.Forge != nil {
		switch f := strings.ToLower(*req.Forge); f {
		case "", "none":
			repo.Forge = store.ForgeNone
		case "github", "gitea", "gitlab":
			repo.Forge = store.Forge(f)
		default:
			return badRequest("forge", "forge %q is not one of github, gitea, gitlab, none", *req.Forge)
		}
	}
	if req.WebhookSecret != nil {
		repo.WebhookSecret = *req.WebhookSecret
	}
	if req.PollInterval != nil {
		d, err := parseDuration("poll_interval", *req.PollInterval)
		if err != nil {
			return err
		}
		if d != 0 && d < minPollInterval {
			return badRequest("poll_interval", "poll_interval must be 0 (no polling) or at least %s", minPollInterval)
		}
		if d > 0 && d != repo.PollInterval {
			repo.NextPoll = nextPoll(repo.NextPoll, repo.PollInterval, d, time.Now())
		}
		repo.PollInterval = d
	}
	if req.ConfigPath != nil {
		p := strings.TrimSpace(*req.ConfigPath)
		if p != "" && (path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..")) {
			return badRequest("config_path", "config_path %q must be a path inside the repository", p)
		}
		repo.ConfigPath = p
	}
	if req.Trusted != nil {
		if *req.Trusted != repo.Trusted && !caller(r).isAdmin() {
			return forbidden("only administrators may change whether a repo is trusted")
		}
		repo.Trusted = *req.Trusted
	}
	if req.Timeout != nil {
		d, err := parseDuration("timeout", *req.Timeout)
		if err != nil {
			return err
		}
		repo.Timeout = d
	}
	if req.DefaultBranch != nil {
		repo.DefaultBranch = strings.TrimSpace(*req.DefaultBranch)
	}
	if req.Active != nil {
		repo.Active = *req.Active
	}
	return nil
}

// nextPoll is when a repo whose poll interval changes from old to d is
// polled next: one new interval after its last poll was due, but never
// more than one new interval from now, so that a shorter interval takes
// effect at once rather than after the old one ends; at once when it was
// not polled before or is overdue.
func nextPoll(next time.Time, old, d time.Duration, now time.Time) time.Time {
	if old <= 0 || next.IsZero() {
		return now
	}
	t := next.Add(d - old)
	if limit := now.Add(d); t.After(limit) {
		t = limit
	}
	if t.Before(now) {
		return now
	}
	return t
}

// gitURLForms says which git_url forms are valid, for messages.
const gitURLForms = "an https, http, ssh or git URL (file:// for administrators), or scp-like user@host:path"

// scpLikeRE matches git's scp-like syntax, [user@]host:path, with a host
// name or a bracketed IPv6 address, and a path that does not start with
// ':' (that would be git's <transport>::<address> form).
var scpLikeRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:[A-Za-z0-9._~+-]+@)?(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[^:]`)
})

// transportRE matches git's <transport>::<address> form: "ext::sh -c …"
// runs a command, and remote helpers may do anything.
var transportRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9+.-]+)::`) })

// checkGitURL accepts the URL forms git clones from that run no command
// on the server: http(s), ssh, git and file URLs, and scp-like
// "user@host:path". Whether a file URL is allowed to the caller is decided
// elsewhere. Git itself is also limited to these protocols (see
// GIT_ALLOW_PROTOCOL in internal/forge).
func checkGitURL(s string) error {
	if s == "" {
		return errors.New("git_url is required")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("git_url %q contains a control character; it must be %s", s, gitURLForms)
		}
	}
	if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t") {
		return fmt.Errorf("git_url must not start with '-' or contain white space; it must be %s", gitURLForms)
	}
	if m := transportRE().FindStringSubmatch(s); m != nil {
		return fmt.Errorf("git_url %q uses git's %q remote helper (TRANSPORT::ADDRESS), which ferry does not allow; it must be %s", s, m[1], gitURLForms)
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("git_url is not a valid URL (%w); it must be %s", err, gitURLForms)
		}
		switch u.Scheme {
		case "http", "https", "ssh", "git", "file":
		default:
			return fmt.Errorf("git_url scheme %q is not allowed; it must be %s", u.Scheme, gitURLForms)
		}
		if u.Scheme != "file" && u.Host == "" {
			return errors.New("git_url has no host")
		}
		if strings.HasPrefix(u.Hostname(), "-") || strings.HasPrefix(u.User.Username(), "-") {
			// ssh would read it as an option (-oProxyCommand=...).
			return fmt.Errorf("git_url %q has a host or user starting with '-'; it must be %s", s, gitURLForms)
		}
		if strings.Trim(u.Path, "/") == "" {
			return errors.New("git_url has no repository path")
		}
		return nil
	}
	if scpLikeRE().MatchString(s) {
		return nil
	}
	return fmt.Errorf("git_url %q must be %s", s, gitURLForms)
}

// slugSegmentRE matches one part of a slug.
var slugSegmentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}$`) })

// validateSlug checks a repo slug: OWNER/NAME, two parts of letters,
// digits, '.', '_' and '-' (at most 100 each, not starting with '-'), and
// neither "." nor "..", since slugs appear in paths and URLs.
func validateSlug(slug string) error {
	owner, name, ok := strings.Cut(slug, "/")
	valid := func(p string) bool { return p != "." && p != ".." && slugSegmentRE().MatchString(p) }
	if !ok || !valid(owner) || !valid(name) {
		return fmt.Errorf("slug %q must be OWNER/NAME: two parts separated by one '/', each of 1 to 100 letters, digits, "+
			"'.', '_' or '-', not starting with '-', and neither '.' nor '..'", slug)
	}
	return nil
}

// slugFromURL derives OWNER/NAME from the last two path elements of a git
// URL, without a ".git" suffix.
func slugFromURL(s string) (string, error) {
	p := s
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		p = u.Path
	} else if _, after, ok := strings.Cut(s, ":"); ok {
		p = after
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return "", errors.New("cannot derive OWNER/NAME from git_url")
	}
	slug := parts[len(parts)-2] + "/" + parts[len(parts)-1]
	if validateSlug(slug) != nil {
		return "", errors.New("cannot derive a valid OWNER/NAME from git_url")
	}
	return slug, nil
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return err
	}
	role, err := s.role(r.Context(), caller(r), repo)
	if err != nil {
		return err
	}
	out := s.toRepoJSON(repo, role)
	if out.Credential, err = s.credentialInfo(r.Context(), repo); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateRepo(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	var req repoRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	oldForge, oldURL := repo.Forge, repo.GitURL
	if err := s.applyRepo(r, repo, &req); err != nil {
		return err
	}
	var cred gitauth.Credential
	if req.Credential != nil {
		if cred, err = checkCredential(repo, req.Credential); err != nil {
			return err
		}
	} else if req.GitURL != nil {
		if err := s.credentialFits(r.Context(), repo); err != nil {
			return err
		}
	}
	if repo.GitURL != oldURL {
		use := cred
		if use.IsZero() {
			if use, err = s.repoCredential(r.Context(), repo); err != nil {
				return err
			}
		}
		_, err := s.git.checkReadable(r.Context(), repo.GitURL, forge.WithCredential(use))
		if errors.Is(err, forge.ErrAuth) {
			return credentialRefused(repo, use, err)
		}
		if err != nil {
			return unreadable(repo, err)
		}
	}
	if err := s.store.Repos.Update(r.Context(), repo); errors.Is(err, store.ErrConflict) {
		return conflict("slug", "a repo with slug %q exists", repo.Slug)
	} else if err != nil {
		return err
	}
	if !cred.IsZero() {
		if err := s.saveCredential(r.Context(), repo, cred); err != nil {
			return err
		}
	}
	out := s.toRepoJSON(repo, store.RoleAdmin)
	if req.WebhookSecret != nil {
		out.WebhookSecret = repo.WebhookSecret
	}
	if out.Credential, err = s.credentialInfo(r.Context(), repo); err != nil {
		return err
	}
	if w := s.statusWarning(repo.Forge); w != "" && repo.Forge != oldForge {
		out.Warnings = append(out.Warnings, w)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteRepo(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	// Deleting the repo deletes its jobs; agents running one learn it
	// from their next heartbeat, which answers 409 (lease lost).
	if err := s.store.Repos.Delete(r.Context(), repo.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type permJSON = api.Perm

func (s *Server) listPerms(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	ctx := r.Context()
	perms, err := s.store.Perms.ListByRepo(ctx, repo.ID)
	if err != nil {
		return err
	}
	out := make([]*permJSON, 0, len(perms))
	for _, p := range perms {
		u, err := s.store.Users.Get(ctx, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		out = append(out, &permJSON{User: u.Login, Role: string(p.Role), Created: p.Created, Updated: p.Updated})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type permRequest = api.PermRequest

func (s *Server) setPerm(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	var req permRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	role := store.Role(req.Role)
	if !role.Allows(store.RoleRead) {
		return badRequest("role", "role %q is not one of read, write, admin", req.Role)
	}
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	p := &store.RepoPerm{UserID: u.ID, RepoID: repo.ID, Role: role}
	if err := s.store.Perms.Set(r.Context(), p); err != nil {
		return err
	}
	if p, err = s.store.Perms.Get(r.Context(), u.ID, repo.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &permJSON{User: u.Login, Role: string(p.Role), Created: p.Created, Updated: p.Updated})
	return nil
}

func (s *Server) deletePerm(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return err
	}
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	if err := s.store.Perms.Delete(r.Context(), u.ID, repo.ID); errors.Is(err, store.ErrNotFound) {
		return notFound("%s has no role on %s", u.Login, repo.Slug)
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type cronJSON = api.Cron

func toCronJSON(c *store.Cron) *cronJSON {
	return &cronJSON{ID: c.ID, Name: c.Name, Expr: c.Expr, Branch: c.Branch, Next: c.Next, Disabled: c.Disabled,
		Created: c.Created, Updated: c.Updated}
}

var cronNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`) })

func (s *Server) listCrons(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return err
	}
	cs, err := s.store.Crons.List(r.Context(), repo.ID)
	if err != nil {
		return err
	}
	out := make([]*cronJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, toCronJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type cronRequest = api.CronRequest

func (s *Server) createCron(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	var req cronRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if !cronNameRE().MatchString(req.Name) {
		return badRequest("name", "name %q must be 1 to 64 letters, digits, '.', '_' or '-'", req.Name)
	}
	next, err := trigger.NextRun(req.Expr, time.Now())
	if err != nil {
		return badRequest("expr", "%v", err)
	}
	c := &store.Cron{RepoID: repo.ID, Name: req.Name, Expr: req.Expr, Branch: req.Branch, Next: next, Disabled: req.Disabled}
	if err := s.store.Crons.Create(r.Context(), c); errors.Is(err, store.ErrConflict) {
		return conflict("name", "a cron named %q exists", req.Name)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toCronJSON(c))
	return nil
}

func (s *Server) deleteCron(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleWrite)
	if err != nil {
		return err
	}
	name := r.PathValue("cron")
	cs, err := s.store.Crons.List(r.Context(), repo.ID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Name == name {
			if err := s.store.Crons.Delete(r.Context(), c.ID); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return notFound("cron %q not found", name)
}

// unreadable is the answer to a git URL that git cannot read for a reason
// other than access (credentialRefused).
func unreadable(repo *store.Repo, err error) error {
	return badRequest("git_url", "cannot read the git repository at %s: %s", redactedURL(repo.GitURL), forge.GitReason(err))
}

// redactedURL returns a git URL without its password, for messages.
func redactedURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}
