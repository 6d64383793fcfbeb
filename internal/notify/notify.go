// Package notify sends ferry's notifications: what happened to a build or
// a deployment, told to the outside world as a generic JSON webhook, a
// Slack-compatible message or a Graphite event (a deploy annotation on
// dashboards).
//
// The pieces:
//
//   - Event is what happened, of kind build or deployment.
//   - Notifier delivers one event to one endpoint, once. Each type is one
//     file and one Register call (webhook.go, slack.go, graphite.go), as
//     Caddy registers its modules.
//   - Config describes one endpoint (type, url, secret, headers, an event
//     filter, a timeout), read from YAML (a deploy spec's notify: list) or
//     from the server's --notify flags; NewTarget validates it and builds
//     its Notifier.
//   - Dispatcher queues deliveries and sends them from one worker, with
//     retries, a per-attempt timeout and a bounded queue, so that the
//     caller never waits for an endpoint.
//
// docs/server.md ("Notifications") documents the payloads; the webhook's
// signature header and how to verify it are in webhook.go.
package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind says what an event is about.
type Kind string

// The kinds of events.
const (
	// KindBuild events are about a build: started, finished.
	KindBuild Kind = "build"
	// KindDeployment events are about a deployment; their action is the
	// deployment's new status.
	KindDeployment Kind = "deployment"
)

// The actions of build events.
const (
	// ActionStarted: the build's first pipeline started (also a
	// deployment's first batch: DeploymentStarted).
	ActionStarted = "started"
	// ActionFinished: the build reached a final status (Event.Status:
	// success, failure, error or killed).
	ActionFinished = "finished"
)

// The actions (and statuses) of deployment events.
const (
	DeploymentStarted    = "started"
	DeploymentSucceeded  = "succeeded"
	DeploymentFailed     = "failed"
	DeploymentRolledBack = "rolled_back"
	DeploymentCancelled  = "cancelled"
)

// Event is one thing that happened, as notifications tell it. Kind selects
// which of Build and Deployment is set. The webhook notifier posts it as
// JSON, exactly as its field tags say.
type Event struct {
	// Kind is build or deployment.
	Kind Kind `json:"kind"`
	// Action is what happened: started or finished for a build; for a
	// deployment, its new status (started, succeeded, failed,
	// rolled_back, cancelled).
	Action string `json:"action"`
	// Status is the build's or the deployment's status after the event:
	// for a build pending, running, success, failure, error or killed.
	Status string `json:"status"`
	// Time is when it happened (the dispatcher sets it to now when zero).
	Time time.Time `json:"time"`
	// Link is the event's page in ferry's UI.
	Link string `json:"link,omitempty"`
	// Build is set on build events.
	Build *Build `json:"build,omitempty"`
	// Deployment is set on deployment events.
	Deployment *Deployment `json:"deployment,omitempty"`
}

// Build describes the build of a build event.
type Build struct {
	// Repo is the repository's slug (owner/name).
	Repo string `json:"repo"`
	// Number is the build's number in its repository.
	Number int64 `json:"number"`
	// Event is what triggered it: push, pull_request, tag, cron, custom,
	// promote or rollback.
	Event  string `json:"event"`
	Branch string `json:"branch,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit"`
	// Message is the commit message's first line.
	Message string `json:"message,omitempty"`
	Author  string `json:"author,omitempty"`
	// Sender is who triggered the build.
	Sender string `json:"sender,omitempty"`
	// Error explains an error status.
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Deployment describes the deployment of a deployment event.
type Deployment struct {
	// ID is the deployment's id.
	ID          int64  `json:"id"`
	Service     string `json:"service"`
	Environment string `json:"environment"`
	// Release is the release being deployed (its id or version).
	Release string `json:"release"`
	// Previous is the release the environment ran before, when known
	// (the one a rollback returns to).
	Previous string `json:"previous,omitempty"`
	// Batch and Batches are the current batch k of n; 0 when not known.
	Batch   int `json:"batch,omitempty"`
	Batches int `json:"batches,omitempty"`
	// Actor is who started, approved, cancelled or rolled back the
	// deployment, or "auto" for an automatic trigger.
	Actor string `json:"actor,omitempty"`
	// Reason says why: a rollback's or a failure's cause, a lock's
	// reason.
	Reason string `json:"reason,omitempty"`
}

// Name returns the event's name, KIND.ACTION, e.g. build.finished or
// deployment.rolled_back: what filters match and what the webhook sends
// in its X-Ferry-Event header.
func (e *Event) Name() string { return string(e.Kind) + "." + e.Action }

// Subject returns a one-line summary of the event for people, e.g.
// "acme/app build #42 success (push to main, 1a2b3c4)" or
// "app v2 to production: rolled_back (health check failed)". The Slack and
// Graphite notifiers use it.
func (e *Event) Subject() string {
	switch {
	case e.Build != nil:
		b := e.Build
		s := fmt.Sprintf("%s build #%d", b.Repo, b.Number)
		if e.Action == ActionStarted {
			s += " started"
		} else {
			s += " " + e.Status
		}
		var ctx []string
		if b.Event != "" {
			trig := b.Event
			if b.Branch != "" {
				trig += " to " + b.Branch
			}
			ctx = append(ctx, trig)
		}
		if b.Commit != "" {
			ctx = append(ctx, shortSHA(b.Commit))
		}
		if len(ctx) > 0 {
			s += " (" + strings.Join(ctx, ", ") + ")"
		}
		return s
	case e.Deployment != nil:
		d := e.Deployment
		s := fmt.Sprintf("%s %s to %s: %s", d.Service, d.Release, d.Environment, e.Action)
		if d.Batches > 0 && e.Action == DeploymentFailed {
			s += fmt.Sprintf(" at batch %d/%d", d.Batch, d.Batches)
		}
		if d.Reason != "" {
			s += " (" + d.Reason + ")"
		}
		return s
	}
	return e.Name()
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// Notifier delivers events to one endpoint. A Notifier is built by its
// type's Factory from a validated Config, and holds no goroutines or
// connections of its own that need closing: dropping it is enough.
//
// Notify sends ev once and returns when the endpoint answered, or when
// ctx ends (the dispatcher's per-attempt timeout). It does not retry: the
// Dispatcher does, for errors that are not permanent (see Permanent). A
// Notifier may be called from several goroutines at once, and must not
// modify ev.
type Notifier interface {
	Notify(ctx context.Context, ev *Event) error
}

// Factory builds a Notifier of one type from a Config whose common fields
// (type, url, on, timeout) are already valid. It checks the type-specific
// ones, and its error names the field and says what would be valid.
type Factory func(cfg *Config) (Notifier, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a notifier type available by name, for Config.Type. It is
// meant to be called from an init function, and panics when the name is
// empty or already taken.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || f == nil {
		panic("notify: Register needs a name and a factory")
	}
	if _, dup := registry[name]; dup {
		panic("notify: type " + name + " registered twice")
	}
	registry[name] = f
}

// Types returns the registered notifier types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func factory(name string) Factory {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return registry[name]
}

// Nop is a Notifier that sends nothing, for callers that need one when no
// endpoint is configured.
var Nop Notifier = nopNotifier{}

type nopNotifier struct{}

func (nopNotifier) Notify(context.Context, *Event) error { return nil }
