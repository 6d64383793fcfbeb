package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// WebhookHandler returns the handler for forge webhooks. It serves
//
//	POST /hook/{slug...}
//	POST /hook?repo={slug}
//
// and is meant to be mounted on "/hook" and "/hook/" of the server's mux
// without stripping the prefix. Webhooks carry no bearer token: a request
// is authenticated by its signature, checked against the repo's webhook
// secret the way the repo's forge signs (see forge.ParseHook). A repo whose
// forge is "none" accepts a webhook from any of the three forges, detected
// from its event header, as long as it is signed with the repo's secret.
//
// The answers are:
//
//   - 200 and {"build": N} when build N was created;
//   - 204 when the event is genuine but builds nothing: an event ferry does
//     not build (forge.ErrIgnored), or no pipeline's trigger matched;
//   - 400 for a body that cannot be parsed, naming the problem;
//   - 401 for a missing or wrong signature; nothing is stored;
//   - 404 for an unknown or inactive repo;
//   - 413 for a body larger than the forge's limit (forge.MaxPayload);
//   - 500 when the Builder fails;
//   - 503 when the repository cannot be looked up (the store is down);
//   - 503 when MaxHooksInFlight bodies are already being read and none
//     ended within HookQueueWait.
//
// Memory is bounded before a request is authenticated: the body is
// verified while it streams to a small buffer or a temporary file (see
// forge.ParseHook), and at most MaxHooksInFlight bodies are read at once.
//
// Errors are JSON objects {"error": "..."}, as in the rest of the API. The
// handler is safe for concurrent use; a nil logger discards logs.
func WebhookHandler(st *store.Store, b Builder, logger *slog.Logger) http.Handler {
	return newWebhook(st, b, logger, MaxHooksInFlight, HookQueueWait).handler()
}

// newWebhook returns the webhook handler's state with room for maxInFlight
// bodies, each further one waiting up to wait.
func newWebhook(st *store.Store, b Builder, logger *slog.Logger, maxInFlight int, wait time.Duration) *webhook {
	return &webhook{repos: st.Repos, builder: b, logger: orDiscard(logger), inflight: make(chan struct{}, maxInFlight), wait: wait}
}

// handler routes the webhook paths to h.
func (h *webhook) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", h.serve)
	mux.HandleFunc("POST /hook/{slug...}", h.serve)
	return mux
}

// MaxHooksInFlight is how many webhook bodies are read and verified at
// once; a request beyond that waits up to HookQueueWait for its turn, and
// is answered 503 otherwise. It bounds the disk space that unauthenticated
// bodies can take (each at most forge.MaxPayload) and the work they cost.
const MaxHooksInFlight = 16

// HookQueueWait is how long a webhook waits for one of the
// MaxHooksInFlight slots.
const HookQueueWait = 10 * time.Second

type webhook struct {
	repos   store.RepoStore
	builder Builder
	logger  *slog.Logger
	// inflight holds a token per webhook body being read.
	inflight chan struct{}
	// wait is how long a request waits for a token.
	wait time.Duration
}

// acquire waits for a slot to read a body in, and reports whether it got
// one; release it with h.release.
func (h *webhook) acquire(ctx context.Context) bool {
	select {
	case h.inflight <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.inflight <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

func (h *webhook) release() { <-h.inflight }

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	slug := strings.Trim(r.PathValue("slug"), "/")
	if slug == "" {
		slug = strings.Trim(r.URL.Query().Get("repo"), "/")
	}
	if slug == "" {
		writeError(w, http.StatusBadRequest, "no repository named: use /hook/{owner}/{name} or /hook?repo={owner}/{name}")
		return
	}
	log := h.logger.With("repo", slug)

	repo, err := h.repos.GetBySlug(ctx, slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "repository "+slug+" not found")
		return
	case err != nil:
		// The store does not answer: the forge may deliver again later.
		log.ErrorContext(ctx, "webhook: looking up repository", "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "looking up the repository failed: the database is unavailable; retry later")
		return
	case !repo.Active:
		writeError(w, http.StatusNotFound, "repository "+slug+" is not active")
		return
	}

	kind := forge.Kind(repo.Forge)
	switch {
	case repo.Forge == store.ForgeNone:
		kind = forge.Detect(r)
		if kind == "" {
			// A request that names no forge cannot be verified, so it
			// is refused as unsigned.
			writeError(w, http.StatusUnauthorized, "webhook signature missing or invalid: the request carries no GitHub, Gitea or GitLab event header")
			return
		}
	case !kind.Valid():
		log.ErrorContext(ctx, "webhook: the repository's forge is unknown", "forge", repo.Forge)
		writeError(w, http.StatusInternalServerError, "the repository's forge "+string(repo.Forge)+" is unknown")
		return
	}

	if !h.acquire(ctx) {
		log.WarnContext(ctx, "webhook: too many deliveries in flight", "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", strconv.Itoa(max(int(h.wait/time.Second), 1)))
		writeError(w, http.StatusServiceUnavailable, "too many webhook deliveries are being received; retry later")
		return
	}
	hook, err := forge.ParseHook(r, kind, repo.WebhookSecret)
	h.release()
	var perr *forge.PayloadError
	switch {
	case errors.Is(err, forge.ErrSignature):
		log.WarnContext(ctx, "webhook: refused", "forge", kind, "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusUnauthorized, "webhook signature missing or invalid")
		return
	case errors.Is(err, forge.ErrIgnored):
		log.DebugContext(ctx, "webhook: ignored", "forge", kind, "reason", err)
		w.WriteHeader(http.StatusNoContent)
		return
	case errors.Is(err, forge.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case errors.As(err, &perr):
		log.InfoContext(ctx, "webhook: bad payload", "forge", kind, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		log.ErrorContext(ctx, "webhook: parsing", "forge", kind, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	ev := HookEvent(hook)
	log = log.With("event", ev.Kind, "ref", ev.Ref, "sha", ev.SHA, "delivery", hook.Delivery)
	build, err := h.builder.CreateBuild(ctx, repo, ev)
	if err != nil {
		log.ErrorContext(ctx, "webhook: creating build", "err", err)
		writeError(w, http.StatusInternalServerError, "creating build: "+err.Error())
		return
	}
	if build == nil {
		log.InfoContext(ctx, "webhook: no pipeline matched")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	log.InfoContext(ctx, "webhook: build created", "build", build.Number)
	writeJSON(w, http.StatusOK, map[string]int64{"build": build.Number})
}

// HookEvent converts a verified forge webhook into the Event to build. The
// clone URL is left empty even for a pull request from a fork: the forge's
// pull request ref (refs/pull/N/head) is fetched from the target
// repository, which works without access to the fork.
func HookEvent(h *forge.Hook) *Event {
	ev := &Event{
		Kind:             h.Event,
		Action:           h.Action,
		Ref:              h.Ref,
		Branch:           h.Branch,
		SourceBranch:     h.SourceBranch,
		SHA:              h.SHA,
		Before:           h.Before,
		Message:          h.Message,
		Link:             h.Link,
		AuthorLogin:      h.Author.Login,
		AuthorName:       h.Author.Name,
		AuthorEmail:      h.Author.Email,
		AuthorAvatar:     h.Author.Avatar,
		PullRequest:      int(h.PullRequest.Number),
		PullRequestTitle: h.PullRequest.Title,
		Fork:             h.PullRequest.Fork,
		Sender:           h.Sender.Login,
		ChangedPaths:     h.ChangedPaths,
	}
	if ev.Sender == "" {
		ev.Sender = h.Sender.Name
	}
	return ev
}

// writeJSON writes v as the JSON response body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// orDiscard returns l, or a logger that discards everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
