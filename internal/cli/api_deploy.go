package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
	// The deploy spec registers "kind: service" with the pipeline parser,
	// so that `ferry lint` and `ferry exec` check service documents too.
	_ "github.com/ferryci/ferry/internal/deploy/spec"
)

// DefaultWatchInterval is how often `ferry status --watch` and `--wait`
// poll a deployment.
const DefaultWatchInterval = 500 * time.Millisecond

// ReleaseCreateOptions describe `ferry release create`.
type ReleaseCreateOptions struct {
	URL, SHA256, Format string
	Image, Digest       string
	Version             string
	// BuildNumber names the build of the service's repo that made it; the
	// server records that build's commit and branch.
	BuildNumber int64
}

// ReleaseCreate runs `ferry release create SERVICE`: it prints the
// release's ID (the same content gives the same release).
func (a *API) ReleaseCreate(ctx context.Context, service string, o ReleaseCreateOptions) error {
	req := &apiclient.ReleaseRequest{Version: o.Version, BuildNumber: o.BuildNumber}
	switch {
	case o.URL != "" && o.Image != "":
		return usagef("give --url and --sha256, or --image and --digest, not both")
	case o.URL != "":
		if o.SHA256 == "" {
			return usagef("--url needs --sha256 (the artifact's hex digest; `ferry artifact push` prints both)")
		}
		req.Artifact = &apiclient.Artifact{URL: o.URL, SHA256: o.SHA256, Format: o.Format}
	case o.Image != "":
		if o.Digest == "" {
			return usagef("--image needs --digest sha256:...")
		}
		req.Image = &apiclient.Image{Ref: o.Image, Digest: o.Digest}
	default:
		return usagef("give the artifact (--url and --sha256) or the image (--image and --digest)")
	}
	rel, created, err := a.Client.CreateRelease(ctx, service, req)
	if err != nil {
		return fmt.Errorf("creating a release of %s: %w", service, err)
	}
	if a.JSON {
		return a.printJSON(rel)
	}
	fmt.Fprintln(a.Stdout, rel.ID)
	if !created {
		fmt.Fprintf(a.Stderr, "release %s existed already (same content, created %s)\n", rel.ID, a.ago(rel.Created))
	}
	return nil
}

// ReleaseList runs `ferry release ls SERVICE`.
func (a *API) ReleaseList(ctx context.Context, service string) error {
	rs, err := a.Client.Releases(ctx, service)
	if err != nil {
		return fmt.Errorf("listing releases of %s: %w", service, err)
	}
	return printList(a, rs, "", []string{"ID", "VERSION", "SOURCE", "BRANCH", "CREATOR", "CREATED"}, func(r *apiclient.Release) []string {
		src := ""
		if r.Artifact != nil {
			src = r.Artifact.URL
		} else if r.Image != nil {
			src = r.Image.Ref + "@" + r.Image.Digest
		}
		return []string{r.ID, orDash(r.Version), src, orDash(r.Branch), orDash(r.Creator), a.ago(r.Created)}
	})
}

// DeployOptions are the flags shared by deploy, promote and rollback.
type DeployOptions struct {
	Reason string
	// Wait watches the deployment to its end, with a progress display,
	// and exits non-zero unless it succeeded.
	Wait bool
	// Interval between polls while waiting (default 500ms).
	Interval time.Duration
}

// Deploy runs `ferry deploy SERVICE ENV RELEASE`.
func (a *API) Deploy(ctx context.Context, service, env, release string, o DeployOptions) error {
	d, err := a.Client.Deploy(ctx, service, env, &apiclient.DeployRequest{Release: release, Reason: o.Reason})
	if err != nil {
		return fmt.Errorf("deploying %s to %s/%s: %w", release, service, env, err)
	}
	return a.started(ctx, d, o)
}

// Promote runs `ferry promote SERVICE FROM [--to ENV]`.
func (a *API) Promote(ctx context.Context, service, from, to string, o DeployOptions) error {
	d, err := a.Client.Promote(ctx, service, from, &apiclient.DeployRequest{To: to, Reason: o.Reason})
	if err != nil {
		return fmt.Errorf("promoting %s/%s: %w", service, from, err)
	}
	return a.started(ctx, d, o)
}

// Rollback runs `ferry rollback SERVICE ENV`.
func (a *API) Rollback(ctx context.Context, service, env string, o DeployOptions) error {
	d, err := a.Client.Rollback(ctx, service, env, &apiclient.DeployRequest{Reason: o.Reason})
	if err != nil {
		return fmt.Errorf("rolling back %s/%s: %w", service, env, err)
	}
	return a.started(ctx, d, o)
}

// started prints a new deployment, or watches it with Wait.
func (a *API) started(ctx context.Context, d *apiclient.Deployment, o DeployOptions) error {
	if o.Wait {
		return a.Watch(ctx, d.ID, o.Interval)
	}
	if a.JSON {
		return a.printJSON(d)
	}
	fmt.Fprintf(a.Stdout, "deployment %d: %s to %s/%s (%s)\n", d.ID, d.Release, d.Service, d.Environment, d.State)
	fmt.Fprintf(a.Stderr, "follow it with: ferry status %d --watch\n", d.ID)
	return nil
}

// DeploymentAction runs `ferry approve ID` and `ferry deployment
// pause|resume|cancel ID`.
func (a *API) DeploymentAction(ctx context.Context, id int64, action, reason string) error {
	d, err := a.Client.DeploymentAction(ctx, id, action, reason)
	if err != nil {
		return fmt.Errorf("%s deployment %d: %w", action, id, err)
	}
	if a.JSON {
		return a.printJSON(d)
	}
	fmt.Fprintf(a.Stdout, "deployment %d: %s (%s)\n", d.ID, d.State, action)
	return nil
}

// Lock runs `ferry lock SERVICE ENV --reason ...`.
func (a *API) Lock(ctx context.Context, service, env, reason string) error {
	l, err := a.Client.Lock(ctx, service, env, reason)
	if err != nil {
		return fmt.Errorf("locking %s/%s: %w", service, env, err)
	}
	if a.JSON {
		return a.printJSON(l)
	}
	fmt.Fprintf(a.Stdout, "%s/%s locked by %s\n", l.Service, l.Environment, l.Holder)
	return nil
}

// Unlock runs `ferry unlock SERVICE ENV [--force]`.
func (a *API) Unlock(ctx context.Context, service, env, reason string, force bool) error {
	l, err := a.Client.Unlock(ctx, service, env, reason, force)
	if err != nil {
		return fmt.Errorf("unlocking %s/%s: %w", service, env, err)
	}
	if a.JSON {
		return a.printJSON(l)
	}
	fmt.Fprintf(a.Stdout, "%s/%s unlocked (was held by %s)\n", l.Service, l.Environment, l.Holder)
	return nil
}

// Status runs `ferry status [SERVICE]`: the environment matrix of one
// service or of all.
func (a *API) Status(ctx context.Context, service string) error {
	var svcs []*apiclient.Service
	if service != "" {
		s, err := a.Client.Service(ctx, service)
		if err != nil {
			return fmt.Errorf("getting service %s: %w", service, err)
		}
		svcs = append(svcs, s)
	} else {
		var err error
		if svcs, err = a.Client.Services(ctx); err != nil {
			return fmt.Errorf("listing services: %w", err)
		}
	}
	if a.JSON {
		return a.printJSON(svcs)
	}
	w := a.table()
	row(w, "SERVICE", "ENVIRONMENT", "STRATEGY", "RUNNING", "DEPLOYING", "LOCK")
	for _, s := range svcs {
		for _, e := range s.Environments {
			dep, lock := "-", "-"
			if d := e.Active; d != nil {
				dep = fmt.Sprintf("#%d %s %s %d/%d", d.ID, d.Release, d.State, d.Batch, d.Batches)
			}
			if l := e.Lock; l != nil {
				lock = l.Holder
				if l.Reason != "" {
					lock += ": " + l.Reason
				}
			}
			row(w, s.Name, e.Name, e.Strategy, orDash(e.Current), dep, lock)
		}
	}
	return w.Flush()
}

// Watch runs `ferry status ID --watch`: it prints the deployment's
// progress each time it changes, then its nodes, and returns nil when it
// succeeded and an *ExitError with ExitFailed when it ended otherwise.
func (a *API) Watch(ctx context.Context, id int64, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last, failures := "", 0
	for {
		d, err := a.Client.Deployment(ctx, id)
		switch {
		case err == nil:
			failures = 0
			if line := a.progress(d); line != last && !a.JSON {
				fmt.Fprintln(a.Stderr, line)
				last = line
			}
			if d.Done() {
				return a.watched(d)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case !temporary(err):
			return fmt.Errorf("getting deployment %d: %w", id, err)
		default:
			failures++
			if failures >= waitMaxFailures {
				return fmt.Errorf("getting deployment %d: giving up after %d failures: %w", id, failures, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// progress is one line of the watch display: a bar of the nodes done,
// the state and what the deployment waits for.
func (a *API) progress(d *apiclient.Deployment) string {
	done := 0
	for _, n := range d.Nodes {
		if n.State == "succeeded" {
			done++
		}
	}
	const width = 20
	bar := ""
	if len(d.Nodes) > 0 {
		fill := done * width / len(d.Nodes)
		bar = "[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "] " +
			strconv.Itoa(done) + "/" + strconv.Itoa(len(d.Nodes)) + " nodes  "
	}
	s := fmt.Sprintf("%s#%d %s → %s/%s: %s", bar, d.ID, d.Release, d.Service, d.Environment, d.State)
	if d.Batches > 0 && !d.Done() {
		s += fmt.Sprintf(" (batch %d/%d)", d.Batch, d.Batches)
	}
	if d.Reason != "" {
		s += " — " + d.Reason
	}
	return s
}

// watched prints a finished deployment and turns its state into the
// exit code.
func (a *API) watched(d *apiclient.Deployment) error {
	if a.JSON {
		if err := a.printJSON(d); err != nil {
			return err
		}
	} else {
		w := a.table()
		row(w, "BATCH", "NODE", "STATE", "PREVIOUS", "TOOK", "ERROR")
		for _, n := range d.Nodes {
			row(w, strconv.Itoa(n.Batch), n.Node, n.State, orDash(n.Previous), a.took(n.Started, n.Finished), orDash(n.Error))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.Stdout, "deployment %d %s\n", d.ID, d.State)
	}
	if d.State != "succeeded" {
		return &ExitError{Code: ExitFailed}
	}
	return nil
}

// NodeList runs `ferry node ls`.
func (a *API) NodeList(ctx context.Context) error {
	ns, err := a.Client.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	return printList(a, ns, "", []string{"NAME", "LABELS", "SERVICES", "VERSION", "LAST SEEN"}, func(n *apiclient.Node) []string {
		var svcs []string
		for _, s := range n.Services {
			txt := s.Service + "=" + orDash(s.Release) + " " + s.State
			if s.Serving != nil {
				txt += map[bool]string{true: " serving", false: " drained"}[*s.Serving]
			}
			if want := n.Desired[s.Service]; want != "" && want != s.Release {
				txt += " (desired " + want + ")"
			}
			svcs = append(svcs, txt)
		}
		return []string{n.Name, orDash(pairs(n.Labels, ",")), orDash(strings.Join(svcs, "; ")), orDash(n.Version), a.ago(n.LastSeen)}
	})
}

// NodeTokenCreate runs `ferry node-token create NAME`.
func (a *API) NodeTokenCreate(ctx context.Context, name string, expiresIn time.Duration) error {
	if expiresIn < 0 {
		return usagef("--expires-in %s must not be negative", expiresIn)
	}
	t, err := a.Client.CreateNodeToken(ctx, &apiclient.TokenRequest{Name: name, ExpiresIn: apiclient.Duration(expiresIn)})
	if err != nil {
		return fmt.Errorf("creating node token %s: %w", name, err)
	}
	return a.printNewToken(t, "node token "+t.Name+" (put it in the node's server.token_file)")
}
