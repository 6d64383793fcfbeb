// Package server is ferry's CI server: the JSON API with its token auth,
// the agent endpoints of internal/rpc, the scheduler that turns triggers
// into builds and jobs, and the maintenance loop that keeps every job in a
// definite state. All state lives in the store, so a server can crash and
// restart, and several servers can share one PostgreSQL database.
//
// The API is described by the OpenAPI document served at
// /api/openapi.json (and kept in docs/openapi.json). Every endpoint except
// GET /healthz and POST /api/sessions (a password sign-in, which answers a
// token) needs a bearer token; webhooks (/hook/...) authenticate by their
// forge signature instead.
package server

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/deploy"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/store/database"
	"github.com/ferryci/ferry/internal/trigger"
	"github.com/ferryci/ferry/internal/web"
)

// Server is a ferry CI server. Create it with New, serve it with Run or
// Serve, and release it with Close. Its methods are safe for concurrent
// use.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	// builds changes builds, and publishes their events.
	builds *build.Lifecycle
	// streams counts the open log and event streams.
	streams streamLimiter
	sealer  *sealer
	git     *gitReader
	// notifier reports build states to forges; nil when none is
	// configured.
	notifier notifier
	// dispatch sends build events to the --notify endpoints, and the
	// deploy orchestrator's events to them and to its environments'.
	dispatch *notify.Dispatcher
	metrics  *metrics
	// ui serves the web pages at the paths web.Owns names.
	ui *web.UI

	mux     *http.ServeMux
	routes  []route
	handler http.Handler

	// jobsReady wakes lease long-polls when this server enqueues or
	// unblocks a job, or hears that another server did.
	jobsReady *broadcast
	// jobSignal asks the signals loop to tell the other servers that
	// jobs are ready; requests made while one is being sent coalesce.
	jobSignal chan struct{}
	// logs wakes log streams when lines of a step arrive.
	logs *stepSignals
	// logPoll, when set, replaces ssePoll: how often a log stream looks
	// for lines stored through another server (tests lengthen it).
	logPoll atomic.Int64
	// agents caches registered agents by name.
	agents *agentCache
	// tokens caches verified agent tokens.
	tokens *tokenCache
	// steps caches step IDs by pipeline and name for agent reports.
	steps *stepIndex
	// leases remembers the leases this server handed out.
	leases *leaseCache
	// leaseHold holds lease expiry after start-up and store failures.
	leaseHold leaseHold
	// passwords limits and hashes password sign-ins.
	passwords *passwordAuth
	// deploy is the deploy orchestrator; desired wakes node long-polls
	// when a desired state changes.
	deploy  *deploy.Orchestrator
	desired *broadcast
	// polls is the git poller Serve runs; a push build reported through
	// the API holds its repo (see postPushBuild).
	polls *trigger.Poller

	// stopping is closed when the server shuts down; long polls and log
	// streams end then.
	stopping chan struct{}
	stopOnce sync.Once
	// notifications queues the builds whose commit status to report.
	notifications *notifyQueue
	// notifyMu serializes commit status reports, so that the notifier's
	// record of what it sent keeps one state from being posted twice by
	// the notification loop and a finished build's side effects.
	notifyMu sync.Mutex
	// started and finished queue the builds this server started and
	// finished, for notifications and the deploy orchestrator's auto
	// trigger.
	started, finished *notifyQueue
}

// notifier reports a build's state to the forge it came from, as commit
// statuses. Notify is called when a build is created and each time its
// state changes (a pipeline finishes, the build finishes), from one
// goroutine at a time; it should return within a few seconds.
type notifier interface {
	Notify(ctx context.Context, repo *store.Repo, build *store.Build, pipelines []*store.Pipeline) error
}

var _ trigger.Builder = (*Server)(nil)

// New returns a server on st, which it owns from then on (Close closes
// it): it loads or creates the secret key and bootstraps the first admin
// user when the store has no users. Open st with database.Open(ctx,
// cfg.DatabaseDSN()). A nil logger discards logs.
func New(ctx context.Context, cfg Config, st *store.Store, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := PrepareDataDir(&cfg, logger); err != nil {
		st.Close()
		return nil, err
	}
	key, generated, err := cfg.loadKey()
	if err != nil {
		st.Close()
		return nil, err
	}
	if generated {
		logger.Warn("generated a new secret key; back it up, secrets cannot be decrypted without it",
			"path", filepath.Join(cfg.DataDir, "secret.key"))
	}
	seal, err := newSealer(key)
	if err != nil {
		st.Close()
		return nil, err
	}
	// The UI's session cookies are sealed under a key of their own,
	// derived from the secret key, so that every server of a cluster
	// accepts them and a cookie never decrypts as a secret.
	sessionKey, err := hkdf.Key(sha256.New, key, nil, "ferry web session v1", 32)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("deriving the session key: %w", err)
	}
	s := &Server{
		cfg:           cfg,
		log:           logger,
		store:         st,
		sealer:        seal,
		git:           newGitReader(filepath.Join(cfg.DataDir, "mirrors"), logger),
		metrics:       newMetrics(),
		jobsReady:     newBroadcast(),
		jobSignal:     make(chan struct{}, 1),
		logs:          newStepSignals(),
		agents:        newAgentCache(),
		tokens:        newTokenCache(),
		steps:         newStepIndex(),
		leases:        newLeaseCache(),
		passwords:     newPasswordAuth(),
		stopping:      make(chan struct{}),
		notifications: newNotifyQueue(),
		started:       newNotifyQueue(),
		finished:      newNotifyQueue(),
		desired:       newBroadcast(),
	}
	s.storeFailed(time.Now()) // start-up counts as the end of an outage
	if s.dispatch, err = newDispatcher(&cfg, s.metrics, logger); err != nil {
		st.Close()
		return nil, err
	}
	built := false
	defer func() {
		if !built {
			s.closeNotifications() // ends its worker
		}
	}()
	s.builds = build.New(build.Options{
		Store:  st,
		Logger: logger,
		AgentName: func(ctx context.Context, id int64) string {
			return s.agents.name(ctx, st.Agents, id)
		},
		JobsReady:   s.jobsEnqueued,
		LogAppended: s.logs.notify,
	})
	s.deploy = s.newOrchestrator()
	s.polls = trigger.NewPoller(st, s, s.git.mirrors, logger)
	s.polls.Auth = s.gitOptions
	s.metrics.register(s)
	s.notifier, err = newNotifier(&cfg, logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	s.subscribe()
	if err := s.warnStatusTokens(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		st.Close()
		return nil, err
	}
	s.buildRouter()
	s.ui, err = web.New(web.Config{API: s.handler, SessionKey: sessionKey, Badge: s.badgeStatus,
		Logger: logger.With("component", "web")})
	if err != nil {
		st.Close()
		return nil, err
	}
	api := s.handler
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if web.Owns(r.URL.Path) {
			s.ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	built = true
	return s, nil
}

// PrepareDataDir checks the configuration, and creates the data directory
// or checks that it is private (see privateDir). Call it before opening a
// store in the data directory.
func PrepareDataDir(cfg *Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	return privateDir(cfg.DataDir, logger)
}

// Open prepares the data directory, opens the store the configuration
// names (applying migrations) and returns a server on it, as New does.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := PrepareDataDir(&cfg, logger); err != nil {
		return nil, err
	}
	st, err := database.Open(ctx, cfg.DatabaseDSN())
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	return New(ctx, cfg, st, logger)
}

// Subscribe calls fn for every event of every build, from this server and
// from the servers sharing its database, until unsubscribe is called. fn
// must not block; see build.Bus.
func (s *Server) Subscribe(fn func(build.Event)) (unsubscribe func()) {
	return s.builds.Events().Subscribe(fn)
}

// Handler returns the server's HTTP handler: the API, the agent
// endpoints, webhooks, /metrics and /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends long polls and log streams, sends the queued notifications
// (for up to ten seconds) and closes the store. Call it after Serve has
// returned; the server must not be used afterwards.
func (s *Server) Close() error {
	s.stop()
	s.closeNotifications()
	return s.store.Close()
}

func (s *Server) stop() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// Run listens on the configured address and serves until ctx is done; see
// Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	s.log.Info("ferry server listening", "addr", ln.Addr().String(), "url", s.cfg.publicURL(), "store", s.store.Driver)
	return s.Serve(ctx, ln)
}

// shutdownTimeout bounds how long a graceful shutdown waits for requests
// in flight.
const shutdownTimeout = 10 * time.Second

// Serve serves HTTP on ln and runs the maintenance loop, git polling, crons
// and commit status notifications until ctx is done. It then stops
// accepting connections, ends long polls and log streams, waits up to ten
// seconds for requests in flight and returns nil. Serve does not close the
// store; call Close after it returns. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		// The whole request, body included: a slow upload is cut off.
		// It does not limit responses: once a request's body is read, Go
		// clears the connection's read deadline, so log streams and long
		// polls are not cut.
		ReadTimeout: s.cfg.ReadTimeout,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	loopCtx, cancelLoops := context.WithCancel(ctx)
	defer cancelLoops()
	var wg sync.WaitGroup
	for name, loop := range s.loops() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(loopCtx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("background loop stopped", "loop", name, "err", err)
			}
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving http: %w", err)
	}
	s.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		s.log.Warn("shutting down http server", "err", serr)
		hs.Close()
	}
	cancelLoops()
	wg.Wait()
	return err
}

// loops returns the background loops Serve runs.
func (s *Server) loops() map[string]func(context.Context) error {
	loops := map[string]func(context.Context) error{
		"maintenance":     s.maintain,
		"notifications":   s.notifyLoop,
		"cron":            s.newCron().Run,
		"deploy":          s.deploy.Run,
		"finished builds": s.finishedLoop,
	}
	loops["poller"] = s.polls.Run
	if s.store.Signals != nil {
		loops["job signals"] = s.sendJobSignals
		loops["job signal listener"] = func(ctx context.Context) error {
			return s.store.Signals.ListenJobs(ctx, s.jobsReady.notify)
		}
		loops["build event relay"] = func(ctx context.Context) error {
			return s.builds.RunRelay(ctx, s.store.Signals.NotifyEvents)
		}
		loops["build event listener"] = func(ctx context.Context) error {
			return s.store.Signals.ListenEvents(ctx, func(payload []byte) {
				if err := s.builds.Events().Receive(payload); err != nil {
					s.log.Warn("decoding build events from another server", "err", err)
				}
			})
		}
	}
	return loops
}

// newCron returns the cron scheduler, reading repos with their
// credentials.
func (s *Server) newCron() *trigger.Cron {
	c := trigger.NewCron(s.store, s, s.log)
	c.Auth = s.gitOptions
	return c
}

// privateDir makes dir, the data directory, readable by its owner only:
// it holds the secret key and the database, and host steps (running as
// another user, docs/security.md) must not read them.
func privateDir(dir string, logger *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		// A shared directory such as /tmp: not ours to close.
		return fmt.Errorf("data directory %s is a shared directory (mode %s); give --data-dir a directory of ferry's own", dir, fi.Mode())
	}
	if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil {
		return fmt.Errorf("data directory %s is open to other users (mode %04o) and cannot be closed: %w", dir, fi.Mode().Perm(), err)
	}
	logger.Warn("data directory was open to other users; made it private", "path", dir,
		"was", fmt.Sprintf("%04o", fi.Mode().Perm()), "now", fmt.Sprintf("%04o", fi.Mode().Perm()&0o700))
	return nil
}
