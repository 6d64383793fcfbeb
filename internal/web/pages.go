package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

// page is what every template gets.
type page struct {
	Title   string
	Session *session
	Data    any
}

// render writes the named page with status code.
func (ui *UI) render(w http.ResponseWriter, code int, name string, p *page) {
	t, ok := ui.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		ui.log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}

// errorPage answers a page explaining what went wrong.
func (ui *UI) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	var s *session
	if c, err := r.Cookie(cookieName); err == nil {
		s, _ = ui.open(c.Value)
	}
	ui.render(w, code, "error.html", &page{Title: http.StatusText(code), Session: s, Data: msg})
}

// apiError answers a page for an error of an API call.
func (ui *UI) apiError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		if ae.StatusCode == http.StatusUnauthorized {
			ui.setCookie(w, r, "", -1)
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		ui.errorPage(w, r, ae.StatusCode, ae.Message)
		return
	}
	ui.log.Error("calling the API", "path", r.URL.Path, "err", err)
	ui.errorPage(w, r, http.StatusBadGateway, err.Error())
}

// localNext returns next when it is a path on this server, and "/"
// otherwise, so that the login page can't send a browser elsewhere.
func localNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

type loginData struct {
	Next  string
	Error string
	// Login is the login of a failed password sign-in, filled in again.
	Login string
}

// maxLoginForm bounds the body of a sign-in form, read before anything is
// checked or hashed.
const maxLoginForm = 8 << 10

func (ui *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	ui.render(w, http.StatusOK, "login.html", &page{Title: "Sign in", Data: loginData{Next: localNext(r.URL.Query().Get("next"))}})
}

// login signs in with a login and password (the API answers a session
// token) or with an API token, and keeps the token in the sealed session
// cookie.
func (ui *UI) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		ui.errorPage(w, r, http.StatusForbidden, "This form was sent from another site; it was refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		ui.errorPage(w, r, http.StatusRequestEntityTooLarge, "The sign-in form is too large or malformed.")
		return
	}
	next := localNext(r.PostFormValue("next"))
	login := strings.TrimSpace(r.PostFormValue("login"))
	fail := func(code int, msg string) {
		ui.render(w, code, "login.html", &page{Title: "Sign in", Data: loginData{Next: next, Error: msg, Login: login}})
	}
	expires := time.Now().Add(ui.cfg.SessionTTL)
	s := &session{CSRF: newCSRF()}
	if _, withPassword := r.PostForm["login"]; withPassword {
		password := r.PostFormValue("password")
		if login == "" || password == "" {
			fail(http.StatusUnauthorized, "Enter your login and password.")
			return
		}
		// The API limits failed sign-ins per address: it sees the
		// browser's.
		ctx := context.WithValue(r.Context(), clientAddrKey{}, r.RemoteAddr)
		t, err := ui.client(s).CreateSession(ctx, login, password)
		var ae *apiclient.Error
		switch {
		case errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized:
			fail(http.StatusUnauthorized, "Wrong login or password.")
			return
		case errors.As(err, &ae) && ae.StatusCode < 500:
			fail(ae.StatusCode, ae.Message)
			return
		case err != nil:
			ui.log.Error("signing in with a password", "err", err)
			fail(http.StatusBadGateway, "The password could not be checked: "+err.Error())
			return
		}
		s.Token, s.TokenID = t.Token, t.ID
		if !t.Expires.IsZero() && t.Expires.Before(expires) {
			expires = t.Expires
		}
	} else {
		s.Token = strings.TrimSpace(r.PostFormValue("token"))
		if s.Token == "" {
			fail(http.StatusUnauthorized, "Enter an API token (ferry token create, or the admin token ferry printed at start).")
			return
		}
	}
	s.Expires = expires.Unix()
	u, err := ui.client(s).Self(r.Context())
	if err != nil {
		if apiclient.IsStatus(err, http.StatusUnauthorized) {
			fail(http.StatusUnauthorized, "That token is not valid: it is unknown, revoked or expired.")
			return
		}
		fail(http.StatusUnauthorized, "The token could not be checked: "+err.Error())
		return
	}
	s.Login, s.Admin = u.Login, u.Admin
	v, err := ui.seal(s)
	if err != nil {
		ui.errorPage(w, r, http.StatusInternalServerError, "could not start a session")
		return
	}
	ui.setCookie(w, r, v, int(time.Until(expires)/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session; a session that signed in with a password also
// revokes its session token, which then works nowhere.
func (ui *UI) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if s.TokenID != 0 {
		err := ui.client(s).RevokeToken(r.Context(), s.TokenID)
		if err != nil && !apiclient.IsStatus(err, http.StatusUnauthorized) && !apiclient.IsStatus(err, http.StatusNotFound) {
			ui.log.Error("revoking the session token at logout", "user", s.Login, "err", err)
		}
	}
	ui.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// repoRow is one line of the repos page: a repo's branch and its latest
// build.
type repoRow struct {
	Repo   *apiclient.Repo
	Branch string
	Build  *apiclient.Build
}

func (ui *UI) reposPage(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	repos, err := c.Repos(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	var rows []repoRow
	for _, repo := range repos {
		builds, _, err := c.Builds(r.Context(), repo.Slug, apiclient.BuildFilter{Limit: 50})
		if err != nil {
			ui.apiError(w, r, err)
			return
		}
		seen := map[string]bool{}
		n := len(rows)
		for _, b := range builds {
			if seen[b.Branch] {
				continue
			}
			seen[b.Branch] = true
			rows = append(rows, repoRow{Repo: repo, Branch: b.Branch, Build: b})
		}
		if len(rows) == n {
			rows = append(rows, repoRow{Repo: repo, Branch: repo.DefaultBranch})
		}
		// The default branch first, then the others by latest build.
		slices.SortStableFunc(rows[n:], func(a, b repoRow) int {
			if (a.Branch == repo.DefaultBranch) != (b.Branch == repo.DefaultBranch) {
				if a.Branch == repo.DefaultBranch {
					return -1
				}
				return 1
			}
			return 0
		})
	}
	ui.render(w, http.StatusOK, "repos.html", &page{Title: "Repositories", Session: s, Data: rows})
}

func slugOf(r *http.Request) string { return r.PathValue("owner") + "/" + r.PathValue("name") }

type repoData struct {
	Repo   *apiclient.Repo
	Builds []*apiclient.Build
	Next   int64
	Branch string
}

func (ui *UI) repoPage(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	slug := slugOf(r)
	repo, err := c.Repo(r.Context(), slug)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	f := apiclient.BuildFilter{Limit: 50, Branch: r.URL.Query().Get("branch")}
	if v := r.URL.Query().Get("before"); v != "" {
		f.Before, _ = strconv.ParseInt(v, 10, 64)
	}
	builds, next, err := c.Builds(r.Context(), slug, f)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "repo.html", &page{Title: slug, Session: s,
		Data: repoData{Repo: repo, Builds: builds, Next: next, Branch: f.Branch}})
}

// buildData is what the build page shows.
type buildData struct {
	Repo     *apiclient.Repo
	Build    *apiclient.Build
	DAG      *dag
	Pipeline *apiclient.Pipeline
	Step     *apiclient.Step
	Bars     []stepBar
	CanWrite bool
	Failed   bool
}

// stepBar places a step on its pipeline's timing bar, in percent.
type stepBar struct {
	Step         *apiclient.Step
	Offset, Span float64
}

func (ui *UI) buildPage(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	slug := slugOf(r)
	n, err := strconv.ParseInt(r.PathValue("number"), 10, 64)
	if err != nil || n < 1 {
		ui.errorPage(w, r, http.StatusNotFound, "Build numbers are whole numbers from 1.")
		return
	}
	repo, err := c.Repo(r.Context(), slug)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	b, err := c.Build(r.Context(), slug, n)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	d := buildData{Repo: repo, Build: b, CanWrite: repo.Role == "write" || repo.Role == "admin" || s.Admin}
	d.Pipeline, d.Step = selectStep(b, r.PathValue("pipeline"), r.PathValue("step"))
	if (r.PathValue("pipeline") != "" || r.PathValue("step") != "") && d.Step == nil {
		ui.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("Build %d has no such pipeline or step.", n))
		return
	}
	for _, p := range b.Pipelines {
		if p.Status == apiclient.StatusFailure || p.Status == apiclient.StatusError || p.Status == apiclient.StatusKilled {
			d.Failed = true
		}
	}
	d.DAG = pipelineDAG(slug, b, d.Pipeline)
	if d.Pipeline != nil {
		d.Bars = timingBars(d.Pipeline, time.Now())
	}
	ui.render(w, http.StatusOK, "build.html", &page{Title: fmt.Sprintf("%s #%d", slug, n), Session: s, Data: d})
}

// selectStep returns the pipeline and step the URL names, or, when it
// names none, the step most worth looking at: the first that failed, else
// the first running, else the last that ran.
func selectStep(b *apiclient.Build, pn, sn string) (*apiclient.Pipeline, *apiclient.Step) {
	if pn != "" || sn != "" {
		p, _ := strconv.ParseInt(pn, 10, 64)
		st, _ := strconv.ParseInt(sn, 10, 64)
		for _, pl := range b.Pipelines {
			if pl.Number != p {
				continue
			}
			for _, s := range pl.Steps {
				if s.Number == st {
					return pl, s
				}
			}
		}
		return nil, nil
	}
	var lastRan *apiclient.Step
	var lastPl *apiclient.Pipeline
	for _, want := range []apiclient.Status{apiclient.StatusFailure, apiclient.StatusError, apiclient.StatusKilled, apiclient.StatusRunning} {
		for _, pl := range b.Pipelines {
			for _, s := range pl.Steps {
				if s.Status == want {
					return pl, s
				}
			}
		}
	}
	for _, pl := range b.Pipelines {
		for _, s := range pl.Steps {
			if !s.Started.IsZero() || lastRan == nil {
				lastRan, lastPl = s, pl
			}
		}
	}
	return lastPl, lastRan
}

// timingBars lays the pipeline's steps on a bar from the pipeline's start
// to its end (now, while it runs).
func timingBars(p *apiclient.Pipeline, now time.Time) []stepBar {
	start, end := p.Started, p.Finished
	for _, s := range p.Steps {
		if !s.Started.IsZero() && (start.IsZero() || s.Started.Before(start)) {
			start = s.Started
		}
		if s.Finished.After(end) {
			end = s.Finished
		}
	}
	if end.IsZero() || !p.Status.Done() {
		end = now
	}
	total := end.Sub(start)
	bars := make([]stepBar, 0, len(p.Steps))
	for _, s := range p.Steps {
		b := stepBar{Step: s}
		if !s.Started.IsZero() && total > 0 {
			f := cmp.Or(s.Finished, end)
			b.Offset = 100 * float64(s.Started.Sub(start)) / float64(total)
			b.Span = max(100*float64(f.Sub(s.Started))/float64(total), 0.5)
			b.Span = min(b.Span, 100-b.Offset)
		}
		bars = append(bars, b)
	}
	return bars
}

// buildAction runs a button of the build page: cancel, restart, approve
// or decline.
func (ui *UI) buildAction(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	slug := slugOf(r)
	n, err := strconv.ParseInt(r.PathValue("number"), 10, 64)
	if err != nil {
		ui.errorPage(w, r, http.StatusNotFound, "Build numbers are whole numbers from 1.")
		return
	}
	ctx := r.Context()
	var b *apiclient.Build
	switch r.PathValue("action") {
	case "cancel":
		b, err = c.CancelBuild(ctx, slug, n)
	case "restart":
		b, err = c.RestartBuild(ctx, slug, n, r.PostFormValue("failed_only") == "true")
	case "approve":
		b, err = c.ApproveBuild(ctx, slug, n)
	case "decline":
		b, err = c.DeclineBuild(ctx, slug, n)
	default:
		ui.errorPage(w, r, http.StatusNotFound, "Builds have the actions cancel, restart, approve and decline.")
		return
	}
	fetched := r.Header.Get("X-Ferry-Fetch") != ""
	if err != nil {
		if fetched {
			code, msg := http.StatusBadGateway, err.Error()
			var ae *apiclient.Error
			if errors.As(err, &ae) {
				code, msg = ae.StatusCode, ae.Message
			}
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		ui.apiError(w, r, err)
		return
	}
	if fetched {
		writeJSON(w, http.StatusOK, map[string]any{"url": buildURL(slug, b.Number), "status": b.Status})
		return
	}
	http.Redirect(w, r, buildURL(slug, b.Number), http.StatusSeeOther)
}

// buildURL is the path of a build's page.
func buildURL(slug string, n int64) string {
	return "/repos/" + (&url.URL{Path: slug}).EscapedPath() + "/builds/" + strconv.FormatInt(n, 10)
}

// writeJSON answers v as JSON, for the page's scripts.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
