package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/database"
)

// adminLogin is the login of the user created on first start.
const adminLogin = "admin"

// minTokenLength is the shortest --admin-token accepted.
const minTokenLength = 16

// bootstrap creates the admin user and its token when the store has no
// users yet. The token is --admin-token, or a new one printed to the log
// once. Several servers starting together on one database bootstrap once.
func (s *Server) bootstrap(ctx context.Context) error {
	n, err := s.store.Users.Count(ctx)
	if err != nil {
		return fmt.Errorf("counting users: %w", err)
	}
	if n > 0 {
		if s.cfg.AdminToken != "" {
			if _, err := s.store.Tokens.FindByHash(ctx, store.HashToken(s.cfg.AdminToken)); errors.Is(err, store.ErrNotFound) {
				s.log.Warn("--admin-token is ignored: it is only used on first start, and the store already has users")
			}
		}
		return nil
	}
	tok := s.cfg.AdminToken
	if tok != "" && len(tok) < minTokenLength {
		return fmt.Errorf("--admin-token must be at least %d characters long", minTokenLength)
	}
	u := &store.User{Login: adminLogin, Admin: true}
	if err := s.store.Users.Create(ctx, u); errors.Is(err, store.ErrConflict) {
		return nil // another server bootstrapped at the same time
	} else if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	generated := tok == ""
	hash := store.HashToken(tok)
	if generated {
		if tok, hash, err = store.NewToken(); err != nil {
			return err
		}
	}
	t := &store.Token{Kind: store.TokenPersonal, UserID: u.ID, Name: "bootstrap", Hash: hash}
	if err := s.store.Tokens.Create(ctx, t); err != nil {
		return fmt.Errorf("creating the admin token: %w", err)
	}
	if generated && s.cfg.OnAdminToken != nil {
		s.cfg.OnAdminToken(tok)
	} else if generated {
		s.log.Warn("ferry: admin token (shown once): " + tok + " ; `ferry server admin-token` makes another")
	} else {
		s.log.Info("created the admin user with the token from --admin-token")
	}
	return nil
}

// MintAdminToken creates a new personal API token for the admin user (the
// one created on first start, or else the first administrator) in the
// store cfg names, and returns it. It works on the store directly, with no
// server running and no token: it is how an operator who lost the token
// printed on first start gets another. The server need not be stopped.
func MintAdminToken(ctx context.Context, cfg Config, name string) (string, error) {
	st, err := database.Open(ctx, cfg.DatabaseDSN())
	if err != nil {
		return "", fmt.Errorf("opening store: %w", err)
	}
	defer st.Close()
	tok, _, err := mintAdminToken(ctx, st, name, time.Time{})
	return tok, err
}

// MintAdminToken creates a personal API token of the admin user, as the
// package function MintAdminToken does, on s's store. It expires at
// expires, unless that is zero. In-process clients of the API (`ferry up`)
// use it: they act as the admin through the API, as any client would. It
// returns the token and its ID, with which to revoke it.
func (s *Server) MintAdminToken(ctx context.Context, name string, expires time.Time) (token string, id int64, err error) {
	return mintAdminToken(ctx, s.store, name, expires)
}

func mintAdminToken(ctx context.Context, st *store.Store, name string, expires time.Time) (string, int64, error) {
	u, err := st.Users.GetByLogin(ctx, adminLogin)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.Admin) {
		u = nil
		users, lerr := st.Users.List(ctx)
		if lerr != nil {
			return "", 0, fmt.Errorf("listing users: %w", lerr)
		}
		for _, c := range users {
			if c.Admin {
				u = c
				break
			}
		}
		if u == nil {
			return "", 0, errors.New("the store has no administrator yet; start the server once, and it creates one")
		}
	} else if err != nil {
		return "", 0, fmt.Errorf("finding the admin user: %w", err)
	}
	tok, hash, err := store.NewToken()
	if err != nil {
		return "", 0, err
	}
	t := &store.Token{Kind: store.TokenPersonal, UserID: u.ID, Name: name, Hash: hash, Expires: expires}
	if err := st.Tokens.Create(ctx, t); err != nil {
		return "", 0, fmt.Errorf("creating the token: %w", err)
	}
	return tok, t.ID, nil
}

var loginRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`) })

type userJSON = api.User

func toUserJSON(u *store.User) *userJSON {
	return &userJSON{ID: u.ID, Login: u.Login, Email: u.Email, Admin: u.Admin, Created: u.Created, Updated: u.Updated}
}

type tokenJSON = api.Token

func toTokenJSON(t *store.Token, login string) *tokenJSON {
	return &tokenJSON{ID: t.ID, Kind: string(t.Kind), Name: t.Name, User: login, Expires: t.Expires,
		Created: t.Created, LastUsed: t.LastUsed}
}

func (s *Server) getSelf(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, toUserJSON(caller(r).user))
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.store.Users.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]*userJSON, 0, len(us))
	for _, u := range us {
		out = append(out, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type userRequest = api.UserRequest

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req userRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if req.Login == nil {
		return badRequest("login", "login is required")
	}
	u := &store.User{}
	if err := applyUser(u, &req); err != nil {
		return err
	}
	if err := s.store.Users.Create(r.Context(), u); errors.Is(err, store.ErrConflict) {
		return conflict("login", "a user with login %q exists", u.Login)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toUserJSON(u))
	return nil
}

func applyUser(u *store.User, req *userRequest) error {
	if req.Login != nil {
		if !loginRE().MatchString(*req.Login) {
			return badRequest("login", "login %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", *req.Login)
		}
		u.Login = *req.Login
	}
	if req.Email != nil {
		if *req.Email != "" && !strings.Contains(*req.Email, "@") {
			return badRequest("email", "email %q is not an email address", *req.Email)
		}
		u.Email = *req.Email
	}
	if req.Admin != nil {
		u.Admin = *req.Admin
	}
	return nil
}

// userByLogin loads the user named by the {login} path value.
func (s *Server) userByLogin(r *http.Request) (*store.User, error) {
	login := r.PathValue("login")
	u, err := s.store.Users.GetByLogin(r.Context(), login)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("user %s not found", login)
	}
	return u, err
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	var req userRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if u.ID == caller(r).user.ID && req.Admin != nil && !*req.Admin {
		return forbidden("you cannot remove your own admin rights")
	}
	if err := applyUser(u, &req); err != nil {
		return err
	}
	if err := s.store.Users.Update(r.Context(), u); errors.Is(err, store.ErrConflict) {
		return conflict("login", "a user with login %q exists", u.Login)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	if u.ID == caller(r).user.ID {
		return forbidden("you cannot delete yourself")
	}
	if err := s.store.Users.Delete(r.Context(), u.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type tokenRequest struct {
	// Name describes the token.
	Name string `json:"name"`
	// ExpiresIn limits the token's life; empty means it never expires.
	ExpiresIn string `json:"expires_in"`
}

// newToken creates a token of the given kind from the request body and
// answers 201 with the token string, shown this once.
func (s *Server) newToken(w http.ResponseWriter, r *http.Request, kind store.TokenKind, u *store.User) error {
	var req tokenRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 100 {
		return badRequest("name", "name is required (at most 100 characters)")
	}
	tok, hash, err := store.NewToken()
	if err != nil {
		return err
	}
	t := &store.Token{Kind: kind, Name: req.Name, Hash: hash}
	login := ""
	if u != nil {
		t.UserID, login = u.ID, u.Login
	}
	expires, err := parseDuration("expires_in", req.ExpiresIn)
	if err != nil {
		return err
	}
	if expires > 0 {
		t.Expires = time.Now().Add(expires)
	}
	if err := s.store.Tokens.Create(r.Context(), t); err != nil {
		return err
	}
	out := toTokenJSON(t, login)
	out.Token = tok
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, userID int64, login string) error {
	ts, err := s.store.Tokens.List(r.Context(), userID)
	if err != nil {
		return err
	}
	out := make([]*tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, toTokenJSON(t, login))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeToken deletes the token named by the {id} path value if it
// belongs to userID (0: an agent token).
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, kind store.TokenKind, userID int64) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	ts, err := s.store.Tokens.List(r.Context(), userID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.ID == id && t.Kind == kind {
			if err := s.store.Tokens.Delete(r.Context(), id); err != nil {
				return err
			}
			s.tokens.clear()
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return notFound("token %d not found", id)
}

func (s *Server) listOwnTokens(w http.ResponseWriter, r *http.Request) error {
	u := caller(r).user
	return s.listTokens(w, r, u.ID, u.Login)
}

func (s *Server) createOwnToken(w http.ResponseWriter, r *http.Request) error {
	return s.newToken(w, r, store.TokenPersonal, caller(r).user)
}

func (s *Server) deleteOwnToken(w http.ResponseWriter, r *http.Request) error {
	return s.revokeToken(w, r, store.TokenPersonal, caller(r).user.ID)
}

func (s *Server) createUserToken(w http.ResponseWriter, r *http.Request) error {
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	return s.newToken(w, r, store.TokenPersonal, u)
}

func (s *Server) listAgentTokens(w http.ResponseWriter, r *http.Request) error {
	return s.listTokensOf(w, r, store.TokenAgent)
}

func (s *Server) createAgentToken(w http.ResponseWriter, r *http.Request) error {
	return s.newToken(w, r, store.TokenAgent, nil)
}

func (s *Server) deleteAgentToken(w http.ResponseWriter, r *http.Request) error {
	return s.revokeToken(w, r, store.TokenAgent, 0)
}

// CreateAgentToken creates an agent token named name and returns the token
// string, for in-process agents (`ferry up`) and provisioning.
func (s *Server) CreateAgentToken(ctx context.Context, name string) (string, error) {
	tok, hash, err := store.NewToken()
	if err != nil {
		return "", err
	}
	if err := s.store.Tokens.Create(ctx, &store.Token{Kind: store.TokenAgent, Name: name, Hash: hash}); err != nil {
		return "", fmt.Errorf("creating agent token: %w", err)
	}
	return tok, nil
}
