package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryci/ferry/internal/apiclient"
)

// settingsData is what a repo's settings page shows. Secret values are
// write-only: the API never answers them, so the page can't show them.
type settingsData struct {
	Repo    *apiclient.Repo
	Secrets []*apiclient.Secret
	// SecretsError says why the secrets are not listed (the API answers
	// them to repo administrators only).
	SecretsError string
	Crons        []*apiclient.Cron
	Events       []string
	Notice       string
}

// buildEvents are the events a secret may be limited to.
var buildEvents = []string{"push", "pull_request", "tag", "cron", "custom", "promote", "rollback"}

func (ui *UI) settingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ui.renderSettings(w, r, s, http.StatusOK, r.URL.Query().Get("notice"))
}

func (ui *UI) renderSettings(w http.ResponseWriter, r *http.Request, s *session, code int, notice string) {
	c := ui.client(s)
	slug := slugOf(r)
	repo, err := c.Repo(r.Context(), slug)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	d := settingsData{Repo: repo, Events: buildEvents, Notice: notice}
	if d.Secrets, err = c.Secrets(r.Context(), slug); err != nil {
		var ae *apiclient.Error
		if !asAPIError(err, &ae) || ae.StatusCode != http.StatusForbidden {
			ui.apiError(w, r, err)
			return
		}
		d.SecretsError = "Only the repo's administrators see and change its secrets."
	}
	if d.Crons, err = c.Crons(r.Context(), slug); err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, code, "settings.html", &page{Title: slug + " settings", Session: s, Data: d})
}

// settingsAction runs a form of the settings page and comes back to it.
func (ui *UI) settingsAction(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	slug := slugOf(r)
	ctx := r.Context()
	var err error
	var notice string
	switch r.PathValue("what") {
	case "secrets":
		name, value := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("value")
		events := r.PostForm["events"]
		allowPR := r.PostFormValue("allow_pull_request") == "true"
		req := &apiclient.SecretRequest{Name: &name, Value: &value, AllowPullRequest: &allowPR}
		if len(events) > 0 {
			req.Events = &events
		}
		_, err = c.CreateSecret(ctx, slug, req)
		notice = "Secret " + name + " saved."
	case "crons":
		_, err = c.CreateCron(ctx, slug, &apiclient.CronRequest{Name: strings.TrimSpace(r.PostFormValue("name")),
			Expr: strings.TrimSpace(r.PostFormValue("expr")), Branch: strings.TrimSpace(r.PostFormValue("branch"))})
		notice = "Cron saved."
	default:
		ui.errorPage(w, r, http.StatusNotFound, "Settings has secrets and crons.")
		return
	}
	ui.afterSettings(w, r, s, err, notice)
}

// settingsDelete removes a secret or a cron.
func (ui *UI) settingsDelete(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	slug, name := slugOf(r), r.PathValue("item")
	var err error
	switch r.PathValue("what") {
	case "secrets":
		err = c.DeleteSecret(r.Context(), slug, name)
	case "crons":
		err = c.DeleteCron(r.Context(), slug, name)
	default:
		ui.errorPage(w, r, http.StatusNotFound, "Settings has secrets and crons.")
		return
	}
	ui.afterSettings(w, r, s, err, "Removed "+name+".")
}

// afterSettings shows the settings page again: with the API's refusal
// when the action failed, or after a redirect when it worked.
func (ui *UI) afterSettings(w http.ResponseWriter, r *http.Request, s *session, err error, notice string) {
	if err != nil {
		var ae *apiclient.Error
		if asAPIError(err, &ae) && ae.StatusCode != http.StatusUnauthorized {
			msg := ae.Message
			if ae.Field != "" {
				msg = ae.Field + ": " + msg
			}
			ui.renderSettings(w, r, s, ae.StatusCode, "Not saved: "+msg)
			return
		}
		ui.apiError(w, r, err)
		return
	}
	http.Redirect(w, r, repoURL(slugOf(r))+"/settings?notice="+urlQueryEscape(notice), http.StatusSeeOther)
}

// tokensData is what the tokens page shows. New is the secret string of
// a token just created: shown once, never again.
type tokensData struct {
	Tokens []*apiclient.Token
	New    *apiclient.Token
	Notice string
}

func (ui *UI) tokensPage(w http.ResponseWriter, r *http.Request, s *session) {
	ui.renderTokens(w, r, s, nil, r.URL.Query().Get("notice"))
}

func (ui *UI) renderTokens(w http.ResponseWriter, r *http.Request, s *session, created *apiclient.Token, notice string) {
	ts, err := ui.client(s).Tokens(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "tokens.html", &page{Title: "Tokens", Session: s, Data: tokensData{Tokens: ts, New: created, Notice: notice}})
}

func (ui *UI) createToken(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	t, err := ui.client(s).CreateToken(r.Context(), &apiclient.TokenRequest{Name: name})
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	// The answer is not cached and the secret string is not in a URL.
	ui.renderTokens(w, r, s, t, "")
}

func (ui *UI) revokeToken(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		ui.errorPage(w, r, http.StatusNotFound, "Token ids are whole numbers.")
		return
	}
	if err := ui.client(s).RevokeToken(r.Context(), id); err != nil {
		ui.apiError(w, r, err)
		return
	}
	http.Redirect(w, r, "/user/tokens?notice="+urlQueryEscape("Token revoked."), http.StatusSeeOther)
}

// agentsData is the agents and queue page.
type agentsData struct {
	Agents []*apiclient.Agent
	Queue  []*apiclient.QueueEntry
}

// agentsPage lists the agents and the job queue: what runs where, and why
// a waiting job has not started (administrators).
func (ui *UI) agentsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	as, err := c.Agents(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	q, err := c.Queue(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "agents.html", &page{Title: "Agents and queue", Session: s, Data: agentsData{Agents: as, Queue: q}})
}
