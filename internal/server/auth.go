package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// principal is who a request authenticated as.
type principal struct {
	// token is the API token used; nil for the metrics token.
	token *store.Token
	// user is the owner of a personal token.
	user *store.User
	// metrics is set for the configured metrics token.
	metrics bool
}

func (p *principal) isAgent() bool { return p.token != nil && p.token.Kind == store.TokenAgent }
func (p *principal) isUser() bool  { return p.user != nil }
func (p *principal) isNode() bool  { return p.token != nil && p.token.Kind == store.TokenNode }
func (p *principal) isAdmin() bool { return p.user != nil && p.user.Admin }

// name names the principal in logs and in Build.Sender.
func (p *principal) name() string {
	switch {
	case p.user != nil:
		return p.user.Login
	case p.token != nil:
		return string(p.token.Kind) + "-token:" + p.token.Name
	}
	return "metrics"
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// caller returns the request's principal; routes that need one only run
// after authentication, so it is never nil there.
func caller(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// touchEvery limits how often a token's LastUsed is written.
const touchEvery = time.Minute

var errUnauthorized = &apiError{Status: http.StatusUnauthorized, Message: "missing or invalid token; send Authorization: Bearer TOKEN"}

// authenticate resolves the request's bearer token.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errUnauthorized
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return nil, errUnauthorized
	}
	if s.cfg.MetricsToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.MetricsToken)) == 1 {
		return &principal{metrics: true}, nil
	}
	ctx := r.Context()
	hash := store.HashToken(tok)
	now := time.Now()
	if t := s.tokens.get(hash, now); t != nil && (t.Expires.IsZero() || now.Before(t.Expires)) {
		return &principal{token: t}, nil
	}
	t, err := s.store.Tokens.FindByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if !t.Expires.IsZero() && now.After(t.Expires) {
		return nil, &apiError{Status: http.StatusUnauthorized, Message: "token expired"}
	}
	if now.Sub(t.LastUsed) > touchEvery {
		if err := s.store.Tokens.Touch(ctx, t.ID, now); err != nil {
			s.log.Warn("recording token use", "token", t.ID, "err", err)
		}
	}
	s.tokens.put(hash, t, now)
	p := &principal{token: t}
	if t.Kind == store.TokenPersonal {
		u, err := s.store.Users.Get(ctx, t.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, err
		}
		p.user = u
	}
	return p, nil
}

// authorize checks that p may call a route with the given access.
func authorize(p *principal, a access) error {
	switch a {
	case accessPublic:
		return nil
	case accessAgent:
		if !p.isAgent() {
			return forbidden("this endpoint needs an agent token")
		}
	case accessNode:
		if !p.isNode() {
			return forbidden("this endpoint needs a node token (ferry node-token create)")
		}
	case accessUser:
		if !p.isUser() {
			return forbidden("this endpoint needs a personal API token; agent tokens may only lease and report jobs")
		}
	case accessAdmin:
		if !p.isUser() {
			return forbidden("this endpoint needs a personal API token; agent tokens may only lease and report jobs")
		}
		if !p.isAdmin() {
			return forbidden("this endpoint is for administrators")
		}
	case accessMetrics:
		if !p.metrics && !p.isAdmin() {
			return forbidden("metrics need an administrator's token or the metrics token")
		}
	}
	if p.metrics && a != accessMetrics {
		return forbidden("the metrics token may only read /metrics")
	}
	return nil
}

// repoAccess loads the repo named by the {owner} and {name} path values and
// checks that the caller has at least role need on it. A user with no role
// on the repo gets 404, so that private repos are not revealed.
func (s *Server) repoAccess(r *http.Request, need store.Role) (*store.Repo, error) {
	slug := r.PathValue("owner") + "/" + r.PathValue("name")
	ctx := r.Context()
	repo, err := s.store.Repos.GetBySlug(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("repo %s not found", slug)
	}
	if err != nil {
		return nil, err
	}
	role, err := s.role(ctx, caller(r), repo)
	if err != nil {
		return nil, err
	}
	if role == "" {
		return nil, notFound("repo %s not found", slug)
	}
	if !role.Allows(need) {
		return nil, forbidden("this needs the %s role on %s; you have %s", need, slug, role)
	}
	return repo, nil
}

// role returns p's role on repo: admin for administrators, the granted
// role for others, or "" for none.
func (s *Server) role(ctx context.Context, p *principal, repo *store.Repo) (store.Role, error) {
	if p.isAdmin() {
		return store.RoleAdmin, nil
	}
	if !p.isUser() {
		return "", nil
	}
	perm, err := s.store.Perms.Get(ctx, p.user.ID, repo.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return perm.Role, nil
}
