package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryci/ferry/internal/artifact"
	"github.com/ferryci/ferry/internal/node/hostcmd"
	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/nodeproto"
)

// service is one service on the node: its directory ROOT/NAME holds
// releases/ID (complete releases only), current (a symlink to one of them),
// downloads/ (partial downloads) and state.json. All calls but status are
// made by one goroutine at a time.
type service struct {
	name   string
	cfg    *ServiceConfig
	dir    string
	keep   int
	opts   artifact.Options
	limits UnpackConfig
	as     hostcmd.Identity
	log    *slog.Logger
	runner Runner
	lb     lb.Driver
	// serving is the load-balancer state the server asks for
	// (nodeproto.Release.Serving; nil: the node drains around its own
	// switch only); inLB is the state the node last set (nil: none since
	// it started).
	serving *bool
	inLB    *bool

	mu     sync.Mutex // guards state and status for status()
	state  *State
	status nodeproto.ServiceStatus
	relEnv map[string]string
	health *nodeproto.HealthCheck // the check of the release being applied
}

func newService(name string, cfg *ServiceConfig, c *Config, opts artifact.Options, log *slog.Logger) (*service, error) {
	user := cfg.User
	if user == "" {
		user = c.User
	}
	as, err := hostcmd.Lookup(user)
	if err != nil {
		return nil, fmt.Errorf("services.%s: %w", name, err)
	}
	s := &service{
		name:   name,
		cfg:    cfg,
		dir:    filepath.Join(c.Root, name),
		keep:   c.Keep,
		opts:   opts,
		limits: c.Unpack,
		as:     as,
		log:    log.With("service", name),
	}
	s.runner = runModes[cfg.Run.Mode].new(s)
	if cfg.LB != nil {
		s.lb, err = lb.New(*cfg.LB, func(ctx context.Context, script string) error { return s.run(ctx, "", script) })
		if err != nil {
			return nil, fmt.Errorf("services.%s.lb: %w", name, err)
		}
		s.status.LB = cfg.LB.Driver
	}
	return s, nil
}

func (s *service) releasesDir() string         { return filepath.Join(s.dir, "releases") }
func (s *service) releaseDir(id string) string { return filepath.Join(s.dir, "releases", id) }
func (s *service) currentLink() string         { return filepath.Join(s.dir, "current") }
func (s *service) stateFile() string           { return filepath.Join(s.dir, "state.json") }

// open prepares the service's directory after a start or a crash: reads
// the state, removes unfinished unpacks and releases no state names, and
// starts the app on the release `current` points to.
func (s *service) open(ctx context.Context) error {
	for _, d := range []string{s.releasesDir(), filepath.Join(s.dir, "downloads")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	st, err := ReadState(s.stateFile())
	if err != nil {
		return err
	}
	s.state = st
	entries, err := os.ReadDir(s.releasesDir())
	if err != nil {
		return err
	}
	cur := s.linkTarget()
	if _, ok := st.Releases[cur]; cur != "" && !ok {
		// The state was lost; the running release stays, its sha256 unknown.
		s.log.Warn("the current release is not in the state; keeping it", "release", cur)
		st.Releases[cur] = Kept{Installed: time.Now().UTC()}
	}
	for _, e := range entries {
		if _, ok := st.Releases[e.Name()]; !ok {
			s.log.Info("removing an unfinished or unknown release directory", "dir", e.Name())
			if err := os.RemoveAll(filepath.Join(s.releasesDir(), e.Name())); err != nil {
				return err
			}
		}
	}
	for id := range st.Releases {
		if _, err := os.Stat(s.releaseDir(id)); err != nil {
			delete(st.Releases, id)
		}
	}
	if st.Applying != "" {
		// Stopped after a switch and before the apply ended: go back to
		// the last release that completed; the apply runs again.
		s.log.Warn("the node stopped during an apply; back to the last complete release, to apply again", "release", st.Applying, "current", st.Current)
		if _, kept := st.Releases[st.Current]; st.Current != "" && kept && cur != st.Current {
			if err := s.switchTo(st.Current); err != nil {
				return err
			}
			cur = st.Current
		}
		st.Applying = ""
		if err := s.save(); err != nil {
			return err
		}
	}
	s.setStatus(func(ss *nodeproto.ServiceStatus) {
		ss.Release, ss.Desired, ss.State, ss.Healthy = cur, st.Desired, nodeproto.StateRunning, cur != ""
		if st.Failed != nil {
			ss.State, ss.Error = nodeproto.StateFailed, st.Failed.Error
		}
	})
	dir := ""
	if cur != "" {
		dir = s.releaseDir(cur)
	}
	return s.runner.Start(ctx, dir)
}

// converged reports whether release id is current and complete.
func (s *service) converged(id string) bool {
	return s.state.Current == id && s.state.Applying == "" && s.linkTarget() == id
}

// linkTarget returns the release `current` points to, or "".
func (s *service) linkTarget() string {
	t, err := os.Readlink(s.currentLink())
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// apply runs the apply sequence for rel: install (download, verify,
// unpack) unless the release is kept, drain, before hooks, switch, restart,
// after hooks, health check, re-enable. A failure before the switch leaves
// the previous release untouched; a failure after it switches back. A
// release that is already current and complete is not applied again, but
// its load-balancer state is settled on rel.Serving. With rel.Serving
// false the service stays drained throughout and is not re-enabled.
func (s *service) apply(ctx context.Context, rel nodeproto.Release) error {
	start := time.Now()
	if err := rel.Validate(); err != nil {
		return err
	}
	if rel.Serving != nil && s.lb == nil {
		err := fmt.Errorf("service %s: the server switches it in a load balancer (blue-green), and it has none: configure services.%s.lb", s.name, s.name)
		s.setStatus(func(ss *nodeproto.ServiceStatus) {
			ss.Desired, ss.State, ss.Error = rel.ID, nodeproto.StateFailed, err.Error()
		})
		return err
	}
	s.serving = rel.Serving
	if _, ok := s.runner.(imagePuller); rel.Image != nil && !ok {
		return fmt.Errorf("release %s: an image release needs run.mode docker, service %s has %s", rel.ID, s.name, s.cfg.Run.Mode)
	}
	st := s.state
	if st.Desired != rel.ID {
		st.Desired = rel.ID
		if err := s.save(); err != nil {
			return err
		}
	}
	if s.converged(rel.ID) {
		// Converged; a failure of another release is history now (the
		// desired state came back to the running release).
		if st.Failed != nil && st.Failed.Release != rel.ID {
			st.Failed = nil
			if err := s.save(); err != nil {
				return err
			}
		}
		if st.Failed == nil {
			s.setStatus(func(ss *nodeproto.ServiceStatus) {
				ss.Desired, ss.State, ss.Error, ss.Healthy = rel.ID, nodeproto.StateRunning, "", true
			})
		}
		return s.settle(ctx)
	}
	hooks := rel.Hooks
	if hooks.IsZero() {
		hooks = s.cfg.Hooks
	}
	health := rel.Health
	if health == nil {
		health = s.cfg.Health
	}
	s.health = health
	old := s.linkTarget()
	log := s.log.With("release", rel.ID, "previous", old)
	s.setStatus(func(ss *nodeproto.ServiceStatus) {
		ss.Desired, ss.State, ss.Error = rel.ID, nodeproto.StateApplying, ""
	})
	s.relEnv = map[string]string{
		"FERRY_SERVICE":          s.name,
		"FERRY_RELEASE":          rel.ID,
		"FERRY_RELEASE_DIR":      s.releaseDir(rel.ID),
		"FERRY_PREVIOUS_RELEASE": old,
		"FERRY_CURRENT":          s.currentLink(),
	}

	var kept bool
	var err error
	if rel.Image != nil {
		kept, err = s.installImage(ctx, rel.ID, rel.Image)
	} else {
		kept, err = s.install(ctx, rel.ID, rel.Artifact)
	}
	if err != nil {
		return s.fail(ctx, rel, "install", err, nil)
	}
	log.Info("release installed", "downloaded", !kept)

	if s.lb != nil && (s.inLB == nil || *s.inLB) {
		if err := s.drain(ctx); err != nil {
			return s.fail(ctx, rel, "lb drain", err, s.restore)
		}
	}
	dir := s.releaseDir(rel.ID)
	for i, h := range hooks.Before {
		if err := s.run(ctx, dir, h); err != nil {
			return s.fail(ctx, rel, fmt.Sprintf("before hook %d", i+1), err, s.restore)
		}
	}
	st.Applying = rel.ID
	if err := s.save(); err != nil {
		return s.fail(ctx, rel, "saving state", err, s.restore)
	}
	if err := s.switchTo(rel.ID); err != nil {
		return s.revert(ctx, rel, old, hooks, "switch", err)
	}
	log.Info("switched current")
	if err := s.runner.Switch(ctx, dir); err != nil {
		return s.revert(ctx, rel, old, hooks, "run", err)
	}
	for i, h := range hooks.After {
		if err := s.run(ctx, dir, h); err != nil {
			return s.revert(ctx, rel, old, hooks, fmt.Sprintf("after hook %d", i+1), err)
		}
	}
	if health != nil {
		if c, ok := s.runner.(interface{ ContainerIP() string }); ok {
			health = withContainerIP(health, c.ContainerIP())
		}
		if err := waitHealthy(ctx, health, s.run); err != nil {
			return s.revert(ctx, rel, old, hooks, "health check", err)
		}
	}
	if old != rel.ID {
		st.Previous = old
	}
	st.Current, st.Applying, st.Failed, st.LastApply = rel.ID, "", nil, time.Since(start)
	if err := s.save(); err != nil {
		return err
	}
	s.prune()
	var rerr error
	if s.lb != nil && s.wantServing() {
		if rerr = s.ready(ctx); rerr != nil {
			rerr = fmt.Errorf("service %s: release %s runs, but the load balancer does not send it requests: %w", s.name, rel.ID, rerr)
		}
	}
	s.setStatus(func(ss *nodeproto.ServiceStatus) {
		ss.Release, ss.State, ss.Healthy, ss.Error, ss.Duration = rel.ID, nodeproto.StateRunning, true, "", nodeproto.Duration(st.LastApply)
		if rerr != nil {
			ss.Error = rerr.Error()
		}
	})
	log.Info("release applied", "took", st.LastApply)
	return rerr
}

// wantServing reports whether the service should take requests once it
// runs a healthy release: unless the server keeps it out of rotation.
func (s *service) wantServing() bool { return s.serving == nil || *s.serving }

// settle puts a converged service's load balancer in the state the server
// asks for. Without one asked (nil), it re-enables only a service it
// drained itself, and otherwise leaves the balancer alone. An error is
// reported in the status; the release keeps running.
func (s *service) settle(ctx context.Context) error {
	if s.lb == nil || s.serving == nil && (s.inLB == nil || *s.inLB) || s.serving != nil && s.inLB != nil && *s.inLB == *s.serving {
		return nil
	}
	var err error
	if s.wantServing() {
		err = s.ready(ctx)
	} else {
		err = s.drain(ctx)
	}
	if err != nil {
		err = fmt.Errorf("service %s: load balancer: %w", s.name, err)
		s.setStatus(func(ss *nodeproto.ServiceStatus) { ss.Error = err.Error() })
	}
	return err
}

// recheck drains again a service that the server keeps out of rotation
// and that its load balancer put back behind the node's back (a reload of
// HAProxy's configuration forgets a drain): otherwise a blue-green standby
// slot would serve the release it keeps. Only drivers that can read the
// balancer's state (lb.Checker) are asked. A failure is in the status. It
// reports whether it acted.
func (s *service) recheck(ctx context.Context) bool {
	c, ok := s.lb.(lb.Checker)
	if !ok || s.serving == nil || *s.serving || s.inLB == nil || *s.inLB {
		return false
	}
	in, err := c.InRotation(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading the load balancer's state", "err", err)
		}
		return false
	}
	if !in {
		return false
	}
	s.log.Warn("the load balancer put the service back in rotation, which the server keeps it out of (was its configuration reloaded?); draining it again")
	if err := s.drain(ctx); err != nil {
		err = fmt.Errorf("service %s: load balancer: %w", s.name, err)
		s.setStatus(func(ss *nodeproto.ServiceStatus) { ss.Error = err.Error() })
	}
	return true
}

// drain takes the service out of its load balancer's rotation. Requests
// still in flight at the drain timeout are logged, not an error: the
// server is drained.
func (s *service) drain(ctx context.Context) error {
	if err := s.lb.Drain(ctx); err != nil {
		if !errors.Is(err, lb.ErrDrainTimeout) {
			return err
		}
		s.log.Warn("drained with requests still in flight", "err", err)
	}
	s.setInLB(false)
	s.log.Info("drained from the load balancer")
	return nil
}

// ready puts the service in its load balancer's rotation.
func (s *service) ready(ctx context.Context) error {
	if s.lb == nil {
		return nil
	}
	if err := s.lb.Ready(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	s.setInLB(true)
	s.log.Info("ready in the load balancer")
	return nil
}

// restore puts the load balancer back after a failed apply: ready, unless
// the server keeps the service out of rotation.
func (s *service) restore(ctx context.Context) error {
	if !s.wantServing() {
		return nil
	}
	return s.ready(ctx)
}

func (s *service) setInLB(v bool) {
	s.inLB = &v
	s.setStatus(func(ss *nodeproto.ServiceStatus) { ss.Serving = &v })
}

// ApplyError is a failed apply: the step that failed and why.
type ApplyError struct {
	Service, Release, Step string
	Err                    error
	RolledBackTo           string
}

func (e *ApplyError) Error() string {
	s := fmt.Sprintf("service %s: release %s: %s: %v", e.Service, e.Release, e.Step, e.Err)
	if e.RolledBackTo != "" {
		s += "; switched back to release " + e.RolledBackTo
	}
	return s
}

func (e *ApplyError) Unwrap() error { return e.Err }

// fail records a failure that happened before the switch; cleanup (the
// load balancer's ready) runs first.
func (s *service) fail(ctx context.Context, rel nodeproto.Release, step string, err error, cleanup func(context.Context) error) error {
	ae := &ApplyError{Service: s.name, Release: rel.ID, Step: step, Err: err}
	if cleanup != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if cerr := cleanup(cctx); cerr != nil {
			s.log.Error("load balancer ready after a failure", "err", cerr)
		}
		cancel()
	}
	s.record(ctx, rel, ae)
	return ae
}

// revert switches back to old after a failure past the switch, restarts
// it and runs the rollback hooks.
func (s *service) revert(actx context.Context, rel nodeproto.Release, old string, hooks nodeproto.Hooks, step string, err error) error {
	ae := &ApplyError{Service: s.name, Release: rel.ID, Step: step, Err: err}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s.log.Error("apply failed; switching back", "release", rel.ID, "step", step, "err", err, "to", old)
	s.health = nil // the previous release passed its check when it was applied
	if old != "" && old != rel.ID {
		dir := s.releaseDir(old)
		if serr := s.switchTo(old); serr != nil {
			s.log.Error("switching back", "err", serr)
		} else if rerr := s.runner.Switch(ctx, dir); rerr != nil {
			s.log.Error("restarting the previous release", "err", rerr)
		}
		s.relEnv["FERRY_RELEASE"], s.relEnv["FERRY_RELEASE_DIR"], s.relEnv["FERRY_FAILED_RELEASE"] = old, dir, rel.ID
		for _, h := range hooks.Rollback {
			if herr := s.run(ctx, dir, h); herr != nil {
				s.log.Error("rollback hook", "err", herr)
			}
		}
		ae.RolledBackTo = old
	} else {
		_ = os.Remove(s.currentLink())
		_ = s.runner.Stop(ctx)
	}
	if rerr := s.restore(ctx); rerr != nil {
		s.log.Error("load balancer ready after a rollback", "err", rerr)
	}
	s.record(actx, rel, ae)
	return ae
}

// record saves the outcome of a failed apply. An apply cut short because
// the node is stopping is not the release's failure: it is not recorded
// as failed, so the restarted node applies it again.
func (s *service) record(ctx context.Context, rel nodeproto.Release, ae *ApplyError) {
	st := s.state
	sha := ""
	if rel.Artifact != nil {
		sha = rel.Artifact.SHA256
	}
	st.Applying = ""
	if ctx.Err() == nil {
		st.Failed = &Failure{Release: rel.ID, SHA256: sha, Error: ae.Error(), Time: time.Now().UTC()}
	}
	if err := s.save(); err != nil {
		s.log.Error("saving state", "err", err)
	}
	cur := s.linkTarget()
	s.setStatus(func(ss *nodeproto.ServiceStatus) {
		ss.Release, ss.State, ss.Error, ss.Healthy = cur, nodeproto.StateFailed, ae.Error(), cur != ""
	})
}

// install makes releases/ID hold the verified artifact. It reports true
// when the release was already there (no download).
func (s *service) install(ctx context.Context, id string, art *nodeproto.Artifact) (bool, error) {
	st := s.state
	dst := s.releaseDir(id)
	if k, ok := st.Releases[id]; ok && (k.SHA256 == art.SHA256 || k.SHA256 == "" && id == s.linkTarget()) {
		if _, err := os.Stat(dst); err == nil {
			return true, nil
		}
	}
	if _, err := os.Lstat(dst); err == nil {
		if id == s.linkTarget() {
			return false, fmt.Errorf("release %s is running with other content (sha256 %s); a release ID names one artifact", id, st.Releases[id].SHA256)
		}
		if err := os.RemoveAll(dst); err != nil {
			return false, err
		}
		delete(st.Releases, id)
	}
	u, store, err := artifact.Parse(art.URL, s.opts)
	if err != nil {
		return false, err
	}
	format := art.Format
	if format == "" {
		format = "file"
		if p := strings.ToLower(u.Path); strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
			format = "tar.gz"
		}
	}
	tmp, err := os.MkdirTemp(s.releasesDir(), ".tmp-"+id+"-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	partial := filepath.Join(s.dir, "downloads", art.SHA256+".partial")
	pr, pw := io.Pipe()
	unpacked := make(chan error, 1)
	go func() {
		var err error
		if format == "tar.gz" {
			err = unpackTarGz(pr, tmp, s.limits)
		} else {
			err = writeSingle(pr, tmp, path.Base(u.Path), s.limits.MaxBytes)
		}
		// Read to the end even after a refusal, so the checksum is
		// still verified: a tampered artifact is reported as such.
		_, _ = io.Copy(io.Discard, pr)
		unpacked <- err
	}()
	ferr := artifact.Fetch(ctx, store, u, art.SHA256, partial, pw, 3)
	pw.CloseWithError(ferr)
	uerr := <-unpacked
	if ferr != nil {
		return false, ferr
	}
	if uerr != nil {
		return false, fmt.Errorf("unpacking %s: %w", artifact.Redact(u), uerr)
	}
	if err := syncfs(tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return false, err
	}
	if err := artifact.SyncDir(s.releasesDir()); err != nil {
		return false, err
	}
	st.Releases[id] = Kept{SHA256: art.SHA256, URL: artifact.Redact(u), Installed: time.Now().UTC()}
	return false, s.save()
}

// imagePuller is a runner that runs image releases.
type imagePuller interface {
	// Pull makes the image present locally and returns the reference to
	// run it by.
	Pull(ctx context.Context, img *nodeproto.Image) (string, error)
}

// imageFile, in the directory of an image release, names the image.
const imageFile = ".ferry-image"

// installImage makes releases/ID the record of an image release: the
// image is pulled (or found) and its reference written to imageFile, so
// that `current`, kept releases and rollbacks work as for artifacts.
func (s *service) installImage(ctx context.Context, id string, img *nodeproto.Image) (bool, error) {
	st := s.state
	dst := s.releaseDir(id)
	if k, ok := st.Releases[id]; ok && k.SHA256 == img.Digest {
		if _, err := os.Stat(dst); err == nil {
			return true, nil
		}
	}
	ref, err := s.runner.(imagePuller).Pull(ctx, img)
	if err != nil {
		return false, err
	}
	if err := os.RemoveAll(dst); err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp(s.releasesDir(), ".tmp-"+id+"-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	if err := artifact.WriteFileAtomic(filepath.Join(tmp, imageFile), 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, ref+"\n")
		return err
	}); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return false, err
	}
	if err := artifact.SyncDir(s.releasesDir()); err != nil {
		return false, err
	}
	st.Releases[id] = Kept{SHA256: img.Digest, URL: img.Ref + "@" + img.Digest, Installed: time.Now().UTC()}
	return false, s.save()
}

// syncfs flushes the file system holding dir: one call instead of an
// fsync per unpacked file, before the release is renamed into place.
func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// switchTo points `current` at releases/ID atomically: a new symlink
// renamed over the old one.
func (s *service) switchTo(id string) error {
	tmp := s.currentLink() + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", id), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.currentLink()); err != nil {
		return err
	}
	return artifact.SyncDir(s.dir)
}

// prune removes the oldest releases beyond keep, never the current, the
// previous or the one being applied.
func (s *service) prune() {
	st := s.state
	ids := make([]string, 0, len(st.Releases))
	for id := range st.Releases {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return st.Releases[b].Installed.Compare(st.Releases[a].Installed) })
	n := 0
	for _, id := range ids {
		if id == st.Current || id == st.Previous || id == st.Applying {
			n++
		}
	}
	for _, id := range ids {
		if id == st.Current || id == st.Previous || id == st.Applying {
			continue
		}
		if n < s.keep {
			n++
			continue
		}
		if err := os.RemoveAll(s.releaseDir(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("removing an old release", "release", id, "err", err)
			continue
		}
		delete(st.Releases, id)
		s.log.Info("removed an old release", "release", id)
	}
	if err := s.save(); err != nil {
		s.log.Error("saving state", "err", err)
	}
}

func (s *service) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.write(s.stateFile())
}

// cmd builds a command of this service: its user, its environment, in dir
// ("" for the current release).
func (s *service) cmd(dir, script string) hostcmd.Cmd {
	if dir == "" {
		dir = s.currentLink()
	}
	env := map[string]string{"FERRY_SERVICE": s.name}
	for k, v := range s.relEnv {
		env[k] = v
	}
	for k, v := range s.cfg.Env {
		env[k] = v
	}
	return hostcmd.Cmd{Script: script, Dir: dir, Env: env, As: s.as}
}

// run runs a hook-like command to its end.
func (s *service) run(ctx context.Context, dir, script string) error {
	out, err := hostcmd.Run(ctx, s.cmd(dir, script))
	if out != "" {
		s.log.Info("command output", "command", script, "output", out)
	}
	return err
}

func (s *service) setStatus(f func(*nodeproto.ServiceStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Service = s.name
	f(&s.status)
	s.status.Time = time.Now().UTC()
	s.status.Kept = s.status.Kept[:0]
	for id := range s.state.Releases {
		s.status.Kept = append(s.status.Kept, id)
	}
	slices.Sort(s.status.Kept)
}

// Status returns the service's actual state.
func (s *service) Status() nodeproto.ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.status
	ss.Kept = slices.Clone(ss.Kept)
	return ss
}
