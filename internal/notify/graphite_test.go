package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// graphiteStandIn is a STAND-IN of graphite-web's events API (graphite-web
// is not installed here), written from its documentation (docs/events.rst)
// and its views: POST /events/ takes {what, tags, when, data}, where tags
// is a list or a space-separated string (anything else is a 400), and
// answers 200; GET /events/get_data?tags=a b returns the events having any
// of the tags, as Grafana's "Graphite events" annotation query reads them.
// It requires basic auth when user is set.
type graphiteStandIn struct {
	user, password string
	mu             sync.Mutex
	events         []graphiteStored
}

type graphiteStored struct {
	What string   `json:"what"`
	Tags []string `json:"tags"`
	When int64    `json:"when"`
	Data string   `json:"data"`
}

func (g *graphiteStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != g.user || p != g.password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/events/":
		body, _ := io.ReadAll(r.Body)
		var raw map[string]json.RawMessage
		if json.Unmarshal(body, &raw) != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		var ev graphiteStored
		_ = json.Unmarshal(raw["what"], &ev.What)
		_ = json.Unmarshal(raw["data"], &ev.Data)
		_ = json.Unmarshal(raw["when"], &ev.When)
		if t, ok := raw["tags"]; ok {
			var list []string
			var s string
			switch {
			case json.Unmarshal(t, &list) == nil:
			case json.Unmarshal(t, &s) == nil:
				list = strings.Fields(s)
			default:
				http.Error(w, `{"error": "\"tags\" must be an array or space-separated string"}`, http.StatusBadRequest)
				return
			}
			// graphite-web stores the tags joined by spaces.
			ev.Tags = strings.Fields(strings.Join(list, " "))
		}
		g.mu.Lock()
		g.events = append(g.events, ev)
		g.mu.Unlock()
	case r.Method == http.MethodPost:
		http.NotFound(w, r)
	case r.URL.Path == "/events/get_data":
		want := strings.Fields(r.URL.Query().Get("tags"))
		g.mu.Lock()
		out := []graphiteStored{}
		for _, ev := range g.events {
			if len(want) == 0 || slices.ContainsFunc(want, func(t string) bool { return slices.Contains(ev.Tags, t) }) {
				out = append(out, ev)
			}
		}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// TestGraphiteEvents posts a deployment and a build event to the stand-in
// behind basic auth, then reads them back as Grafana's annotation query
// does.
func TestGraphiteEvents(t *testing.T) {
	g := &graphiteStandIn{user: "ferry", password: "p@ss"}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	url := strings.Replace(srv.URL, "http://", "http://ferry:p%40ss@", 1)
	tg := mustTarget(t, Config{Type: "graphite", URL: url, Tags: []string{"team a"}})
	for _, ev := range []Event{deployEvent(), buildEvent()} {
		if err := tg.n.Notify(context.Background(), &ev); err != nil {
			t.Fatalf("%s: %v", ev.Name(), err)
		}
	}
	resp, err := http.Get(srv.URL[:7] + "ferry:p%40ss@" + srv.URL[7:] + "/events/get_data?tags=production")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []graphiteStored
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := []graphiteStored{{
		What: "app v3 to production: rolled_back (health check failed on web-1)",
		Tags: []string{"ferry", "deployment", "rolled_back", "app", "production", "team_a"},
		When: 1796209200,
		Data: "app v3 to production: rolled_back (health check failed on web-1)\nhttps://ci.example.com/deployments/7",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events tagged production:\n got %+v\nwant %+v", got, want)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.events) != 2 || !reflect.DeepEqual(g.events[1].Tags, []string{"ferry", "build", "finished", "failure", "acme/app", "main", "team_a"}) {
		t.Errorf("stored events %+v", g.events)
	}
}

// TestGraphiteEndpoint: the events path is appended to graphite-web's base
// URL, and kept when given; a wrong password is a permanent error.
func TestGraphiteEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://g.example.com":              "https://g.example.com/events/",
		"https://g.example.com/":             "https://g.example.com/events/",
		"https://g.example.com/graphite":     "https://g.example.com/graphite/events/",
		"https://g.example.com/events":       "https://g.example.com/events/",
		"https://u:p@g.example.com/events/":  "https://u:p@g.example.com/events/",
		"https://g.example.com/x/events?a=b": "https://g.example.com/x/events/?a=b",
	} {
		tg := mustTarget(t, Config{Type: "graphite", URL: in})
		if got := tg.n.(*graphite).endpoint; got != want {
			t.Errorf("endpoint of %s = %s, want %s", in, got, want)
		}
	}
	g := &graphiteStandIn{user: "ferry", password: "right"}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	tg := mustTarget(t, Config{Type: "graphite", URL: strings.Replace(srv.URL, "http://", "http://ferry:wrong@", 1)})
	ev := deployEvent()
	if err := tg.n.Notify(context.Background(), &ev); !IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v, want a permanent 401", err)
	}
}
