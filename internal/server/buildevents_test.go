package server_test

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/rpc"
)

// TestBuildEventStream follows a build's events over Server-Sent Events,
// as the web UI's build page does: its current status, then each
// transition in order as an agent runs it, and "end" with the final
// status; a finished build's stream ends at once; it needs the read role.
func TestBuildEventStream(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": oneStep})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	const path = "/api/repos/acme/app/builds/1/events"

	if code, _ := ts.call("GET", path, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("%d %q, want 200 text/event-stream", res.StatusCode, ct)
	}
	sc := bufio.NewScanner(res.Body)
	next := func() (kind, data string) {
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && kind != "":
				return kind, data
			}
		}
		return "", ""
	}
	if kind, data := next(); kind != "status" || !strings.Contains(data, `"pending"`) {
		t.Fatalf("first event %s %s, want status pending", kind, data)
	}

	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	if err := c.Complete(context.Background(), job.ID, &rpc.CompleteRequest{LeaseToken: job.LeaseToken, Status: "success"}); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for {
		kind, data := next()
		if kind == "" {
			t.Fatalf("the stream ended without an end event; got %q", kinds)
		}
		kinds = append(kinds, kind)
		if kind == "end" {
			if !strings.Contains(data, `"success"`) {
				t.Fatalf("end %s, want success", data)
			}
			break
		}
		if !strings.Contains(data, `"build_id"`) {
			t.Fatalf("event %s without its build: %s", kind, data)
		}
	}
	started, finished := slices.Index(kinds, "pipeline_started"), slices.Index(kinds, "build_finished")
	if started < 0 || finished != len(kinds)-2 || started > finished || slices.Contains(kinds, "resync") {
		t.Fatalf("events %q: want pipeline_started … build_finished, end", kinds)
	}

	// The build has finished: a new stream ends at once.
	_, body := ts.call("GET", path, adminToken, nil)
	if got := string(body); !strings.HasPrefix(got, "event: end\ndata: {\"status\":\"success\"}") {
		t.Fatalf("stream of a finished build: %q", got)
	}
}
