package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// StatusConfig says where commit statuses go. A forge whose token is empty
// gets no statuses.
type StatusConfig struct {
	// URL is ferry's public URL. Each status links to the build's page,
	// URL/repos/SLUG/builds/NUMBER; with no URL, statuses carry no link.
	URL string

	// GitHubAPI is GitHub's API root; empty means https://api.github.com.
	// GitHub Enterprise is at https://HOST/api/v3.
	GitHubAPI string
	// GitHubToken is a GitHub token allowed to write commit statuses.
	GitHubToken string
	// GiteaURL is the Gitea server's root URL; it is required with a
	// Gitea token.
	GiteaURL string
	// GiteaToken is a Gitea access token.
	GiteaToken string
	// GitLabURL is the GitLab server's root URL; empty means
	// https://gitlab.com.
	GitLabURL string
	// GitLabToken is a GitLab token with the api scope.
	GitLabToken string

	// Options are given to every status client (HTTP client, retries).
	Options []forge.StatusOption
}

// StatusNotifier reports builds to the forges as commit statuses: one
// status per pipeline, under the context "ferry/PIPELINE/EVENT", and one
// for the whole build, under "ferry/EVENT", where EVENT is push, pr or tag
// (see forge.StatusContext), so that a push and a pull request or tag
// build of the same commit do not overwrite each other's statuses.
//
// A build that waits (blocked, pending) or runs is reported as pending
// (running on GitLab); a finished one as success, failure, error, or
// canceled (error on GitHub and Gitea) for a killed or declined build and
// for a pipeline skipped because a pipeline it depends on failed, which
// must not stay pending on the forge.
//
// The notifier remembers the statuses it has posted, and does not post the
// same one twice: the server may call Notify on every change. It is safe
// for concurrent use.
type StatusNotifier struct {
	clients map[store.Forge]forge.StatusClient
	baseURL string
	logger  *slog.Logger

	mu   sync.Mutex
	sent map[string]string // repo/sha/context → state and description
}

// maxSent bounds the memory of posted statuses; when it is full, it is
// forgotten, and at worst a status is posted twice.
const maxSent = 10000

// NewStatusNotifier returns a StatusNotifier for the forges cfg has tokens
// for. It fails when a configured forge's URL is invalid. A nil logger
// discards logs.
func NewStatusNotifier(cfg StatusConfig, logger *slog.Logger) (*StatusNotifier, error) {
	n := &StatusNotifier{
		clients: map[store.Forge]forge.StatusClient{},
		baseURL: strings.TrimRight(cfg.URL, "/"),
		logger:  orDiscard(logger).With("component", "status"),
		sent:    map[string]string{},
	}
	for _, f := range []struct {
		kind       store.Forge
		url, token string
	}{
		{store.ForgeGitHub, cfg.GitHubAPI, cfg.GitHubToken},
		{store.ForgeGitea, cfg.GiteaURL, cfg.GiteaToken},
		{store.ForgeGitLab, cfg.GitLabURL, cfg.GitLabToken},
	} {
		if f.token == "" {
			continue
		}
		c, err := forge.NewStatusClient(forge.Kind(f.kind), f.url, f.token, cfg.Options...)
		if err != nil {
			return nil, fmt.Errorf("configuring commit status: %w", err)
		}
		n.clients[f.kind] = c
	}
	return n, nil
}

// Enabled reports whether statuses are reported for repos on forge f.
func (n *StatusNotifier) Enabled(f store.Forge) bool {
	_, ok := n.clients[f]
	return ok
}

// Notify reports build and its pipelines to repo's forge: the build's
// overall state and each pipeline's. It does nothing for a repo with no
// forge, or whose forge has no token. It posts every status even when one
// fails, and returns the failures joined. It blocks while the forge
// client retries, so call it off the request path.
func (n *StatusNotifier) Notify(ctx context.Context, repo *store.Repo, build *store.Build, pipelines []*store.Pipeline) error {
	client, ok := n.clients[repo.Forge]
	if !ok || build.Commit == "" {
		return nil
	}
	link := n.buildURL(repo, build)
	statuses := []forge.Status{buildStatus(build, link)}
	for _, p := range pipelines {
		statuses = append(statuses, pipelineStatus(p, build.Event, link))
	}
	var errs []error
	for _, s := range statuses {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		key := strconv.FormatInt(repo.ID, 10) + "/" + build.Commit + "/" + s.Context
		val := string(s.State) + "\x00" + s.Description + "\x00" + s.TargetURL
		if n.wasSent(key, val) {
			continue
		}
		if err := client.SetStatus(ctx, repo.Slug, build.Commit, s); err != nil {
			errs = append(errs, fmt.Errorf("reporting %s: %w", s.Context, err))
			continue
		}
		n.markSent(key, val)
		n.logger.DebugContext(ctx, "commit status reported", "repo", repo.Slug, "build", build.Number,
			"context", s.Context, "state", s.State)
	}
	if len(errs) > 0 {
		return fmt.Errorf("reporting build %d of %s to %s: %w", build.Number, repo.Slug, repo.Forge, errors.Join(errs...))
	}
	return nil
}

func (n *StatusNotifier) wasSent(key, val string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[key] == val
}

func (n *StatusNotifier) markSent(key, val string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.sent) >= maxSent {
		clear(n.sent)
	}
	n.sent[key] = val
}

// buildURL returns the link to the build's page, or "" without a base URL.
func (n *StatusNotifier) buildURL(repo *store.Repo, build *store.Build) string {
	if n.baseURL == "" {
		return ""
	}
	return n.baseURL + "/repos/" + (&url.URL{Path: repo.Slug}).EscapedPath() + "/builds/" + strconv.FormatInt(build.Number, 10)
}

// buildStatus is the overall status of build.
func buildStatus(b *store.Build, link string) forge.Status {
	s := forge.Status{Context: forge.StatusContext("", b.Event), TargetURL: link}
	num := "Build #" + strconv.FormatInt(b.Number, 10)
	switch b.Status {
	case store.StatusBlocked:
		s.State, s.Description = forge.StatePending, num+" is waiting for approval"
		if b.Approval != store.ApprovalPending {
			s.Description = num + " is blocked"
		}
	case store.StatusPending:
		s.State, s.Description = forge.StatePending, num+" is waiting for an agent"
	case store.StatusRunning:
		s.State, s.Description = forge.StateRunning, num+" is running"
	case store.StatusSuccess:
		s.State, s.Description = forge.StateSuccess, num+" succeeded"
	case store.StatusFailure:
		s.State, s.Description = forge.StateFailure, num+" failed"
	case store.StatusKilled:
		s.State, s.Description = forge.StateCanceled, num+" was cancelled"
	case store.StatusDeclined:
		s.State, s.Description = forge.StateCanceled, num+" was declined"
	case store.StatusSkipped:
		s.State, s.Description = forge.StateSuccess, num+" had nothing to run"
	default: // error, and anything unknown
		s.State, s.Description = forge.StateError, withReason(num+" errored", b.Error)
	}
	return s
}

// pipelineStatus is the status of one pipeline of a build of event.
func pipelineStatus(p *store.Pipeline, event, link string) forge.Status {
	s := forge.Status{Context: forge.StatusContext(p.Name, event), TargetURL: link}
	switch p.Status {
	case store.StatusBlocked:
		s.State, s.Description = forge.StatePending, "Waiting"
	case store.StatusPending:
		s.State, s.Description = forge.StatePending, "Waiting for an agent"
	case store.StatusRunning:
		s.State, s.Description = forge.StateRunning, "Running"
	case store.StatusSuccess:
		s.State, s.Description = forge.StateSuccess, "Passed"
	case store.StatusFailure:
		s.State, s.Description = forge.StateFailure, "Failed"
	case store.StatusKilled:
		s.State, s.Description = forge.StateCanceled, "Cancelled"
	case store.StatusDeclined:
		s.State, s.Description = forge.StateCanceled, "Declined"
	case store.StatusSkipped:
		s.State, s.Description = forge.StateCanceled, "Skipped: a pipeline it depends on did not succeed"
	default:
		s.State, s.Description = forge.StateError, withReason("Errored", p.Error)
	}
	return s
}

func withReason(msg, reason string) string {
	if reason == "" {
		return msg
	}
	return msg + ": " + reason
}
