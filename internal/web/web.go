// Package web is ferry's browser UI: server-rendered pages (html/template,
// embedded with go:embed) and a little vanilla JavaScript for live logs and
// live build states.
//
// The UI holds no state and reads nothing from the store: every page is
// rendered from the server's own JSON API, called in process with the
// signed-in user's token, so the UI sees exactly what that user may see
// through the API and every role check stays in one place (the API). The
// token travels in a session cookie sealed with AES-GCM under a key the
// server derives from its secret key; the cookie is HttpOnly, SameSite=Lax
// and Secure when the page was served over TLS. Every form carries a CSRF
// token bound to the session, and POSTs from another origin are refused.
package web

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the UI.
type Config struct {
	// API is the server's API handler; the UI calls it in process.
	API http.Handler
	// SessionKey seals session cookies: 32 bytes, derived from the
	// server's secret key so that every server of a cluster accepts the
	// cookies of the others.
	SessionKey []byte
	// SessionTTL is how long a session lasts; zero means 12 hours.
	SessionTTL time.Duration
	// Badge answers the status of the latest build of a repo's branch
	// for status badges, which need no session (as in Drone). It returns
	// "" when there is no such repo or build.
	Badge func(ctx context.Context, slug, branch string) string
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
}

// UI serves the pages. Create it with New.
type UI struct {
	cfg   Config
	aead  cipher.AEAD
	pages map[string]*template.Template
	mux   *http.ServeMux
	log   *slog.Logger
}

// New returns the UI.
func New(cfg Config) (*UI, error) {
	if len(cfg.SessionKey) != 32 {
		return nil, fmt.Errorf("web: session key is %d bytes, want 32", len(cfg.SessionKey))
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	block, err := aes.NewCipher(cfg.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	ui := &UI{cfg: cfg, aead: aead, pages: map[string]*template.Template{}, mux: http.NewServeMux(), log: cfg.Logger}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "templates/")
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", name)
		if err != nil {
			return nil, fmt.Errorf("web: parsing %s: %w", name, err)
		}
		ui.pages[base] = t
	}
	if ui.log == nil {
		ui.log = slog.New(slog.DiscardHandler)
	}
	ui.routes()
	return ui, nil
}

// Owns reports whether path belongs to the UI rather than to the API,
// webhooks or the agent protocol.
func Owns(path string) bool {
	switch path {
	case "/", "/login", "/logout", "/agents", "/deployments", "/nodes", "/audit":
		return true
	}
	for _, p := range []string{"/repos/", "/static/", "/badge/", "/ui/", "/user/", "/deployments/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// ServeHTTP implements http.Handler.
func (ui *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	ui.mux.ServeHTTP(w, r)
}

func (ui *UI) routes() {
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	ui.mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	}))
	ui.mux.HandleFunc("GET /login", ui.loginPage)
	ui.mux.HandleFunc("POST /login", ui.login)
	ui.mux.HandleFunc("POST /logout", ui.withSession(ui.logout))
	ui.mux.HandleFunc("GET /badge/{owner}/{name}/status.svg", ui.badge)
	ui.mux.HandleFunc("GET /ui/api/", ui.withSession(ui.apiProxy))
	ui.mux.HandleFunc("GET /{$}", ui.withSession(ui.reposPage))
	ui.mux.HandleFunc("GET /repos/{owner}/{name}", ui.withSession(ui.repoPage))
	ui.mux.HandleFunc("GET /repos/{owner}/{name}/builds/{number}", ui.withSession(ui.buildPage))
	ui.mux.HandleFunc("GET /repos/{owner}/{name}/builds/{number}/{pipeline}/{step}", ui.withSession(ui.buildPage))
	ui.mux.HandleFunc("POST /repos/{owner}/{name}/builds/{number}/{action}", ui.withSession(ui.buildAction))
	ui.mux.HandleFunc("GET /repos/{owner}/{name}/settings", ui.withSession(ui.settingsPage))
	ui.mux.HandleFunc("POST /repos/{owner}/{name}/settings/{what}", ui.withSession(ui.settingsAction))
	ui.mux.HandleFunc("POST /repos/{owner}/{name}/settings/{what}/{item}/delete", ui.withSession(ui.settingsDelete))
	ui.mux.HandleFunc("GET /user/tokens", ui.withSession(ui.tokensPage))
	ui.mux.HandleFunc("POST /user/tokens", ui.withSession(ui.createToken))
	ui.mux.HandleFunc("POST /user/tokens/{id}/revoke", ui.withSession(ui.revokeToken))
	ui.mux.HandleFunc("GET /agents", ui.withSession(ui.agentsPage))
	ui.mux.HandleFunc("GET /deployments", ui.withSession(ui.deploymentsPage))
	ui.mux.HandleFunc("GET /deployments/{id}", ui.withSession(ui.deploymentPage))
	ui.mux.HandleFunc("POST /deployments/{id}/{action}", ui.withSession(ui.deploymentAction))
	ui.mux.HandleFunc("POST /deployments/{service}/{env}/{action}", ui.withSession(ui.envAction))
	ui.mux.HandleFunc("GET /nodes", ui.withSession(ui.nodesPage))
	ui.mux.HandleFunc("GET /audit", ui.withSession(ui.auditPage))
	ui.mux.HandleFunc("GET /", ui.withSession(func(w http.ResponseWriter, r *http.Request, _ *session) {
		ui.errorPage(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	}))
}

// cookieName is the session cookie's name.
const cookieName = "ferry_session"

// session is what the sealed cookie holds.
type session struct {
	Token string `json:"t"`
	// TokenID is the ID of a token that a password sign-in created for
	// this session, which logout revokes; 0 for a session that signed in
	// with a token of the user's own.
	TokenID int64  `json:"i,omitempty"`
	Login   string `json:"l"`
	Admin   bool   `json:"a,omitempty"`
	CSRF    string `json:"c"`
	Expires int64  `json:"e"`
}

func (ui *UI) seal(s *session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, ui.aead.NonceSize(), ui.aead.NonceSize()+len(plain)+ui.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(ui.aead.Seal(nonce, nonce, plain, []byte(cookieName))), nil
}

func (ui *UI) open(v string) (*session, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < ui.aead.NonceSize() {
		return nil, errors.New("malformed session")
	}
	plain, err := ui.aead.Open(nil, raw[:ui.aead.NonceSize()], raw[ui.aead.NonceSize():], []byte(cookieName))
	if err != nil {
		return nil, errors.New("session does not verify")
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, err
	}
	if time.Now().Unix() > s.Expires {
		return nil, errors.New("session expired")
	}
	return &s, nil
}

// secure reports whether r came over TLS (directly or through a proxy
// that says so).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (ui *UI) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure(r),
	})
}

// withSession runs h with the request's session, or sends the browser to
// the login page (coming back to this page afterwards). A POST must carry
// the session's CSRF token and come from this origin.
func (ui *UI) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if c, err := r.Cookie(cookieName); err == nil {
			s, _ = ui.open(c.Value)
		}
		if s == nil {
			if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, "/ui/api/") {
				ui.errorPage(w, r, http.StatusUnauthorized, "Your session has ended; sign in again.")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				ui.errorPage(w, r, http.StatusForbidden, "This form was sent from another site; it was refused.")
				return
			}
			if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) {
				ui.errorPage(w, r, http.StatusForbidden, "The form's security token is missing or wrong (CSRF check); reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

// sameOrigin reports whether a POST came from a page of this server: the
// Origin header (or, without one, the Referer) must name this host. A
// request with neither is allowed; the CSRF token still guards it.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	u, err := url.Parse(src)
	return err == nil && u.Host == r.Host
}

// client returns an API client that calls the API in process as the
// session's user.
func (ui *UI) client(s *session) *apiclient.Client {
	c, _ := apiclient.New("http://ferry.invalid", s.Token, &http.Client{Transport: inProcess{ui.cfg.API}})
	return c
}

// inProcess is an http.RoundTripper that serves requests with a handler,
// without a network.
type inProcess struct{ h http.Handler }

// clientAddrKey is the context key of the browser's address (RemoteAddr),
// which an in-process request carries to the API when it matters there
// (the limits on password sign-ins).
type clientAddrKey struct{}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if addr, ok := req.Context().Value(clientAddrKey{}).(string); ok {
		r2 := *req
		r2.RemoteAddr = addr
		req = &r2
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	t.h.ServeHTTP(rec, req)
	return &http.Response{
		StatusCode: rec.code, Status: http.StatusText(rec.code), Header: rec.header,
		Body: readCloser{bytes.NewReader(rec.body.Bytes())}, ContentLength: int64(rec.body.Len()),
		Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// recorder collects a handler's answer.
type recorder struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

// apiProxy passes a GET under /ui/api/ to the API's /api/ as the
// session's user, streaming the answer (logs, log event streams). The
// browser's scripts read builds and logs through it.
func (ui *UI) apiProxy(w http.ResponseWriter, r *http.Request, s *session) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/ui")
	r2.URL.RawPath = ""
	if r.URL.RawPath != "" {
		r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/ui")
	}
	r2.RequestURI = r2.URL.RequestURI()
	r2.Header.Del("Cookie")
	r2.Header.Set("Authorization", "Bearer "+s.Token)
	ui.cfg.API.ServeHTTP(w, r2)
}

// newCSRF returns a random CSRF token.
func newCSRF() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func asAPIError(err error, target **apiclient.Error) bool { return errors.As(err, target) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
