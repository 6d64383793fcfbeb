package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

// notification is a build state to report to the forge.
type notification struct {
	repo  *store.Repo
	build store.Build
}

// notifyTimeout bounds one Notify call, retries included.
const notifyTimeout = time.Minute

// newNotifier returns the commit status notifier for the forges the
// configuration has tokens for, or nil when it has none.
func newNotifier(cfg *Config, log *slog.Logger) (notifier, error) {
	if cfg.GitHubToken == "" && cfg.GiteaToken == "" && cfg.GitLabToken == "" {
		return nil, nil
	}
	n, err := trigger.NewStatusNotifier(trigger.StatusConfig{
		URL:       cfg.publicURL(),
		GitHubAPI: cfg.GitHubAPI, GitHubToken: cfg.GitHubToken,
		GiteaURL: cfg.GiteaURL, GiteaToken: cfg.GiteaToken,
		GitLabURL: cfg.GitLabURL, GitLabToken: cfg.GitLabToken,
	}, log)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// statusTokenFlags name, per forge, the flag and environment variable of
// the token that commit statuses need.
var statusTokenFlags = map[store.Forge]string{
	store.ForgeGitHub: "--github-token (FERRY_GITHUB_TOKEN)",
	store.ForgeGitea:  "--gitea-token (FERRY_GITEA_TOKEN)",
	store.ForgeGitLab: "--gitlab-token (FERRY_GITLAB_TOKEN)",
}

// statusToken returns the commit status token of forge f.
func (cfg *Config) statusToken(f store.Forge) string {
	switch f {
	case store.ForgeGitHub:
		return cfg.GitHubToken
	case store.ForgeGitea:
		return cfg.GiteaToken
	case store.ForgeGitLab:
		return cfg.GitLabToken
	}
	return ""
}

// statusWarning returns why builds of a repo on forge f post no commit
// status, or "" when they do or the repo has no forge.
func (s *Server) statusWarning(f store.Forge) string {
	if f == store.ForgeNone || s.cfg.statusToken(f) != "" {
		return ""
	}
	return fmt.Sprintf("no commit status will be posted to %s: the server has no %s; see docs/server.md, \"Forges\", for the token and its scope",
		f, statusTokenFlags[f])
}

// warnStatusTokens logs, at start, each forge that repos use or that is
// configured but has no status token, since their builds then post no
// commit status; or that statuses are off, when no forge has a token.
func (s *Server) warnStatusTokens(ctx context.Context) error {
	repos, err := s.store.Repos.List(ctx)
	if err != nil {
		return fmt.Errorf("listing repos: %w", err)
	}
	used := map[store.Forge]int{}
	for _, r := range repos {
		used[r.Forge]++
	}
	someToken := false
	for _, f := range []store.Forge{store.ForgeGitHub, store.ForgeGitea, store.ForgeGitLab} {
		if s.cfg.statusToken(f) != "" {
			someToken = true
			continue
		}
		switch {
		case used[f] > 0:
			s.log.Warn(s.statusWarning(f), "repos", used[f])
		case f == store.ForgeGitea && s.cfg.GiteaURL != "":
			s.log.Warn(s.statusWarning(f), "gitea_url", s.cfg.GiteaURL)
		}
	}
	if !someToken {
		s.log.Info("commit statuses are off: no forge token is set (--github-token, --gitea-token, --gitlab-token)")
	}
	return nil
}

// notify queues a report of b's state. It never blocks: when the queue is
// full (the forge is slow), the report is dropped, and the next change of
// the build reports its state again.
func (s *Server) notify(repo *store.Repo, b *store.Build) {
	if s.notifier == nil || repo.Forge == store.ForgeNone {
		return
	}
	select {
	case s.notifyQueue <- notification{repo: repo, build: *b}:
	default:
		s.log.Warn("commit status queue is full; dropping a status", "repo", repo.Slug, "build", b.Number)
	}
}

// notifyLoop sends queued reports, one at a time, until ctx is done.
func (s *Server) notifyLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-s.notifyQueue:
			s.sendNotification(ctx, n)
		}
	}
}

func (s *Server) sendNotification(ctx context.Context, n notification) {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	pls, err := s.store.Pipelines.List(ctx, n.build.ID)
	if err != nil {
		s.log.Warn("loading pipelines for a commit status", "build", n.build.ID, "err", err)
		return
	}
	if err := s.notifier.Notify(ctx, n.repo, &n.build, pls); err != nil {
		s.log.Warn("reporting commit status", "repo", n.repo.Slug, "build", n.build.Number, "err", err)
	}
}
