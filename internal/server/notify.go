package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

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

// subscribe wires the server's in-process subscribers to the build
// events: log streams, metrics, the log line and commit statuses. Only
// log streams follow the other servers' events too; the rest act on this
// server's own, so that each happens once per cluster.
func (s *Server) subscribe() {
	s.Subscribe(func(ev build.Event) {
		if ev.Kind == build.StepFinished {
			s.logs.notify(ev.StepID)
		}
		if !ev.Local() {
			return
		}
		switch ev.Kind {
		case build.PipelineFinished:
			if ev.Status != store.StatusSkipped && ev.Status != store.StatusDeclined {
				s.metrics.jobFinished(ev.Status)
			}
		case build.BuildStarted:
			s.started.add(ev.BuildID)
		case build.BuildFinished:
			s.metrics.buildFinished(ev.Status, ev.Created, ev.Time)
			s.log.Info("build finished", "build_id", ev.BuildID, "number", ev.Number, "status", ev.Status)
			s.finished.add(ev.BuildID)
		}
		if s.notifier != nil {
			switch ev.Kind {
			// A finished build's final status is one of its side
			// effects (finishEffects), sent once per cluster even when
			// this server dies right after finishing it.
			case build.BuildCreated, build.BuildWaiting, build.BuildStarted, build.PipelineFinished:
				s.notifications.add(ev.BuildID)
			}
		}
	})
}

// notifyQueue holds the builds whose state to report to their forge, each
// once: a build queued again before its report was sent is reported once,
// in the state it has when the report is sent.
type notifyQueue struct {
	mu     sync.Mutex
	builds []int64
	queued map[int64]bool
	wake   chan struct{}
}

func newNotifyQueue() *notifyQueue {
	return &notifyQueue{queued: map[int64]bool{}, wake: make(chan struct{}, 1)}
}

// maxNotifyQueue bounds the builds waiting for a report; beyond it, new
// ones are dropped, and their next change reports their state again.
const maxNotifyQueue = 4096

func (q *notifyQueue) add(buildID int64) {
	q.mu.Lock()
	if !q.queued[buildID] && len(q.builds) < maxNotifyQueue {
		q.queued[buildID] = true
		q.builds = append(q.builds, buildID)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next returns the next build to report, or false when none is queued.
func (q *notifyQueue) next() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.builds) == 0 {
		return 0, false
	}
	id := q.builds[0]
	q.builds = q.builds[1:]
	delete(q.queued, id)
	return id, true
}

// finishedLoop hands the builds this server started to the notifications
// (build.started), and those it finished to the deploy orchestrator's
// auto trigger and the notifications (buildFinished), one at a time, until
// ctx is done.
func (s *Server) finishedLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.started.wake:
		case <-s.finished.wake:
		}
		for ctx.Err() == nil {
			id, ok := s.started.next()
			finished := false
			if !ok {
				if id, ok = s.finished.next(); !ok {
					break
				}
				finished = true
			}
			b, err := s.store.Builds.Get(ctx, id)
			if err != nil {
				s.log.Warn("loading a build for its notifications", "build_id", id, "err", err)
				continue
			}
			if finished {
				s.finishEffects(ctx, b)
			} else {
				s.notifyBuild(ctx, nil, b, notify.ActionStarted)
			}
		}
	}
}

// Side effects of a finished build (store.BuildEffectStore): the server
// that finished it claims them at once; any server's maintenance sweep
// claims those that a dead server left, once its claim ran out.
const (
	// effectsClaim is how long a claim holds a build's side effects:
	// longer than sending a commit status may take (notifyTimeout).
	effectsClaim = 5 * time.Minute
	// effectsLookback is how far back the sweep looks for finished
	// builds whose side effects were never run: an automatic deployment
	// of a build older than that is no longer what anyone expects.
	effectsLookback = time.Hour
	// effectsGrace leaves a just-finished build to the server that
	// finished it before the sweep of another server picks it up.
	effectsGrace = 10 * time.Second
)

// finishEffects runs the once-per-cluster side effects of finished build
// b, when this server can claim them: the automatic deployments and
// notifications it triggers, and its final commit status; then marks
// them done. Run at least once: a server that dies between claiming and
// marking leaves them to another server once its claim ran out.
func (s *Server) finishEffects(ctx context.Context, b *store.Build) {
	now := time.Now()
	ok, err := s.store.BuildEffects.Claim(ctx, b.ID, s.builds.Events().Origin(), now, now.Add(effectsClaim))
	if err != nil {
		s.log.Warn("claiming a finished build's side effects; the maintenance sweep tries again", "build_id", b.ID, "err", err)
		return
	}
	if !ok {
		return
	}
	s.buildFinished(ctx, b)
	s.sendNotification(ctx, b.ID)
	if err := s.store.BuildEffects.Done(ctx, b.ID); err != nil {
		s.log.Warn("marking a finished build's side effects done", "build_id", b.ID, "err", err)
	}
}

// pendingEffects queues the finished builds whose side effects no live
// server holds (their server died first) for finishedLoop.
func (s *Server) pendingEffects(ctx context.Context, now time.Time) error {
	ids, err := s.store.BuildEffects.Pending(ctx, now.Add(-effectsLookback), now.Add(-effectsGrace), now, maxNotifyQueue)
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.log.Info("running the side effects of a build its server left", "build_id", id)
		s.finished.add(id)
	}
	return nil
}

// notifyLoop sends queued reports, one at a time, until ctx is done.
func (s *Server) notifyLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.notifications.wake:
		}
		for {
			id, ok := s.notifications.next()
			if !ok || ctx.Err() != nil {
				break
			}
			s.sendNotification(ctx, id)
		}
	}
}

// sendNotification reports build id's state, as stored now.
func (s *Server) sendNotification(ctx context.Context, id int64) {
	if s.notifier == nil {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	b, repo, err := s.store.Builds.GetWithRepo(ctx, id)
	if err != nil {
		s.log.Warn("loading a build for a commit status", "build_id", id, "err", err)
		return
	}
	if repo.Forge == store.ForgeNone {
		return
	}
	pls, err := s.store.Pipelines.List(ctx, id)
	if err != nil {
		s.log.Warn("loading pipelines for a commit status", "build_id", id, "err", err)
		return
	}
	if err := s.notifier.Notify(ctx, repo, b, pls); err != nil {
		s.log.Warn("reporting commit status", "repo", repo.Slug, "build", b.Number, "err", err)
	}
}
