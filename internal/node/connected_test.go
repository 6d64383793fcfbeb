package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/nodeproto"
)

// protoServer is a test implementation of the server side of
// internal/nodeproto, so that the node's side is tested alone (the real
// server side, internal/server/deploy.go, is tested with real nodes in
// internal/e2e): it holds
// one desired state for every node (a node is its token), answers
// long-polls, and keeps the reports.
type protoServer struct {
	*httptest.Server
	tokens   map[string]bool
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced when desired changes
	desired  nodeproto.DesiredState
	reg      *nodeproto.RegisterRequest
	reports  []nodeproto.Report
	byToken  map[string]nodeproto.Report // the last report of each node
	reportCh chan struct{}               // closed and replaced on each report
}

func newProtoServer(t testing.TB, tokens ...string) *protoServer {
	p := &protoServer{tokens: map[string]bool{}, changed: make(chan struct{}), reportCh: make(chan struct{}), byToken: map[string]nodeproto.Report{},
		desired: nodeproto.DesiredState{Version: "0", Services: map[string]nodeproto.Release{}}}
	for _, tok := range tokens {
		p.tokens[tok] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+nodeproto.PathRegister, func(w http.ResponseWriter, r *http.Request) {
		var req nodeproto.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.reg = &req
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(nodeproto.RegisterResponse{NodeID: 1})
	})
	mux.HandleFunc("GET "+nodeproto.PathDesired, func(w http.ResponseWriter, r *http.Request) {
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		t := time.NewTimer(wait)
		defer t.Stop()
		for {
			p.mu.Lock()
			ds, ch := p.desired, p.changed
			p.mu.Unlock()
			if ds.Version != r.URL.Query().Get("version") {
				_ = json.NewEncoder(w).Encode(ds)
				return
			}
			select {
			case <-ch:
			case <-t.C:
				w.WriteHeader(http.StatusNotModified)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST "+nodeproto.PathReport, func(w http.ResponseWriter, r *http.Request) {
		var rep nodeproto.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.reports = append(p.reports, rep)
		p.byToken[r.Header.Get("Authorization")] = rep
		close(p.reportCh)
		p.reportCh = make(chan struct{})
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !p.tokens[tok] {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *protoServer) setDesired(svc string, rel nodeproto.Release) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, _ := strconv.Atoi(p.desired.Version)
	services := map[string]nodeproto.Release{}
	for k, r := range p.desired.Services {
		services[k] = r
	}
	services[svc] = rel
	p.desired = nodeproto.DesiredState{Version: strconv.Itoa(v + 1), Services: services}
	close(p.changed)
	p.changed = make(chan struct{})
}

// status returns the last reported status of svc.
func (p *protoServer) status(svc string) (nodeproto.ServiceStatus, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reports) == 0 {
		return nodeproto.ServiceStatus{}, ""
	}
	last := p.reports[len(p.reports)-1]
	for _, s := range last.Services {
		if s.Service == svc {
			return s, last.Version
		}
	}
	return nodeproto.ServiceStatus{}, last.Version
}

// reported tells whether any report had svc in state, desiring release.
func (p *protoServer) reported(svc, state, desired string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.reports {
		for _, s := range r.Services {
			if s.Service == svc && s.State == state && s.Desired == desired {
				return true
			}
		}
	}
	return false
}

func (p *protoServer) waitRunning(t *testing.T, svc, id string) nodeproto.ServiceStatus {
	t.Helper()
	var st nodeproto.ServiceStatus
	waitFor(t, svc+" reported running "+id, func() (bool, string) {
		st, _ = p.status(svc)
		return st.Release == id && st.State == nodeproto.StateRunning, fmt.Sprintf("%+v", st)
	})
	return st
}

// A connected node registers with its labels, follows the desired state
// it long-polls, runs the hooks the release brings as its user (which
// cannot read the node's token), reports, and rolls back to a kept
// release without downloading it.
func TestConnectedNodeFollowsTheDesiredStateAndReports(t *testing.T) {
	ps := newProtoServer(t, "node-secret-token")
	art := newArtifactServer(t)
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	art.publish("/v1.tar.gz", v1)
	art.publish("/v2.tar.gz", v2)
	dir := sharedDir(t)
	root := filepath.Join(dir, "root")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("node-secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "hooks.log")
	cfg := filepath.Join(dir, "node.yml")
	user := hookUser()
	if user == "" {
		t.Skip("the token isolation needs the test to run as root (hooks run as nobody)")
	}
	writeFile(t, cfg, fmt.Sprintf(`root: %s
name: web-1
labels: {role: web, dc: par1}
user: nobody
server: {url: %q, token_file: %q, poll_wait: 2s}
services:
  app: {}
`, root, ps.URL, tokenFile))
	startNode(t, cfg)
	hooks := nodeproto.Hooks{
		Before: []string{`echo "before $FERRY_RELEASE" >> ` + log},
		After:  []string{`cat ` + tokenFile + ` >> ` + log + ` 2>/dev/null || echo "after $FERRY_RELEASE token unreadable" >> ` + log},
	}
	rel := func(id, path string, body []byte) nodeproto.Release {
		return nodeproto.Release{ID: id, Artifact: &nodeproto.Artifact{URL: art.URL + path, SHA256: sha(body)}, Hooks: hooks,
			Health: &nodeproto.HealthCheck{Type: "command", Command: "grep -q v version"}}
	}
	ps.setDesired("app", rel("r1", "/v1.tar.gz", v1))
	ps.waitRunning(t, "app", "r1")
	ps.mu.Lock()
	reg := ps.reg
	ps.mu.Unlock()
	if reg.Name != "web-1" || reg.Labels["role"] != "web" || reg.Labels["dc"] != "par1" {
		t.Fatalf("registered %+v", reg)
	}
	ps.setDesired("app", rel("r2", "/v2.tar.gz", v2))
	st := ps.waitRunning(t, "app", "r2")
	if !ps.reported("app", nodeproto.StateApplying, "r2") {
		t.Fatal("no report said r2 was being applied")
	}
	if strings.Join(st.Kept, ",") != "r1,r2" || !st.Healthy {
		t.Fatalf("reported %+v", st)
	}
	ps.setDesired("app", rel("r1", "/v1.tar.gz", v1))
	ps.waitRunning(t, "app", "r1")
	if n := art.gets("/v1.tar.gz"); n != 1 {
		t.Fatalf("v1 downloaded %d times; the rollback must use the kept release", n)
	}
	want := "before r1\nafter r1 token unreadable\nbefore r2\nafter r2 token unreadable\nbefore r1\nafter r1 token unreadable"
	if got := strings.Join(readLines(t, log), "\n"); got != want {
		t.Fatalf("hooks wrote:\n%s\nwant:\n%s", got, want)
	}

	// A release that fails its health check is reported failed, with the
	// previous release still running.
	ps.setDesired("app", nodeproto.Release{ID: "r3", Artifact: &nodeproto.Artifact{URL: art.URL + "/v2.tar.gz", SHA256: sha(v2)},
		Health: &nodeproto.HealthCheck{Type: "command", Command: "false", HealthyDeadline: nodeproto.Duration(300 * time.Millisecond)}})
	waitFor(t, "r3 reported failed", func() (bool, string) {
		st, _ = ps.status("app")
		return st.State == nodeproto.StateFailed && st.Desired == "r3", fmt.Sprintf("%+v", st)
	})
	if st.Release != "r1" || !strings.Contains(st.Error, "release r3: health check: ") || !strings.Contains(st.Error, "switched back to release r1") {
		t.Fatalf("reported %+v", st)
	}

	// The server rolls the node's desired state back to r1, which runs:
	// the node reports it running again.
	ps.setDesired("app", rel("r1", "/v1.tar.gz", v1))
	waitFor(t, "r1 reported running again", func() (bool, string) {
		st, _ = ps.status("app")
		return st.State == nodeproto.StateRunning && st.Desired == "r1" && st.Error == "", fmt.Sprintf("%+v", st)
	})
}
