package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// sseStream reads events from a live log stream.
type sseStream struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func (ts *testServer) openStream(t *testing.T, path, lastEventID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := ts.client.Do(req) //nolint:bodyclose // closed by the stream's close, at cleanup
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		res.Body.Close()
		cancel()
		t.Fatalf("stream answered %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sseStream{t: t, res: res, events: make(chan sseEvent, 100), cancel: cancel}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if ev.data != "" {
					ev.data += "\n"
				}
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.res.Body.Close()
	for range s.events {
	}
}

// next returns the next event, failing the test when none comes in time
// or the stream ends.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the stream ended early")
		}
		return ev
	case <-time.After(time.Minute): // a guard against hanging, not a requirement
		s.t.Fatal("no event within a minute")
	}
	return sseEvent{}
}

// TestLogStream follows a step's log live over Server-Sent Events, resumes
// it with Last-Event-ID, and sees it end when the step does.
func TestLogStream(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	g := newGitRepo(t, map[string]string{".drone.yml": twoPipelines})
	ts.addRepo(g)
	ts.must(http.StatusCreated, "POST", "/api/repos/acme/app/builds", adminToken, nil, nil)
	c := ts.agentClient("agents")
	job := mustLease(t, c, "agent-1", dockerAgent)
	ctx := context.Background()
	send := func(seq int64, lines ...string) {
		t.Helper()
		if err := c.AppendLogs(ctx, job.ID, &rpc.LogBatch{LeaseToken: job.LeaseToken, Step: "compile", Seq: seq, Lines: lines}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: job.LeaseToken, Step: "compile", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	send(0, "alpha", "beta")

	const path = "/api/repos/acme/app/builds/1/pipelines/1/steps/1/logs/stream"
	server.SetLogPoll(ts.Server, time.Hour) // before any stream starts: only pushes reach them
	live := ts.openStream(t, path, "")
	for i, want := range []string{"alpha", "beta"} {
		if ev := live.next(); ev.data != want || ev.id != itoa(int64(i)) || ev.event != "" {
			t.Fatalf("event %d = %+v, want id %d data %q", i, ev, i, want)
		}
	}
	// Lines sent while the client listens are pushed to it: with the
	// stream's poll for lines stored elsewhere an hour away, only the push
	// can bring them.
	send(2, "gamma\rdelta")
	if ev := live.next(); ev.data != "gamma\ndelta" || ev.id != "2" {
		t.Fatalf("live event = %+v, want id 2 with both parts of the line", ev)
	}

	// A client reconnecting after line 1 gets what it missed.
	resumed := ts.openStream(t, path, "1")
	if ev := resumed.next(); ev.id != "2" {
		t.Fatalf("resumed stream starts with %+v, want id 2", ev)
	}

	if err := c.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: job.LeaseToken, Step: "compile", Status: "success"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sseStream{live, resumed} {
		ev := s.next()
		if ev.event != "end" || !strings.Contains(ev.data, `"status":"success"`) {
			t.Fatalf("after the step ended: %+v, want an end event with its status", ev)
		}
		select {
		case ev, ok := <-s.events:
			if ok {
				t.Fatalf("event after the end: %+v", ev)
			}
		case <-time.After(time.Minute): // a guard against hanging, not a requirement
			t.Fatal("the stream did not close after its end event")
		}
	}

	// A finished step's stream replays the log and ends at once.
	done := ts.openStream(t, path, "")
	var got []string
	for {
		ev := done.next()
		if ev.event == "end" {
			break
		}
		got = append(got, ev.data)
	}
	if strings.Join(got, "|") != "alpha|beta|gamma\ndelta" {
		t.Errorf("replayed %q", got)
	}
}
