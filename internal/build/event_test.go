package build

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestBusDeliversInOrderAndRelays checks that every subscriber sees the
// published events in order, that the relay gets the local ones, that an
// unsubscribed function sees nothing more, and that Receive delivers the
// other servers' events as remote, drops this server's own, and says
// Resync for a nil payload.
func TestBusDeliversInOrderAndRelays(t *testing.T) {
	b := NewBus("a")
	var got1, got2, relayed []string
	stop1 := b.Subscribe(func(ev Event) { got1 = append(got1, fmt.Sprintf("%s %d %v", ev.Kind, ev.BuildID, ev.Local())) })
	b.Subscribe(func(ev Event) { got2 = append(got2, fmt.Sprintf("%s %d %v", ev.Kind, ev.BuildID, ev.Local())) })
	b.relay = func(ev Event) { relayed = append(relayed, fmt.Sprintf("%s %d %s", ev.Kind, ev.BuildID, ev.Origin)) }

	b.publish(Event{Kind: BuildCreated, BuildID: 1})
	b.publish(Event{Kind: BuildStarted, BuildID: 1})
	remote, err := json.Marshal([]Event{{Kind: BuildFinished, BuildID: 2, Origin: "b"}, {Kind: BuildFinished, BuildID: 1, Origin: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Receive(remote); err != nil {
		t.Fatal(err)
	}
	stop1()
	b.publish(Event{Kind: BuildFinished, BuildID: 1})
	if err := b.Receive(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Receive([]byte("{")); err == nil {
		t.Error("Receive of a broken payload: no error")
	}

	want1 := "build_created 1 true|build_started 1 true|build_finished 2 false"
	want2 := want1 + "|build_finished 1 true|resync 0 false"
	if g := strings.Join(got1, "|"); g != want1 {
		t.Errorf("first subscriber saw %s, want %s", g, want1)
	}
	if g := strings.Join(got2, "|"); g != want2 {
		t.Errorf("second subscriber saw %s, want %s", g, want2)
	}
	if g, w := strings.Join(relayed, "|"), "build_created 1 a|build_started 1 a|build_finished 1 a"; g != w {
		t.Errorf("relayed %s, want %s", g, w)
	}
}

// TestBatches checks that relayed payloads stay under the NOTIFY limit,
// keep the events' order, and lose no event but an unsendable error text.
func TestBatches(t *testing.T) {
	var evs []Event
	for i := range 300 {
		evs = append(evs, Event{Kind: StepFinished, BuildID: int64(i), Step: strings.Repeat("s", i%50)})
	}
	evs = append(evs, Event{Kind: BuildFinished, BuildID: 1000, Error: strings.Repeat("x", 2*maxRelayPayload)})
	var got []Event
	out := batches(evs)
	if len(out) < 2 {
		t.Fatalf("%d batches for %d events, want several", len(out), len(evs))
	}
	for _, p := range out {
		if len(p) > maxRelayPayload {
			t.Errorf("a batch of %d bytes, over %d", len(p), maxRelayPayload)
		}
		var part []Event
		if err := json.Unmarshal(p, &part); err != nil {
			t.Fatal(err)
		}
		got = append(got, part...)
	}
	if len(got) != len(evs) {
		t.Fatalf("%d events relayed, want %d", len(got), len(evs))
	}
	for i := range got {
		if got[i].BuildID != evs[i].BuildID {
			t.Fatalf("event %d is of build %d, want %d: out of order", i, got[i].BuildID, evs[i].BuildID)
		}
	}
	if last := got[len(got)-1]; last.Error != "" || last.Kind != BuildFinished {
		t.Errorf("the oversized event arrived as %+v; want it without its error text", last)
	}
}
