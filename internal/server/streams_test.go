package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamLimits: one caller may hold 64 log or event streams open at
// once; the next is refused with 429, a Retry-After and a message saying
// why, while another user still gets one; closing a stream lets the first
// caller open another.
func TestStreamLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": oneStep})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	reader := ts.userToken("reader")
	ts.must(http.StatusOK, "PUT", "/api/repos/acme/app/perms/reader", adminToken, map[string]string{"role": "read"}, nil)
	const path = "/api/repos/acme/app/builds/1/events"

	// open opens the build's event stream as token; a 200 means the
	// server counts it (it counts before it answers).
	open := func(token string) (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := ts.client.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		closeIt := func() { cancel(); res.Body.Close() }
		t.Cleanup(closeIt)
		return res, closeIt
	}
	var first context.CancelFunc
	for i := range 64 {
		res, closeIt := open(adminToken) //nolint:bodyclose // closed by closeIt, at cleanup
		if res.StatusCode != http.StatusOK {
			t.Fatalf("stream %d answered %d, want 200", i+1, res.StatusCode)
		}
		if i == 0 {
			first = closeIt
		}
	}
	res, _ := open(adminToken) //nolint:bodyclose // closed at cleanup
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream 65 answered %d, want 429", res.StatusCode)
	}
	body, _ := io.ReadAll(res.Body)
	if res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "64 log or event streams open") {
		t.Fatalf("stream 65: Retry-After %q, %s; want both naming the limit", res.Header.Get("Retry-After"), body)
	}
	other, _ := open(reader) //nolint:bodyclose // closed at cleanup
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another user's stream answered %d, want 200", other.StatusCode)
	}
	// A closed stream no longer counts once its handler has returned,
	// which the server sees as soon as the connection ends: try until it
	// has (each try that is refused is itself not counted).
	first()
	deadline := time.Now().Add(time.Minute)
	for {
		res, closeIt := open(adminToken) //nolint:bodyclose // closed by closeIt
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after closing one stream, another answered %d", res.StatusCode)
		}
		closeIt()
		time.Sleep(10 * time.Millisecond)
	}
}
