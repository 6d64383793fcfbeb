package build

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// maxRelayPayload bounds one relayed batch: PostgreSQL's NOTIFY takes
// payloads under 8,000 bytes.
const maxRelayPayload = 7000

// maxRelayQueue bounds the events waiting to be relayed; beyond it, the
// oldest are dropped (the other servers' live views miss them, and the
// builds' state in the store is unaffected).
const maxRelayQueue = 100_000

// relay queues the local events for the other servers.
type relay struct {
	mu      sync.Mutex
	queue   []Event
	dropped int
	wake    chan struct{}
}

func (r *relay) add(ev Event) {
	r.mu.Lock()
	if len(r.queue) >= maxRelayQueue {
		r.queue = r.queue[1:]
		r.dropped++
	}
	r.queue = append(r.queue, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take returns the queued events and the number dropped since the last
// call.
func (r *relay) take() ([]Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs, dropped := r.queue, r.dropped
	r.queue, r.dropped = nil, 0
	return evs, dropped
}

// RunRelay sends this server's events to the other servers that share its
// database, with send (store.Signals.NotifyEvents), until ctx ends; they
// deliver them with Bus.Receive. Events published while a batch is being
// sent go out together in the next one, so a busy server sends few large
// payloads rather than one per event. Events published before RunRelay
// starts are not relayed. Call it once.
func (l *Lifecycle) RunRelay(ctx context.Context, send func(ctx context.Context, payload []byte) error) error {
	r := &relay{wake: make(chan struct{}, 1)}
	l.bus.mu.Lock()
	l.bus.relay = r.add
	l.bus.mu.Unlock()
	defer func() {
		l.bus.mu.Lock()
		l.bus.relay = nil
		l.bus.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		}
		evs, dropped := r.take()
		if dropped > 0 {
			l.log.Warn("the other servers were too slow to take this server's build events; some were dropped", "dropped", dropped)
		}
		for _, batch := range batches(evs) {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := send(sctx, batch)
			cancel()
			if err != nil && ctx.Err() == nil {
				l.log.Warn("relaying build events to the other servers", "events", len(evs), "err", err)
			}
		}
	}
}

// batches encodes evs as payloads of at most maxRelayPayload bytes, in
// order. An event too large on its own (a very long error) is sent
// without its error text.
func batches(evs []Event) [][]byte {
	var out [][]byte
	var cur []json.RawMessage
	size := 2
	flush := func() {
		if len(cur) == 0 {
			return
		}
		data, _ := json.Marshal(cur)
		out = append(out, data)
		cur, size = nil, 2
	}
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		if len(data)+2 > maxRelayPayload {
			ev.Error = ""
			if data, err = json.Marshal(ev); err != nil || len(data)+2 > maxRelayPayload {
				continue
			}
		}
		if size+len(data)+1 > maxRelayPayload {
			flush()
		}
		cur = append(cur, data)
		size += len(data) + 1
	}
	flush()
	return out
}
