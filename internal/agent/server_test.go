package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
)

// testServer is a STAND-IN for ferry's server, which is written in
// parallel in internal/server: it implements the internal/rpc agent
// endpoints over an in-memory job list, enough to drive a real agent.
// It behaves as the protocol documents: bearer token check, 204 when no
// job came within the wait, 409 for a stale lease token, log lines
// de-duplicated by sequence number, finished steps never moved back.
//
// Faults are switched on by tests: down (503 for every call), drop
// (connections are closed without an answer), and ackLoss (a log batch,
// or with completeAckLoss a Complete, is processed but answered 503, so
// the agent must re-send it).
type testServer struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	down    atomic.Bool
	drop    atomic.Bool
	ackLoss atomic.Int32
	// completeAckLoss moves ackLoss from log batches to Complete calls.
	completeAckLoss atomic.Bool
	// refused counts the calls answered 503 or dropped.
	refused atomic.Int64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	nextID  int64
	pending []*serverJob
	jobs    map[int64]*serverJob
	leases  []rpc.LeaseRequest
	// polling counts the lease requests being held open.
	polling int
	// reports counts the calls to the report endpoint.
	reports int
}

// waitIdle waits until no lease request is held open.
func (s *testServer) waitIdle() {
	s.t.Helper()
	deadline := time.After(patience)
	for {
		s.mu.Lock()
		n, ch := s.polling, s.changed
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			s.t.Fatalf("%d lease requests still open after %s", n, patience)
		}
	}
}

// serverJob is the stand-in server's record of one job.
type serverJob struct {
	job    rpc.Job
	labels map[string]string

	leased  bool
	cancel  bool
	lost    bool
	extends int
	// steps holds every accepted step update, in arrival order.
	steps []rpc.StepUpdate
	final map[string]string // step → final status
	logs  map[string][]string
	// resent counts log lines the agent sent again (at-least-once).
	resent int
	// gaps lists batches that skipped lines: a protocol violation.
	gaps []string
	// logTimes records when each line arrived.
	logTimes  map[string][]time.Time
	complete  *rpc.CompleteRequest
	completed time.Time
	// completeAttempts counts Complete calls, also refused ones.
	completeAttempts int
	// completedWith is the number of items of the report that carried the
	// accepted Complete, or -1 when it came alone.
	completedWith int
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{t: t, token: "agent-secret", changed: make(chan struct{}), jobs: map[int64]*serverJob{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+rpc.PathLease, s.lease)
	mux.HandleFunc("POST "+rpc.PathExtend, s.withJob(s.extend))
	mux.HandleFunc("POST "+rpc.PathStep, s.withJob(s.step))
	mux.HandleFunc("POST "+rpc.PathLogs, s.withJob(s.logs))
	mux.HandleFunc("POST "+rpc.PathComplete, s.withJob(s.complete))
	mux.HandleFunc("POST "+rpc.PathReport, s.withJob(s.report))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.drop.Load() {
			s.refused.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		if s.down.Load() {
			s.refused.Add(1)
			http.Error(w, "server restarting", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL.
func (s *testServer) URL() string { return s.srv.URL }

// notify wakes waiters. s.mu must be held.
func (s *testServer) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// enqueue adds a pending job requiring labels and returns its ID.
func (s *testServer) enqueue(job rpc.Job, labels map[string]string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	job.ID = s.nextID
	job.LeaseToken = "lease-" + strconv.FormatInt(job.ID, 10)
	if job.LeaseTTL == 0 {
		job.LeaseTTL = 3 * time.Second
	}
	sj := &serverJob{job: job, labels: labels, final: map[string]string{}, logs: map[string][]string{}, logTimes: map[string][]time.Time{}}
	s.jobs[job.ID] = sj
	s.pending = append(s.pending, sj)
	s.notify()
	return job.ID
}

// get returns a snapshot of job id, taken under the lock.
func (s *testServer) get(id int64) serverJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	sj := *s.jobs[id]
	sj.steps = append([]rpc.StepUpdate(nil), sj.steps...)
	sj.final = maps.Clone(sj.final)
	sj.logs = maps.Clone(sj.logs)
	for k, v := range sj.logs {
		sj.logs[k] = append([]string(nil), v...)
	}
	sj.logTimes = maps.Clone(sj.logTimes)
	sj.gaps = append([]string(nil), sj.gaps...)
	return sj
}

// set changes job id under the lock.
func (s *testServer) set(id int64, f func(*serverJob)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.jobs[id])
	s.notify()
}

// waitFor waits until cond holds for job id, or fails the test.
func (s *testServer) waitFor(id int64, what string, cond func(*serverJob) bool) {
	s.t.Helper()
	deadline := time.After(patience)
	for {
		s.mu.Lock()
		ok := cond(s.jobs[id])
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			sj := s.get(id)
			s.t.Fatalf("job %d: timed out after %s waiting for %s; steps %+v, logs %q, complete %+v", id, patience, what, sj.steps, sj.logs, sj.complete)
		}
	}
}

func (s *testServer) lease(w http.ResponseWriter, r *http.Request) {
	var req rpc.LeaseRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	wait := min(req.Wait, 5*time.Second)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	s.mu.Lock()
	s.leases = append(s.leases, req)
	s.polling++
	s.notify()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.polling--
		s.notify()
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		// A careful server does not lease to a request that is gone.
		if r.Context().Err() != nil {
			s.mu.Unlock()
			return
		}
		for i, sj := range s.pending {
			if subset(sj.labels, req.Labels) {
				s.pending = append(s.pending[:i:i], s.pending[i+1:]...)
				sj.leased = true
				s.notify()
				s.mu.Unlock()
				writeJSON(w, sj.job)
				return
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// withJob decodes the body into the handler's request type, finds the
// job, checks the lease token and calls h under the lock. h returns the
// answer body (nil for 204) or an HTTP status.
func (s *testServer) withJob(h func(sj *serverJob, body []byte) (any, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var tok struct {
			LeaseToken string           `json:"lease_token"`
			Items      []rpc.ReportItem `json:"items"`
			Complete   json.RawMessage  `json:"complete"`
		}
		_ = json.Unmarshal(raw, &tok)
		report := strings.HasSuffix(r.URL.Path, "/report")
		hasLogs := false
		for _, it := range tok.Items {
			hasLogs = hasLogs || it.Logs != nil
		}
		completes := strings.HasSuffix(r.URL.Path, "/complete") || (report && tok.Complete != nil)
		s.mu.Lock()
		sj := s.jobs[id]
		if sj == nil {
			s.mu.Unlock()
			http.Error(w, "no such job", http.StatusNotFound)
			return
		}
		if completes {
			sj.completeAttempts++ // also refused ones
		}
		if report {
			s.reports++
		}
		// As the real server, a finished job has no lease: even a
		// re-sent Complete is answered 409.
		if sj.lost || tok.LeaseToken != sj.job.LeaseToken || !sj.leased || sj.complete != nil {
			s.notify()
			s.mu.Unlock()
			http.Error(w, "lease lost", http.StatusConflict)
			return
		}
		out, code := h(sj, raw)
		s.notify()
		s.mu.Unlock()
		lossy := strings.HasSuffix(r.URL.Path, "/logs") || hasLogs
		if s.completeAckLoss.Load() {
			lossy = completes
		}
		if lossy && s.ackLoss.Load() > 0 && s.ackLoss.Add(-1) >= 0 {
			s.refused.Add(1)
			http.Error(w, "answer lost", http.StatusServiceUnavailable)
			return
		}
		switch {
		case code != 0:
			http.Error(w, http.StatusText(code), code)
		case out == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, out)
		}
	}
}

func (s *testServer) extend(sj *serverJob, _ []byte) (any, int) {
	sj.extends++
	return rpc.ExtendResponse{Expires: time.Now().Add(sj.job.LeaseTTL), Cancel: sj.cancel}, 0
}

func (s *testServer) step(sj *serverJob, body []byte) (any, int) {
	var u rpc.StepUpdate
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, http.StatusBadRequest
	}
	if _, done := sj.final[u.Step]; done {
		return nil, 0 // a finished step never moves back
	}
	sj.steps = append(sj.steps, u)
	if u.Status != "running" && u.Status != "pending" {
		sj.final[u.Step] = u.Status
	}
	return nil, 0
}

func (s *testServer) logs(sj *serverJob, body []byte) (any, int) {
	var b rpc.LogBatch
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, http.StatusBadRequest
	}
	have := int64(len(sj.logs[b.Step]))
	if b.Seq > have {
		sj.gaps = append(sj.gaps, fmt.Sprintf("step %s: batch starts at %d but the server has %d lines", b.Step, b.Seq, have))
		return nil, http.StatusBadRequest
	}
	skip := have - b.Seq
	if skip > int64(len(b.Lines)) {
		skip = int64(len(b.Lines))
	}
	sj.resent += int(skip)
	now := time.Now()
	for _, l := range b.Lines[skip:] {
		sj.logs[b.Step] = append(sj.logs[b.Step], l)
		sj.logTimes[b.Step] = append(sj.logTimes[b.Step], now)
	}
	return nil, 0
}

func (s *testServer) complete(sj *serverJob, body []byte) (any, int) {
	var c rpc.CompleteRequest
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, http.StatusBadRequest
	}
	if sj.complete == nil {
		sj.complete = &c
		sj.completed = time.Now()
		sj.completedWith = -1
	}
	return nil, 0
}

// report applies a Report as the real server does: its items in order,
// then its Complete.
func (s *testServer) report(sj *serverJob, body []byte) (any, int) {
	var rep rpc.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, http.StatusBadRequest
	}
	for _, it := range rep.Items {
		var item any = it.Logs
		h := s.logs
		if it.Step != nil {
			item, h = it.Step, s.step
		}
		b, err := json.Marshal(item)
		if err != nil {
			return nil, http.StatusInternalServerError
		}
		if _, code := h(sj, b); code != 0 {
			return nil, code
		}
	}
	if rep.Complete != nil {
		b, err := json.Marshal(rep.Complete)
		if err != nil {
			return nil, http.StatusInternalServerError
		}
		out, code := s.complete(sj, b)
		sj.completedWith = len(rep.Items)
		return out, code
	}
	return nil, 0
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
