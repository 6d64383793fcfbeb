package deploy

import (
	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
)

// notify sends the deployment event of d moving to state ("started" or a
// final state) through the dispatcher: to the server's --notify endpoints
// and to the environment's notify: list, each filtered by its on: (by
// default every final state). It never blocks; failures are retried and
// logged by the dispatcher (internal/notify).
func (o *Orchestrator) notify(env *spec.Environment, d *store.Deployment, state string) {
	targets := make([]*notify.Target, 0, len(env.Notify))
	for i, nt := range env.Notify {
		t, err := notify.NewTarget(notify.Config{Type: nt.Type, URL: nt.URL, On: nt.On})
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
