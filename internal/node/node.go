// Package node is `ferry node`, the host agent on a deploy target. For
// each configured service it keeps the release it should run installed
// and running: it downloads the artifact (resumably), verifies its sha256,
// unpacks it safely into releases/ID, runs the before hooks, switches the
// `current` symlink atomically, restarts the app, runs the after hooks,
// health-checks, and reports; a failure leaves or puts back the previous
// release. Around each update it drains the node in its load balancer.
//
// The desired release comes from a ferry server over internal/nodeproto
// (the only package through which the node talks to a server), or, in
// standalone mode, from an artifact URL whose checksum is polled as
// Dropship does. State is durable: a restart never redeploys, and a kill
// at any moment leaves `current` on a complete release.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/artifact"
	"github.com/ferryci/ferry/internal/nodeproto"
)

// Node runs the services of one configuration.
type Node struct {
	cfg      *Config
	log      *slog.Logger
	opts     artifact.Options
	services map[string]*service
	names    []string
	version  string // ferry version, sent when registering
}

// New prepares a node; Run starts it. log may be nil.
func New(cfg *Config, version string, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := cfg.storeOptions()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, opts: opts, services: map[string]*service{}, version: version}
	for _, name := range sortedKeys(cfg.Services) {
		s, err := newService(name, cfg.Services[name], cfg, opts, log)
		if err != nil {
			return nil, err
		}
		n.services[name] = s
		n.names = append(n.names, name)
		if cfg.Server != nil && s.as.Uid() == os.Getuid() {
			log.Warn("this service's hooks run as the node's own user and can read its token file; run the node as root with user set", "service", name)
		}
	}
	return n, nil
}

// Run opens every service (starting supervised apps on their current
// release), then converges them on their desired releases until ctx ends,
// and stops supervised apps.
func (n *Node) Run(ctx context.Context) error {
	for _, name := range n.names {
		if err := n.services[name].open(ctx); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, name := range n.names {
			if err := n.services[name].runner.Stop(sctx); err != nil {
				n.log.Error("stopping", "service", name, "err", err)
			}
		}
	}()
	if n.cfg.Server != nil {
		return n.runConnected(ctx)
	}
	var wg sync.WaitGroup
	for _, name := range n.names {
		s := n.services[name]
		wg.Go(func() { s.watch(ctx) })
	}
	wg.Wait()
	return nil
}

// Statuses returns the actual state of every service.
func (n *Node) Statuses() []nodeproto.ServiceStatus {
	out := make([]nodeproto.ServiceStatus, 0, len(n.names))
	for _, name := range n.names {
		out = append(out, n.services[name].Status())
	}
	return out
}

// watch is standalone mode: every check_interval, read the artifact's
// checksum; when it differs from the running release's, apply it. A
// checksum whose apply failed is not retried until it changes.
func (s *service) watch(ctx context.Context) {
	w := s.cfg.Watch
	u, _, err := artifact.Parse(w.URL, s.opts)
	if err != nil {
		s.log.Error("watch.url", "err", err)
		return
	}
	curl := artifact.ChecksumURL(u)
	if w.ChecksumURL != "" {
		if curl, _, err = artifact.Parse(w.ChecksumURL, s.opts); err != nil {
			s.log.Error("watch.checksum_url", "err", err)
			return
		}
	}
	_, cstore, err := artifact.Parse(curl.String(), s.opts)
	if err != nil {
		s.log.Error("watch.checksum_url", "err", err)
		return
	}
	var lastErr string
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(w.CheckInterval)
		sha, err := artifact.ReadChecksum(ctx, cstore, curl)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if err.Error() != lastErr {
				s.log.Error("reading the artifact checksum", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if f := s.state.Failed; f != nil && f.SHA256 == sha {
			continue
		}
		rel := nodeproto.Release{ID: sha[:16], Artifact: &nodeproto.Artifact{URL: w.URL, SHA256: sha, Format: w.Format}}
		if err := s.apply(ctx, rel); err != nil {
			s.log.Error("apply failed", "err", err)
		}
	}
}

// runConnected registers with the server and long-polls the desired
// state, applying each change and reporting the actual state.
func (n *Node) runConnected(ctx context.Context) error {
	token, err := readSecret(n.cfg.Server.TokenFile)
	if err != nil {
		return fmt.Errorf("server.token_file: %w", err)
	}
	c := nodeproto.NewClient(n.cfg.Server.URL, token, nil)
	wait := n.cfg.Server.PollWait
	backoff := newBackoff()
	if err := n.register(ctx, c, backoff); err != nil {
		return ignoreCancel(ctx, err)
	}
	n.log.Info("registered", "server", n.cfg.Server.URL, "name", n.cfg.Name)
	backoff.reset()
	version := ""
	for ctx.Err() == nil {
		ds, err := c.Desired(ctx, version, wait)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, nodeproto.ErrUnauthorized) {
				return ignoreCancel(ctx, err)
			}
			n.log.Warn("polling the desired state", "err", err)
			_ = backoff.wait(ctx)
			continue
		}
		backoff.reset()
		if ds == nil {
			if n.recheck(ctx) {
				n.report(ctx, c, version)
			}
			continue
		}
		version = ds.Version
		for _, name := range n.names {
			rel, ok := ds.Services[name]
			if !ok {
				continue
			}
			s := n.services[name]
			if f := s.state.Failed; f != nil && f.Release == rel.ID && s.state.Desired == rel.ID {
				continue // failed already; the server decides what comes next
			}
			if !s.converged(rel.ID) {
				s.setStatus(func(ss *nodeproto.ServiceStatus) {
					ss.Desired, ss.State, ss.Error = rel.ID, nodeproto.StateApplying, ""
				})
				n.report(ctx, c, version)
			}
			if err := s.apply(ctx, rel); err != nil {
				n.log.Error("apply failed", "err", err)
			}
		}
		n.recheck(ctx)
		n.report(ctx, c, version)
	}
	return nil
}

// recheck has each service put back the load-balancer state the server
// asked for, where the balancer changed it (service.recheck), and
// reports whether any did.
func (n *Node) recheck(ctx context.Context) bool {
	acted := false
	for _, name := range n.names {
		acted = n.services[name].recheck(ctx) || acted
	}
	return acted
}

// register introduces the node, retrying until the server answers; a
// refused token is final.
func (n *Node) register(ctx context.Context, c *nodeproto.Client, b *backoff) error {
	for {
		_, err := c.Register(ctx, &nodeproto.RegisterRequest{Name: n.cfg.Name, Labels: n.cfg.Labels, Version: n.version, Services: n.Statuses()})
		if err == nil || errors.Is(err, nodeproto.ErrUnauthorized) {
			return err
		}
		n.log.Warn("registering with the server", "err", err)
		if werr := b.wait(ctx); werr != nil {
			return werr
		}
	}
}

// ignoreCancel returns nil when ctx ended (the node is stopping), else err.
func ignoreCancel(ctx context.Context, err error) error {
	select {
	case <-ctx.Done():
		return nil
	default:
		return err
	}
}

func (n *Node) report(ctx context.Context, c *nodeproto.Client, version string) {
	if err := c.Report(ctx, &nodeproto.Report{Version: version, Services: n.Statuses()}); err != nil && ctx.Err() == nil {
		n.log.Warn("reporting to the server", "err", err)
	}
}

// backoff waits 1 s, doubling to 30 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: time.Second} }

func (b *backoff) reset() { b.d = time.Second }

func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 30*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
