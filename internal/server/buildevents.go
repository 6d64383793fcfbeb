package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/store"
)

// buildEventBuffer bounds the events held for one slow stream client;
// beyond it, events are dropped and the client is told to resync.
const buildEventBuffer = 256

// buildEventStream streams a build's events (internal/build) as
// Server-Sent Events, for live views such as the web UI's build page: one
// event per transition of the build, its pipelines and its steps, named
// by the event's kind (build_started, step_finished, …) with the event as
// JSON data, and "resync" when some may have been missed (the client
// reads the build again). It ends with an "end" event holding the build's
// status once the build has finished, at once when it had already.
func (s *Server) buildEventStream(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repoAccess(r, store.RoleRead)
	if err != nil {
		return err
	}
	b, err := s.buildByNumber(r, repo)
	if err != nil {
		return err
	}
	release, err := s.acquireStream(w, r)
	if err != nil {
		return err
	}
	defer release()
	ctx := r.Context()
	events := make(chan build.Event, buildEventBuffer)
	var missed atomic.Bool
	unsubscribe := s.Subscribe(func(ev build.Event) {
		if ev.BuildID != b.ID && ev.Kind != build.Resync {
			return
		}
		select {
		case events <- ev:
		default:
			missed.Store(true)
		}
	})
	defer unsubscribe()
	// Read the build again once subscribed: a change between the first
	// read and the subscription is then in the state sent or an event.
	cur, err := s.store.Builds.Get(ctx, b.ID)
	if err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(kind string, v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	end := func(status store.Status) { send("end", map[string]any{"status": status}) }
	if cur.Status.Done() {
		end(cur.Status)
		return nil
	}
	if !send("status", map[string]any{"status": cur.Status}) {
		return nil
	}
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case ev := <-events:
			if missed.Swap(false) && !send(string(build.Resync), map[string]any{"reason": "events were dropped"}) {
				return nil
			}
			if !send(string(ev.Kind), ev) {
				return nil
			}
			if ev.Kind == build.BuildFinished {
				end(ev.Status)
				return nil
			}
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		}
	}
}
