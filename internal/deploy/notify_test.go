package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/store"
)

// loopback lets a repository's endpoints reach the tests' listeners.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

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
	return append([]string(nil), l.bodies[path]...)
}

// wait returns what was posted to path once there are at least n posts.
func (l *listener) wait(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a guard against hanging
	for {
		if got := l.got(path); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got %d posts, want %d", path, len(l.got(path)), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each environment's notify: entry gets the deployment's events in its
// type's format (internal/notify), filtered by on: ("started" only when
// asked for); a failing endpoint is retried.
func TestNotifiers(t *testing.T) {
	l := newListener(t)
	d := notify.NewDispatcher(nil, notify.Options{Backoff: time.Millisecond, AllowNets: loopback})
	o := New(Config{Notifications: d})
	env := &spec.Environment{Notify: []spec.Notify{
		{Type: "webhook", URL: l.URL + "/hook"},
		{Type: "slack", URL: l.URL + "/slack", On: []string{"started", "rolled_back"}},
		{Type: "graphite", URL: l.URL + "/events/"},
		{Type: "webhook", URL: l.URL + "/broken"},
	}}
	dep := &store.Deployment{ID: 7, Service: "app", Environment: "prod", ReleaseID: "app-9f86d081884c", Creator: "alice"}
	o.notify(env, dep, "started")
	dep.Reason = "batch 1 of 3 failed: node web-1: health check"
	o.notify(env, dep, "rolled_back")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard against hanging
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	hook := l.got("/hook")
	if len(hook) != 1 {
		t.Fatalf("webhook got %d posts, want only the final state: %q", len(hook), hook)
	}
	var ev notify.Event
	if err := json.Unmarshal([]byte(strings.TrimPrefix(hook[0], "application/json ")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Name() != "deployment.rolled_back" || ev.Deployment == nil || ev.Deployment.ID != 7 ||
		ev.Deployment.Release != "app-9f86d081884c" || ev.Deployment.Actor != "alice" || !strings.Contains(ev.Deployment.Reason, "health check") {
		t.Fatalf("webhook event %+v %+v", ev, ev.Deployment)
	}
	// One endpoint receives its events in order.
	if s := l.got("/slack"); len(s) != 2 || !strings.Contains(s[0], `"text":"app app-9f86d081884c to prod: started"`) ||
		!strings.Contains(s[1], `"text":"app app-9f86d081884c to prod: rolled_back (batch 1 of 3 failed: node web-1: health check)"`) {
		t.Fatalf("slack got %q", s)
	}
	g := l.got("/events/")
	if len(g) != 1 {
		t.Fatalf("graphite got %q", g)
	}
	var gev struct {
		What string   `json:"what"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(g[0], "application/json ")), &gev); err != nil {
		t.Fatal(err)
	}
	if gev.What != "app app-9f86d081884c to prod: rolled_back (batch 1 of 3 failed: node web-1: health check)" ||
		strings.Join(gev.Tags, ",") != "ferry,deployment,rolled_back,app,prod" {
		t.Fatalf("graphite event %+v", gev)
	}
	if n := len(l.got("/broken")); n != notify.DefaultMaxAttempts {
		t.Fatalf("the failing endpoint got %d attempts, want %d", n, notify.DefaultMaxAttempts)
	}
}

// By default a repository's endpoint may not reach the server's own
// network: a loopback webhook gets nothing, and the deployment's audit
// log says why, naming the endpoint by host only.
func TestNotifyRefusesLoopbackByDefault(t *testing.T) {
	ctx := context.Background()
	hook := newListener(t)
	st, svcs := newTestStore(t, `  - name: prod
    nodes: {role: web}
    notify: [{type: slack, url: "`+hook.URL+`/services/T0/B0/secret-token"}]
`)
	o := New(Config{Store: st}) // its own dispatcher: nothing allowed
	if err := o.SyncServices(ctx, 0, svcs); err != nil {
		t.Fatal(err)
	}
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat("a", 64)}
	if _, err := o.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	d, err := o.Deploy(ctx, Request{Service: "app", Environment: "prod", Release: r.ID, Actor: Actor{Name: "bob", Role: "write"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Step(ctx); err != nil { // fails: no node matches
		t.Fatal(err)
	}
	var refused *store.AuditEntry
	deadline := time.Now().Add(2 * time.Minute) // a guard against hanging
	for refused == nil {
		audit, err := st.Audit.List(ctx, store.AuditFilter{DeploymentID: d.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range audit {
			if e.Action == "notify-failed" {
				refused = e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notify-failed entry in %+v", audit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	host := strings.TrimPrefix(hook.URL, "http://")
	want := "notify[0] (slack to " + host + "): dial tcp " + host + ": refusing to connect to " + host + ", a loopback address"
	if refused.Actor != "system" || !strings.HasPrefix(refused.Reason, want) || strings.Contains(refused.Reason, "secret-token") {
		t.Fatalf("audit entry %+v\nwant reason starting %q, without the URL's path", refused, want)
	}
	o.closeNotifications()
	if got := hook.got("/services/T0/B0/secret-token"); len(got) != 0 {
		t.Fatalf("the loopback endpoint got %q", got)
	}
}

// An environment's notify: values may come from the repository's secrets
// ({from_secret: NAME}, as in Drone), so that a Slack webhook URL or a
// signing key is not written into .ferry.yml; a secret the server does
// not give is a failed delivery in the audit log, naming the secret.
func TestNotifyFromSecret(t *testing.T) {
	ctx := context.Background()
	hook := newListener(t)
	st, svcs := newTestStore(t, `  - name: prod
    nodes: {role: web}
    notify:
    - {type: slack, url: {from_secret: slack_url}}
    - {type: webhook, url: {from_secret: slack_url}, headers: {Authorization: {from_secret: missing}}}
`)
	d := notify.NewDispatcher(nil, notify.Options{Backoff: time.Millisecond, AllowNets: loopback})
	var asked []string
	o := New(Config{Store: st, Notifications: d, Secrets: func(_ context.Context, repoID int64, names []string) (map[string]string, error) {
		asked = names
		return map[string]string{"slack_url": hook.URL + "/services/T0/B0/secret-token"}, nil
	}})
	if err := o.SyncServices(ctx, 0, svcs); err != nil {
		t.Fatal(err)
	}
	r := &store.Release{Service: "app", ArtifactURL: "file:///a", SHA256: strings.Repeat("a", 64)}
	if _, err := o.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	dep, err := o.Deploy(ctx, Request{Service: "app", Environment: "prod", Release: r.ID, Actor: Actor{Name: "bob", Role: "write"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Step(ctx); err != nil { // fails: no node matches
		t.Fatal(err)
	}
	hook.wait(t, "/services/T0/B0/secret-token", 1)
	if got := strings.Join(asked, ","); got != "slack_url,missing" {
		t.Errorf("asked for secrets %q, want slack_url,missing", got)
	}
	var failed *store.AuditEntry
	deadline := time.Now().Add(2 * time.Minute) // a guard against hanging
	for failed == nil {
		audit, err := st.Audit.List(ctx, store.AuditFilter{DeploymentID: dep.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range audit {
			if e.Action == "notify-failed" {
				failed = e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notify-failed entry in %+v", audit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := `notify[1] (webhook to the URL in secret slack_url): headers.Authorization: from_secret: no secret "missing"`
	if !strings.HasPrefix(failed.Reason, want) || strings.Contains(failed.Reason, "secret-token") {
		t.Fatalf("audit entry %q\nwant it to start %q, without the secret's value", failed.Reason, want)
	}
}
