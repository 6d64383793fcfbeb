package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
)

// notifyCloseTimeout bounds how long Close waits for queued notifications.
const notifyCloseTimeout = 10 * time.Second

// newDispatcher returns the dispatcher of the --notify endpoints (maybe
// none: the deploy orchestrator also sends to its environments' own),
// counting in ferry_notifications_total.
func newDispatcher(cfg *Config, m *metrics, log *slog.Logger) (*notify.Dispatcher, error) {
	cfgs, err := notify.ParseFlags(cfg.Notify)
	if err != nil {
		return nil, fmt.Errorf("--notify %w", err)
	}
	targets, err := notify.NewTargets(cfgs)
	if err != nil {
		return nil, fmt.Errorf("--notify %w", err)
	}
	pm, err := notify.NewPrometheusMetrics(m.reg)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		on := t.Config().On
		if len(on) == 0 {
			on = notify.DefaultOn
		}
		log.Info("notifications on", "target", t.String(), "on", strings.Join(on, ","))
	}
	allow, err := notify.ParseAllowNets(cfg.NotifyAllowNets)
	if err != nil {
		return nil, fmt.Errorf("--notify-allow-net %w", err)
	}
	return notify.NewDispatcher(targets, notify.Options{Logger: log.With("component", "notify"), Metrics: pm, AllowNets: allow}), nil
}

// Notifications returns the dispatcher of the --notify endpoints (which
// may be none), for the deploy orchestrator to send deployment events
// through, with each environment's own targets as Send's extra targets.
// It is never nil, and drains in Close.
func (s *Server) Notifications() *notify.Dispatcher { return s.dispatch }

// notifyBuild sends a build event (build.started or build.finished) of b
// to the --notify endpoints. It never blocks on them; repo may be nil, and
// is then read from the store.
func (s *Server) notifyBuild(ctx context.Context, repo *store.Repo, b *store.Build, action string) {
	if len(s.dispatch.Targets()) == 0 {
		return
	}
	if repo == nil {
		r, err := s.store.Repos.Get(ctx, b.RepoID)
		if err != nil {
			s.log.Warn("loading a repo for a notification", "build_id", b.ID, "err", err)
			return
		}
		repo = r
	}
	msg, _, _ := strings.Cut(b.Message, "\n")
	at := b.Finished
	if action == notify.ActionStarted {
		at = b.Started
	}
	s.dispatch.Send(notify.Event{
		Kind: notify.KindBuild, Action: action, Status: string(b.Status), Time: at,
		Link: s.cfg.publicURL() + "/repos/" + (&url.URL{Path: repo.Slug}).EscapedPath() + "/builds/" + strconv.FormatInt(b.Number, 10),
		Build: &notify.Build{Repo: repo.Slug, Number: b.Number, Event: b.Event, Branch: b.Branch, Ref: b.Ref,
			Commit: b.Commit, Message: msg, Author: b.Author, Sender: b.Sender, Error: b.Error,
			Started: b.Started, Finished: b.Finished},
	})
}

// closeNotifications drains the notification queue, for Close.
func (s *Server) closeNotifications() {
	ctx, cancel := context.WithTimeout(context.Background(), notifyCloseTimeout)
	defer cancel()
	if err := s.dispatch.Close(ctx); err != nil {
		s.log.Warn("notifications left unsent", "err", err)
	}
}
