// Package agent runs ferry's build agents: it leases jobs from a ferry
// server, checks out the commit, compiles the pipeline, runs it on the
// docker or local backend, and reports step states, log lines and the
// result back to the server.
//
// An agent talks to the server only through internal/rpc. It never exits
// because the server is unreachable: leasing backs off and retries, and a
// running job keeps running while its reports wait in an ordered outbox
// that is re-sent until the server acknowledges it.
//
// Reporting guarantees, per job: step updates (running, and the final
// state, also for skipped steps), log lines numbered per step from 0, and
// finally Complete are delivered in the order they happened. Log lines are
// batched and reach the server within about a second, or sooner when a
// batch holds 1000 lines or 256 KiB. Network errors and 5xx answers are
// retried with jittered exponential backoff (capped at 5 s) until the
// server acknowledges; Complete is sent only once everything before it
// was acknowledged. A report the server refuses for good (a 4xx other than
// 401, 403 or 409) is logged and dropped. When the server stays away, at
// most 32 MiB of a job's output is held; beyond that the step writing
// output blocks until the server catches up (backpressure), so memory
// stays bounded and no line is dropped. A 409 (lease lost) or 401/403
// (token refused) gives the job up: its steps are killed, nothing more is
// reported.
//
// The lease is extended every Config.Heartbeat (or a third of its TTL, if
// shorter) while the job runs and until Complete is acknowledged. An
// answer with Cancel set kills the running steps; the job then completes
// as killed.
//
// Lifecycle: New validates the configuration; Run opens the backends and
// leases jobs until ctx is cancelled or Drain is called. Drain stops
// leasing and lets running jobs finish; cancelling ctx kills the running
// jobs, which are then reported as killed, and removes their containers.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/local"
	"github.com/ferryci/ferry/internal/backend/registry"
	"github.com/ferryci/ferry/internal/rpc"
)

// Defaults of Config.
const (
	// DefaultCapacity is one job at a time per backend: a CI job usually
	// keeps every core of the machine busy (compilers, test runners run in
	// parallel by themselves), so running two would slow both down.
	// Raise it on large machines or for light jobs.
	DefaultCapacity = 1
	// DefaultBackend picks docker when the Engine answers, else local.
	DefaultBackend = "auto"
	// DefaultPollWait is how long one lease request may wait on the
	// server for a job.
	DefaultPollWait = 30 * time.Second
	// DefaultHeartbeat is how often a running job's lease is extended (or
	// a third of the lease's TTL, if that is shorter).
	DefaultHeartbeat = time.Second
	// DefaultTimeout bounds a pipeline for which the server sets no
	// timeout, as Drone's default repository timeout does.
	DefaultTimeout = time.Hour
	// DefaultExecUser is who host steps run as when the agent runs as
	// root and Config.ExecUser is empty.
	DefaultExecUser = "nobody"
)

// Backend names, as used in --backend and in the "backend" label.
const (
	BackendDocker = backend.Docker
	BackendLocal  = backend.Local
	BackendAuto   = "auto"
)

// Labels that the agent sets itself.
const (
	// LabelBackend is "docker" or "local"; a job requires the backend its
	// pipeline type needs.
	LabelBackend = "backend"
	// LabelPlatform is "os/arch", e.g. "linux/amd64".
	LabelPlatform = "platform"
)

// Config configures an agent. Zero fields take the documented defaults.
type Config struct {
	// Server is the base URL of the ferry server, e.g. "http://ci:8080".
	Server string
	// Token is the agent token the server issued.
	Token string
	// TokenFile, when Token is empty, is a file holding the token, so that
	// it need not appear on a command line, where every user of the
	// machine can read it.
	TokenFile string
	// Name identifies the agent on the server; the default is the host
	// name. An agent that offers both backends leases under NAME-docker
	// and NAME-local, one registration per backend.
	Name string
	// Labels are custom labels matched against the pipelines' node
	// sections. LabelPlatform may be overridden; LabelBackend may not
	// (use Backend).
	Labels map[string]string
	// Capacity is how many jobs run at once on each backend; the default
	// is DefaultCapacity.
	Capacity int
	// Backend is "docker", "local", "auto" (docker if the Engine answers,
	// else local) or "docker,local" to offer both. The default is "auto".
	Backend string
	// WorkDir holds the per-job checkouts; the default is
	// $TMPDIR/ferry-agent. Each job's directory is removed when it ends.
	WorkDir string
	// PollWait is how long a lease request may wait for a job.
	PollWait time.Duration
	// Heartbeat is how often a running job's lease is extended.
	Heartbeat time.Duration
	// Timeout bounds a pipeline whose job carries no timeout.
	Timeout time.Duration
	// ExecUser is the user host steps (the local backend) run as. Empty
	// means "nobody" when the agent runs as root, and the agent's own user
	// otherwise; naming a user needs root. "root" (or the agent's own
	// user) runs them as the agent's user. See docs/security.md.
	ExecUser string
	// HTTPClient, when set, is used for every call to the server; by
	// default the agent makes its own and closes its idle connections
	// when Run returns.
	HTTPClient *http.Client

	// reportLinger replaces reportLinger when positive; tests set it to
	// make the coalescing of a job's reports independent of timing.
	reportLinger time.Duration
}

// Agent leases and runs jobs. Create it with New.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	hc       *http.Client
	ownHC    bool
	client   *rpc.Client
	kinds    []string // requested backends; "auto" resolved in Run
	hostname string

	drainOnce sync.Once
	drain     chan struct{}

	// backends are the opened backends, by name; set by Run before any
	// worker starts and read-only afterwards.
	backends map[string]backend.Backend
	// dirs are the jobs' work dirs; set by Run with the backends.
	dirs *workDirs
	// execUser is who host steps run as; nil means the agent's user.
	execUser *local.User
	// euid is the agent's effective user id.
	euid int
}

// New checks cfg, fills in its defaults and returns an agent. A nil logger
// discards messages.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Server == "" {
		return nil, errors.New("no server URL given (--server or FERRY_SERVER)")
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q is not valid: want http://HOST[:PORT] or https://HOST[:PORT]", cfg.Server)
	}
	var tokenMode os.FileMode
	if cfg.Token == "" && cfg.TokenFile != "" {
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the agent token: %w", err)
		}
		if cfg.Token = strings.TrimSpace(string(data)); cfg.Token == "" {
			return nil, fmt.Errorf("the agent token file %s is empty", cfg.TokenFile)
		}
		if fi, err := os.Stat(cfg.TokenFile); err == nil {
			tokenMode = fi.Mode().Perm()
		}
	}
	if cfg.Token == "" {
		return nil, errors.New("no agent token given (FERRY_AGENT_TOKEN or --token-file)")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	if cfg.Name == "" {
		cfg.Name = host
	}
	if _, ok := cfg.Labels[LabelBackend]; ok {
		return nil, fmt.Errorf("label %q is set by the agent from --backend; do not set it with --labels", LabelBackend)
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Capacity < 0 {
		return nil, fmt.Errorf("capacity %d is not valid: want 1 or more", cfg.Capacity)
	}
	if cfg.Backend == "" {
		cfg.Backend = DefaultBackend
	}
	kinds, err := parseBackends(cfg.Backend)
	if err != nil {
		return nil, err
	}
	execUser, err := resolveExecUser(cfg.ExecUser, os.Geteuid())
	if err != nil {
		return nil, err
	}
	switch {
	case tokenMode&0o004 != 0 && execUser != nil && !slices.Equal(kinds, []string{BackendDocker}):
		// Host steps run as another user precisely so that they cannot
		// read the agent's secrets; a token file every user may read
		// would undo it (docs/security.md, "Host execution").
		return nil, fmt.Errorf("the agent token file %s is readable by every user (mode %04o), so host steps, which run as %s, could read it: chmod 600 it",
			cfg.TokenFile, tokenMode, execUser.Name)
	case tokenMode&0o077 != 0:
		logger.Warn("the agent token file is readable by other users; chmod 600 it", "path", cfg.TokenFile,
			"mode", fmt.Sprintf("%04o", tokenMode))
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "ferry-agent")
	}
	if cfg.WorkDir, err = filepath.Abs(cfg.WorkDir); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	a := &Agent{
		cfg:      cfg,
		log:      logger,
		hc:       cfg.HTTPClient,
		kinds:    kinds,
		hostname: host,
		execUser: execUser,
		euid:     os.Geteuid(),
		drain:    make(chan struct{}),
	}
	if a.hc == nil {
		a.ownHC = true
		a.hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: max(16, 4*cfg.Capacity),
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	a.client = rpc.NewClient(cfg.Server, cfg.Token, a.hc)
	return a, nil
}

// resolveExecUser decides who host steps run as (Config.ExecUser) for an
// agent running as euid; nil means the agent's own user.
func resolveExecUser(name string, euid int) (*local.User, error) {
	if name == "" {
		if euid != 0 {
			return nil, nil
		}
		name = DefaultExecUser
	}
	u, err := local.LookupUser(name)
	if err != nil {
		return nil, fmt.Errorf("--exec-user: %w", err)
	}
	switch {
	case int(u.UID) == euid:
		return nil, nil
	case euid != 0:
		return nil, fmt.Errorf("--exec-user %s: running host steps as another user needs the agent to run as root (it runs as uid %d); leave --exec-user out to run them as the agent's user", name, euid)
	}
	return u, nil
}

// errHostAsSelf refuses host steps that would run as the agent's own,
// non-root user.
func errHostAsSelf(euid int) error {
	name := strconv.Itoa(euid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return fmt.Errorf("host steps (the local backend) would run as the agent's own user %s, able to read the agent's token and files: "+
		"run the agent as root (host steps then run as %s), or accept it with --exec-user %s", name, DefaultExecUser, name)
}

// parseBackends reads Config.Backend.
func parseBackends(s string) ([]string, error) {
	var kinds []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch k {
		case BackendDocker, BackendLocal:
		case BackendAuto:
			if s != BackendAuto {
				return nil, fmt.Errorf("backend %q is not valid: auto cannot be combined with others", s)
			}
		default:
			return nil, fmt.Errorf("backend %q is not valid: want docker, local, auto or docker,local", s)
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// Drain stops leasing new jobs; Run returns once the running jobs have
// finished and been reported. It may be called at any time, more than
// once, and before Run.
func (a *Agent) Drain() {
	a.drainOnce.Do(func() { close(a.drain) })
}

// lane is one backend's lease loop: its workers lease jobs under one name
// and label set.
type lane struct {
	kind   string
	name   string
	labels map[string]string
	conn   connState
}

// Run opens the backends, removes what crashed agents on this host left
// behind in Docker, and then leases and runs jobs with Capacity workers
// per backend until Drain is called (running jobs finish first) or ctx is
// cancelled (running jobs are killed, reported as killed, and their
// resources removed). Server outages never end Run: leasing retries with
// backoff. Run returns an error only when a backend cannot be opened. Call
// Run once.
func (a *Agent) Run(ctx context.Context) error {
	if a.ownHC {
		defer a.hc.CloseIdleConnections()
	}
	closeBackends, err := a.openBackends(ctx)
	if err != nil {
		return err
	}
	defer closeBackends()

	var lanes []*lane
	for _, kind := range slices.Sorted(maps.Keys(a.backends)) {
		labels := maps.Clone(a.cfg.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		if labels[LabelPlatform] == "" {
			labels[LabelPlatform] = goruntime.GOOS + "/" + goruntime.GOARCH
		}
		labels[LabelBackend] = kind
		name := a.cfg.Name
		if len(a.backends) > 1 {
			name += "-" + kind
		}
		lanes = append(lanes, &lane{kind: kind, name: name, labels: labels})
	}

	// leaseCtx ends leasing: on Drain, and when ctx ends.
	leaseCtx, stopLeasing := context.WithCancel(ctx)
	defer stopLeasing()
	go func() {
		select {
		case <-a.drain:
			a.log.Info("draining: no new jobs are leased; running jobs finish first")
			stopLeasing()
		case <-leaseCtx.Done():
		}
	}()

	for _, l := range lanes {
		args := []any{"name", l.name, "server", a.cfg.Server, "backend", l.kind,
			"capacity", a.cfg.Capacity, "labels", formatLabels(l.labels)}
		if l.kind == BackendLocal {
			who := "the agent's user"
			if a.execUser != nil {
				who = a.execUser.Name
			}
			args = append(args, "host_steps_run_as", who)
		}
		a.log.Info("agent started", args...)
	}
	var wg sync.WaitGroup
	for _, l := range lanes {
		for range a.cfg.Capacity {
			wg.Go(func() { a.worker(ctx, leaseCtx, l) })
		}
	}
	wg.Wait()
	a.log.Info("agent stopped")
	return nil
}

// openBackends opens the requested backends and sets a.backends.
func (a *Agent) openBackends(ctx context.Context) (func(), error) {
	a.backends = map[string]backend.Backend{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if err := os.MkdirAll(a.cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}
	if a.execUser != nil && (slices.Contains(a.kinds, BackendLocal) || slices.Contains(a.kinds, BackendAuto)) {
		if err := openWorkDir(a.cfg.WorkDir, a.execUser); err != nil {
			return nil, err
		}
	}
	a.dirs = &workDirs{root: a.cfg.WorkDir}
	closers = append(closers, func() {
		if err := a.dirs.close(); err != nil {
			a.log.Warn("removing work dirs", "err", err)
		}
	})
	// Host steps of an agent that is not root would run as the agent's
	// own user, able to read its token and files: only when the operator
	// said so (docs/security.md, "Host execution").
	if a.execUser == nil && a.cfg.ExecUser == "" && a.euid != 0 && slices.Contains(a.kinds, BackendLocal) {
		return nil, errHostAsSelf(a.euid)
	}
	for _, kind := range a.kinds {
		name := kind
		if kind == BackendAuto {
			name = BackendDocker
		}
		be, closeBe, err := registry.Open(ctx, name, registry.Options{Logger: a.log, TempDir: a.cfg.WorkDir, StateDir: a.cfg.WorkDir, User: a.execUser})
		if err != nil && kind == BackendAuto {
			if a.execUser == nil && a.cfg.ExecUser == "" && a.euid != 0 {
				closeAll()
				return nil, fmt.Errorf("docker engine not reachable (%w), and %w", err, errHostAsSelf(a.euid))
			}
			a.log.Info("docker engine not reachable; running on the local backend", "err", err)
			name = BackendLocal
			be, closeBe, err = registry.Open(ctx, name, registry.Options{Logger: a.log, TempDir: a.cfg.WorkDir, StateDir: a.cfg.WorkDir, User: a.execUser})
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, closeBe)
		a.backends[name] = be
	}
	return closeAll, nil
}

// pollSlack is how much longer than PollWait a lease request may take
// before the agent gives up on it, for a server or proxy that never
// answers.
const pollSlack = 15 * time.Second

// minEmptyPoll is the shortest time between two lease requests that came
// back empty, so that a server answering at once cannot make the agent spin.
const minEmptyPoll = time.Second

// worker leases jobs for l and runs them one at a time until leaseCtx ends.
// Running jobs belong to ctx: only its end kills them.
func (a *Agent) worker(ctx, leaseCtx context.Context, l *lane) {
	log := a.log.With("agent", l.name)
	bo := backoff{min: 250 * time.Millisecond, max: 5 * time.Second}
	req := &rpc.LeaseRequest{Name: l.name, Labels: l.labels, Capacity: a.cfg.Capacity, Wait: a.cfg.PollWait}
	for leaseCtx.Err() == nil {
		start := time.Now()
		pctx, cancel := context.WithTimeout(leaseCtx, a.cfg.PollWait+pollSlack)
		job, err := a.client.Lease(pctx, req)
		cancel()
		if job != nil {
			// A job that came with the answer is ours, even if a drain
			// began meanwhile: run it rather than let its lease expire.
			l.conn.ok(log)
			bo.reset()
			a.runJob(ctx, l, job)
			continue
		}
		if leaseCtx.Err() != nil {
			return
		}
		if err != nil {
			l.conn.failed(log, "leasing jobs", err)
			sleep(leaseCtx, bo.next())
			continue
		}
		l.conn.ok(log)
		bo.reset()
		if d := time.Since(start); d < minEmptyPoll {
			sleep(leaseCtx, jitter(minEmptyPoll-d))
		}
	}
}

// connState tracks whether the server answers, so that an outage is
// logged once when it starts and once when it ends, not on every retry.
type connState struct {
	mu   sync.Mutex
	down string // the kind of failure, or "" when the server answers
}

func (c *connState) failed(log *slog.Logger, what string, err error) {
	kind := "unreachable"
	if errors.Is(err, rpc.ErrUnauthorized) {
		kind = "unauthorized"
	}
	c.mu.Lock()
	changed := c.down != kind
	c.down = kind
	c.mu.Unlock()
	if !changed {
		return
	}
	if kind == "unauthorized" {
		log.Error("the server refuses the agent token; retrying until it is accepted", "during", what, "err", err)
		return
	}
	log.Warn("server not reachable; retrying with backoff", "during", what, "err", err)
}

func (c *connState) ok(log *slog.Logger) {
	c.mu.Lock()
	was := c.down
	c.down = ""
	c.mu.Unlock()
	if was != "" {
		log.Info("connected to server again")
	}
}

func formatLabels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
