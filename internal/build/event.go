package build

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// Kind names a transition of a build, a pipeline or a step.
type Kind string

// The transitions, in the order one build goes through them. A pipeline
// that never runs (skipped, declined, cancelled before an agent took it)
// finishes without starting; a step that an agent reports started and
// finished at once finishes without a StepStarted. A job that is leased
// again after a lost agent starts its pipeline again.
const (
	// BuildCreated: the build was stored, with its pipelines and jobs.
	BuildCreated Kind = "build_created"
	// BuildWaiting: the build waits again, for an approval (blocked) or
	// for agents (pending), after an approval or a lost agent.
	BuildWaiting Kind = "build_waiting"
	// BuildStarted: the build's first pipeline started.
	BuildStarted Kind = "build_started"
	// PipelineQueued: the pipeline's job waits for an agent again: its
	// dependencies finished, or the agent running it was lost (its steps
	// are pending again then).
	PipelineQueued Kind = "pipeline_queued"
	// PipelineStarted: an agent leased the pipeline's job.
	PipelineStarted Kind = "pipeline_started"
	// StepStarted: the agent reported the step running.
	StepStarted Kind = "step_started"
	// StepFinished: the step reached a final status.
	StepFinished Kind = "step_finished"
	// PipelineFinished: the pipeline reached a final status.
	PipelineFinished Kind = "pipeline_finished"
	// BuildFinished: the build reached a final status.
	BuildFinished Kind = "build_finished"

	// Resync is no transition: this server started (again) to hear the
	// other servers' events, and may have missed some before. A
	// subscriber that mirrors builds (a live view) reads them again. It
	// names no build.
	Resync Kind = "resync"
)

// Event is one transition. Every event names its build; pipeline and step
// events name the pipeline (and step) too.
type Event struct {
	Kind    Kind  `json:"kind"`
	RepoID  int64 `json:"repo_id"`
	BuildID int64 `json:"build_id"`
	// Number is the build's number; set on build events.
	Number     int64  `json:"number,omitempty"`
	PipelineID int64  `json:"pipeline_id,omitempty"`
	Pipeline   string `json:"pipeline,omitempty"`
	StepID     int64  `json:"step_id,omitempty"`
	Step       string `json:"step,omitempty"`
	// Status is the status the build, pipeline or step moved to.
	Status store.Status `json:"status"`
	// Error explains an error status.
	Error string `json:"error,omitempty"`
	// Time is when the transition happened.
	Time time.Time `json:"time"`
	// Created is the build's creation time; set on build events.
	Created time.Time `json:"created,omitzero"`
	// Origin identifies the server that made the transition.
	Origin string `json:"origin"`

	local bool
}

// Local reports whether this server made the transition. Of the servers
// that share a database, exactly one sees an event as local: side effects
// that must happen once per cluster (a commit status, a notification)
// act on local events only.
func (e *Event) Local() bool { return e.local }

// Bus delivers events to subscribers. It is safe for concurrent use.
//
// Subscribers are called synchronously, one event at a time, in the order
// the events were published, and must not block or publish: a subscriber
// with slow work (a forge request, a client connection) hands the event
// to a goroutine or a queue of its own.
type Bus struct {
	origin string
	// mu serializes delivery, so that every subscriber sees one order.
	mu   sync.Mutex
	next int
	subs map[int]func(Event)
	// relay, when set, receives each local event for the other servers.
	relay func(Event)
}

// NewBus returns a bus whose local events carry origin.
func NewBus(origin string) *Bus {
	return &Bus{origin: origin, subs: map[int]func(Event){}}
}

// Origin names this bus's server in the events it publishes.
func (b *Bus) Origin() string { return b.origin }

// Subscribe calls fn for every event published from now on, local and
// remote, until unsubscribe is called. See Bus for fn's rules.
func (b *Bus) Subscribe(fn func(Event)) (unsubscribe func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

// publish delivers a local event, and hands it to the relay, in the same
// order.
func (b *Bus) publish(ev Event) {
	ev.Origin, ev.local = b.origin, true
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fn := range b.subs {
		fn(ev)
	}
	if b.relay != nil {
		b.relay(ev)
	}
}

func (b *Bus) deliver(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fn := range b.subs {
		fn(ev)
	}
}

// Receive delivers events that another server published and relayed (see
// Lifecycle.RunRelay). Events of this bus's own origin are dropped: they
// were delivered when published. A nil payload says that the relay
// (re)started listening, and delivers a Resync event.
func (b *Bus) Receive(payload []byte) error {
	if payload == nil {
		b.deliver(Event{Kind: Resync, Time: time.Now()})
		return nil
	}
	var evs []Event
	if err := json.Unmarshal(payload, &evs); err != nil {
		return err
	}
	for _, ev := range evs {
		if ev.Origin == b.origin {
			continue
		}
		ev.local = false
		b.deliver(ev)
	}
	return nil
}
