package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testMetrics is the Prometheus counter on a registry of its own.
type testMetrics struct {
	*PrometheusMetrics
	reg *prometheus.Registry
}

func newMetrics(t *testing.T) *testMetrics {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return &testMetrics{m, reg}
}

// count reads ferry_notifications_total{type, outcome} as a scrape would.
func count(m *testMetrics, typ string, o Outcome) int {
	mfs, err := m.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_notifications_total" {
			continue
		}
		for _, c := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range c.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == typ && labels["outcome"] == string(o) {
				return int(c.GetCounter().GetValue())
			}
		}
	}
	return 0
}

func closeDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard against hanging
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRetryOn500ThenSuccess: two 500 answers are retried, the third
// attempt succeeds, and every attempt carries the same delivery id.
func TestRetryOn500ThenSuccess(t *testing.T) {
	l := newListener(t, func(n int, _ *request) (int, string) {
		if n <= 2 {
			return http.StatusInternalServerError, "try later"
		}
		return http.StatusOK, ""
	})
	m := newMetrics(t)
	d := NewDispatcher([]*Target{mustTarget(t, Config{Type: "webhook", URL: l.URL, Timeout: MaxTimeout})},
		Options{Backoff: time.Millisecond, Metrics: m})
	d.Send(buildEvent())
	closeDispatcher(t, d)
	rs := l.requests()
	if len(rs) != 3 {
		t.Fatalf("%d attempts, want 3", len(rs))
	}
	for _, r := range rs[1:] {
		if r.Header.Get(HeaderDelivery) != rs[0].Header.Get(HeaderDelivery) {
			t.Errorf("delivery ids differ between attempts: %q, %q", rs[0].Header.Get(HeaderDelivery), r.Header.Get(HeaderDelivery))
		}
	}
	if s, r, f := count(m, "webhook", OutcomeSent), count(m, "webhook", OutcomeRetried), count(m, "webhook", OutcomeFailed); s != 1 || r != 2 || f != 0 {
		t.Errorf("sent %d retried %d failed %d, want 1 2 0", s, r, f)
	}
}

// TestNoRetryOn400: a 4xx answer fails the delivery at once; a 5xx that
// never ends fails it after MaxAttempts.
func TestNoRetryOn400(t *testing.T) {
	bad := newListener(t, func(int, *request) (int, string) { return http.StatusBadRequest, "invalid_payload" })
	down := newListener(t, func(int, *request) (int, string) { return http.StatusBadGateway, "" })
	m := newMetrics(t)
	d := NewDispatcher([]*Target{
		mustTarget(t, Config{Type: "slack", URL: bad.URL, Timeout: MaxTimeout}),
		mustTarget(t, Config{Type: "webhook", URL: down.URL, Timeout: MaxTimeout}),
	}, Options{Backoff: time.Millisecond, MaxAttempts: 3, Metrics: m})
	d.Send(buildEvent())
	closeDispatcher(t, d)
	if n := len(bad.requests()); n != 1 {
		t.Errorf("the 400 endpoint got %d attempts, want 1", n)
	}
	if n := len(down.requests()); n != 3 {
		t.Errorf("the 502 endpoint got %d attempts, want 3 (MaxAttempts)", n)
	}
	if f, r := count(m, "slack", OutcomeFailed), count(m, "slack", OutcomeRetried); f != 1 || r != 0 {
		t.Errorf("slack: failed %d retried %d, want 1 0", f, r)
	}
	if f, r := count(m, "webhook", OutcomeFailed), count(m, "webhook", OutcomeRetried); f != 1 || r != 2 {
		t.Errorf("webhook: failed %d retried %d, want 1 2", f, r)
	}
}

// TestSendNeverBlocksWhenListenerHangs: with the endpoint hanging on the
// first request, 1000 more events return from Send at once; the queue
// keeps the newest QueueSize deliveries and drops the oldest, counting
// them. Close's deadline then ends the hung attempt and drops the rest.
func TestSendNeverBlocksWhenListenerHangs(t *testing.T) {
	release := make(chan struct{})
	l := newListener(t, func(int, *request) (int, string) {
		<-release
		return http.StatusOK, ""
	})
	defer close(release) // before l.Close (cleanup), so the handler returns
	m := newMetrics(t)
	const size = 10
	d := NewDispatcher([]*Target{mustTarget(t, Config{Type: "webhook", URL: l.URL, Timeout: MaxTimeout})},
		Options{QueueSize: size, Metrics: m})
	first := buildEvent()
	first.Build.Number = 0
	d.Send(first)
	l.waitRequests(t, 1) // the worker is stuck in the first attempt
	for i := 1; i <= 1000; i++ {
		ev := buildEvent()
		ev.Build.Number = int64(i)
		d.Send(ev)
	}
	if got := d.Dropped(); got != 1000-size {
		t.Errorf("dropped %d, want %d", got, 1000-size)
	}
	d.mu.Lock()
	var kept []int64
	for _, dl := range d.queue {
		kept = append(kept, dl.ev.Build.Number)
	}
	d.mu.Unlock()
	if fmt.Sprint(kept) != "[991 992 993 994 995 996 997 998 999 1000]" {
		t.Errorf("queue holds builds %v, want the newest ten", kept)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a deadline that has passed
	err := d.Close(ctx)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want an error saying what was not sent", err)
	}
	if got := count(m, "webhook", OutcomeDropped); got != 1000-size+size+1 {
		t.Errorf("dropped counter %d, want %d (full queue, then the queue and the hung one at Close)", got, 1000-size+size+1)
	}
	if n := len(l.requests()); n != 1 {
		t.Errorf("the listener got %d requests, want 1", n)
	}
}

// TestCloseDrains: Close returns after every queued event was delivered,
// in order, and Send after Close drops.
func TestCloseDrains(t *testing.T) {
	l := newListener(t, nil)
	m := newMetrics(t)
	d := NewDispatcher([]*Target{mustTarget(t, Config{Type: "webhook", URL: l.URL, Timeout: MaxTimeout})}, Options{Metrics: m})
	const n = 50
	for i := 1; i <= n; i++ {
		ev := buildEvent()
		ev.Build.Number = int64(i)
		d.Send(ev)
	}
	closeDispatcher(t, d)
	rs := l.requests()
	if len(rs) != n {
		t.Fatalf("%d delivered, want %d", len(rs), n)
	}
	for i, r := range rs {
		var ev Event
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Build.Number != int64(i+1) {
			t.Fatalf("delivery %d is build %d: out of order", i, ev.Build.Number)
		}
	}
	d.Send(buildEvent())
	if got, sent := count(m, "webhook", OutcomeDropped), count(m, "webhook", OutcomeSent); got != 1 || sent != n {
		t.Errorf("after Close: dropped %d sent %d, want 1 %d", got, sent, n)
	}
}

// TestRetryKeepsOrder: while a delivery to one endpoint waits for its
// retry, the later events to that endpoint wait behind it, and another
// endpoint's go on.
func TestRetryKeepsOrder(t *testing.T) {
	flaky := newListener(t, func(n int, _ *request) (int, string) {
		if n == 1 {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, ""
	})
	steady := newListener(t, nil)
	d := NewDispatcher([]*Target{
		mustTarget(t, Config{Type: "webhook", URL: flaky.URL, Timeout: MaxTimeout}),
		mustTarget(t, Config{Type: "webhook", URL: steady.URL, Timeout: MaxTimeout}),
	}, Options{Backoff: 50 * time.Millisecond})
	for i := 1; i <= 3; i++ {
		ev := buildEvent()
		ev.Build.Number = int64(i)
		d.Send(ev)
	}
	closeDispatcher(t, d)
	numbers := func(l *listener) string {
		var out []int64
		for _, r := range l.requests() {
			var ev Event
			if err := json.Unmarshal(r.Body, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev.Build.Number)
		}
		return fmt.Sprint(out)
	}
	if got := numbers(flaky); got != "[1 1 2 3]" {
		t.Errorf("the flaky endpoint got builds %s, want [1 1 2 3]", got)
	}
	if got := numbers(steady); got != "[1 2 3]" {
		t.Errorf("the steady endpoint got builds %s, want [1 2 3]", got)
	}
}

// TestDispatcherFilters: each target gets the events its filter wants,
// extra targets given to Send included.
func TestDispatcherFilters(t *testing.T) {
	builds := newListener(t, nil)
	failures := newListener(t, nil)
	deploys := newListener(t, nil)
	d := NewDispatcher([]*Target{
		mustTarget(t, Config{Type: "webhook", URL: builds.URL, On: []string{"build.*"}, Timeout: MaxTimeout}),
		mustTarget(t, Config{Type: "webhook", URL: failures.URL, On: []string{"build.failure", "deployment.failed"}, Timeout: MaxTimeout}),
	}, Options{})
	env := mustTarget(t, Config{Type: "webhook", URL: deploys.URL, On: []string{"failed", "rolled_back"}, Timeout: MaxTimeout})
	started := buildEvent()
	started.Action, started.Status = ActionStarted, "running"
	ok := buildEvent()
	ok.Status = "success"
	failed := deployEvent()
	failed.Action, failed.Status = DeploymentFailed, DeploymentFailed
	for _, ev := range []Event{started, ok, buildEvent(), failed, deployEvent()} {
		d.Send(ev, env)
	}
	closeDispatcher(t, d)
	names := func(l *listener) string {
		var out []string
		for _, r := range l.requests() {
			out = append(out, r.Header.Get(HeaderEvent)+"/"+statusOf(t, r.Body))
		}
		return fmt.Sprint(out)
	}
	for l, want := range map[*listener]string{
		builds:   "[build.started/running build.finished/success build.finished/failure]",
		failures: "[build.finished/failure deployment.failed/failed]",
		deploys:  "[deployment.failed/failed deployment.rolled_back/rolled_back]",
	} {
		if got := names(l); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func statusOf(t *testing.T, body []byte) string {
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Status
}
