package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// request is one request a listener received.
type request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// listener is a real local HTTP server that records every request and
// answers with what answer returns (200 when answer is nil).
type listener struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	got    chan struct{} // one value per request, never blocks the handler
	answer func(n int, r *request) (int, string)
}

func newListener(t *testing.T, answer func(n int, r *request) (int, string)) *listener {
	t.Helper()
	l := &listener{answer: answer, got: make(chan struct{}, 10000)}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		l.mu.Lock()
		l.reqs = append(l.reqs, req)
		n := len(l.reqs)
		l.mu.Unlock()
		select {
		case l.got <- struct{}{}:
		default:
		}
		code, text := http.StatusOK, ""
		if l.answer != nil {
			code, text = l.answer(n, &req)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(l.Close)
	return l
}

// requests returns a copy of the requests so far.
func (l *listener) requests() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]request(nil), l.reqs...)
}

// waitRequests waits until the listener has received n requests.
func (l *listener) waitRequests(t *testing.T, n int) []request {
	t.Helper()
	timeout := time.After(2 * time.Minute) // a guard against hanging
	for {
		if rs := l.requests(); len(rs) >= n {
			return rs
		}
		select {
		case <-l.got:
		case <-timeout:
			t.Fatalf("the listener received %d requests, want %d", len(l.requests()), n)
		}
	}
}

// buildEvent and deployEvent are the events the payload tests send.
func buildEvent() Event {
	return Event{
		Kind: KindBuild, Action: ActionFinished, Status: "failure",
		Time: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
		Link: "https://ci.example.com/repos/acme/app/builds/42",
		Build: &Build{Repo: "acme/app", Number: 42, Event: "push", Branch: "main", Ref: "refs/heads/main",
			Commit: "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", Message: "fix <the> bug & more", Author: "alice",
			Started:  time.Date(2026, 12, 2, 9, 58, 0, 0, time.UTC),
			Finished: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)},
	}
}

func deployEvent() Event {
	return Event{
		Kind: KindDeployment, Action: DeploymentRolledBack, Status: DeploymentRolledBack,
		Time: time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC),
		Link: "https://ci.example.com/deployments/7",
		Deployment: &Deployment{ID: 7, Service: "app", Environment: "production", Release: "v3", Previous: "v2",
			Batch: 1, Batches: 4, Actor: "auto", Reason: "health check failed on web-1"},
	}
}

// mustTarget builds a target or fails the test.
func mustTarget(t *testing.T, c Config) *Target {
	t.Helper()
	tg, err := NewTarget(c)
	if err != nil {
		t.Fatalf("NewTarget(%+v): %v", c, err)
	}
	return tg
}
