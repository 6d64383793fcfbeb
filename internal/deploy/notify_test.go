package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/store"
)

// listener is a local HTTP endpoint that keeps what is posted to it.
type listener struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]string
}

func newListener(t *testing.T) *listener {
	l := &listener{bodies: map[string][]string{}}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		l.bodies[r.URL.Path] = append(l.bodies[r.URL.Path], r.Header.Get("Content-Type")+" "+string(b))
		l.mu.Unlock()
		if r.URL.Path == "/broken" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listener) got(path string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bodies[path]
}

// Each notifier posts its format to a local listener; "on" filters the
// states, and "started" is sent only when asked for.
func TestNotifiers(t *testing.T) {
	l := newListener(t)
	o := New(Config{})
	env := &spec.Environment{Notify: []spec.Notify{
		{Type: "webhook", URL: l.URL + "/hook"},
		{Type: "slack", URL: l.URL + "/slack", On: []string{"started", "rolled_back"}},
		{Type: "graphite", URL: l.URL + "/events/"},
		{Type: "webhook", URL: l.URL + "/broken"},
	}}
	d := &store.Deployment{ID: 7, Service: "app", Environment: "prod", ReleaseID: "app-9f86d081884c", Creator: "alice"}
	o.notify(env, d, "started")
	d.Reason = "batch 1 of 3 failed: node web-1: health check"
	o.notify(env, d, "rolled_back")
	o.sending.Wait()

	hook := l.got("/hook")
	if len(hook) != 1 {
		t.Fatalf("webhook got %d posts, want only the final state: %q", len(hook), hook)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(hook[0], "application/json ")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["deployment"] != float64(7) || ev["state"] != "rolled_back" || ev["release"] != "app-9f86d081884c" || !strings.Contains(ev["reason"].(string), "health check") {
		t.Fatalf("webhook event %v", ev)
	}
	// Notifications go out concurrently: their order is not kept.
	if s := l.got("/slack"); len(s) != 2 || !strings.Contains(strings.Join(s, "\n"), `"text":"Deployment #7 of app-9f86d081884c to app/prod: *started*"`) ||
		!strings.Contains(strings.Join(s, "\n"), "*rolled_back* — batch 1 of 3 failed") {
		t.Fatalf("slack got %q", s)
	}
	g := l.got("/events/")
	if len(g) != 1 {
		t.Fatalf("graphite got %q", g)
	}
	var gev struct {
		What string   `json:"what"`
		Tags []string `json:"tags"`
		When int64    `json:"when"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(g[0], "application/json ")), &gev); err != nil {
		t.Fatal(err)
	}
	if gev.What != "deploy app-9f86d081884c app/prod rolled_back" || strings.Join(gev.Tags, ",") != "deploy,app,prod,rolled_back" || time.Since(time.Unix(gev.When, 0)) > time.Hour {
		t.Fatalf("graphite event %+v", gev)
	}
	if len(l.got("/broken")) != 1 {
		t.Fatal("the failing endpoint was not tried")
	}
	if err := (slack{}).Send(context.Background(), http.DefaultClient, l.URL+"/broken", &Event{}); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("a 500 answer: %v", err)
	}
}
