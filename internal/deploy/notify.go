package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
)

// notify sends the deployment event of d moving to state ("started" or a
// final state) through the dispatcher: to the server's --notify endpoints
// and to the environment's notify: list, each filtered by its on: (by
// default every final state). It never blocks; failures are retried and
// logged by the dispatcher (internal/notify).
//
// The environment's endpoints come from a repository's .ferry.yml, so they
// are untrusted: they reach public addresses only unless the server allows
// the network (--notify-allow-net). A delivery to one of them that fails
// for good is recorded in the deployment's audit log (action
// notify-failed), where its author can see why.
func (o *Orchestrator) notify(env *spec.Environment, d *store.Deployment, state string) {
	targets := make([]*notify.Target, 0, len(env.Notify))
	dc := *d // the failure is told later, from the dispatcher's worker
	secrets, secretsErr := o.notifySecrets(env, d)
	for i, nt := range env.Notify {
		failed := func(_ *notify.Event, err error) { o.notifyFailed(&dc, i, nt, err) }
		use := nt
		if len(nt.FromSecret) > 0 {
			var err error
			if use, err = nt.Resolve(secrets); err != nil {
				if secretsErr != nil {
					err = secretsErr
				}
				go failed(nil, err) // audited, as a failed delivery is
				continue
			}
		}
		t, err := notify.NewUntrustedTarget(use, failed)
		if err != nil {
			o.log.Error("invalid notification endpoint", "environment", env.Name, "index", i, "err", err)
			continue
		}
		targets = append(targets, t)
	}
	o.cfg.Notifications.Send(notify.Event{
		Kind: notify.KindDeployment, Action: state, Status: state, Time: o.cfg.Now().UTC(),
		Deployment: &notify.Deployment{ID: d.ID, Service: d.Service, Environment: d.Environment, Release: d.ReleaseID,
			Batch: d.Batch, Batches: d.Batches, Actor: d.Creator, Reason: d.Reason},
	}, targets...)
}

// notifySecrets returns the secrets that env's notify: values name, from
// the repository that declares d's service.
func (o *Orchestrator) notifySecrets(env *spec.Environment, d *store.Deployment) (map[string]string, error) {
	var names []string
	for _, nt := range env.Notify {
		for _, n := range nt.SecretNames() {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	if o.cfg.Secrets == nil || o.st == nil {
		return nil, errors.New("from_secret: this server gives deployments no secrets")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := o.st.Services.Get(ctx, d.Service)
	if err != nil {
		return nil, fmt.Errorf("from_secret: loading service %s: %w", d.Service, err)
	}
	secrets, err := o.cfg.Secrets(ctx, svc.RepoID, names)
	if err != nil {
		return nil, fmt.Errorf("from_secret: %w", err)
	}
	return secrets, nil
}

// notifyFailed records a failed delivery to the environment's i-th
// endpoint in d's audit log. The endpoint is named by its type and host
// only: a Slack webhook's path is its secret.
func (o *Orchestrator) notifyFailed(d *store.Deployment, i int, nt notify.Config, err error) {
	if o.st == nil {
		return // no store to audit in (tests of the messages)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // without the URL
	}
	host := "?"
	if name := nt.FromSecret["url"]; name != "" {
		host = "the URL in secret " + name
	} else if u, perr := url.Parse(nt.URL); perr == nil {
		host = u.Host
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o.audit(ctx, d, "system", "notify-failed", fmt.Sprintf("notify[%d] (%s to %s): %v", i, nt.Type, host, err))
}
