package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/rpc"
)

// agentServer is a minimal STAND-IN for ferry's server (the real one is
// exercised in internal/e2e): it hands out one job and records the agent's
// reports. internal/agent's tests drive a fuller one.
type agentServer struct {
	mu       sync.Mutex
	job      *rpc.Job
	leased   bool
	running  bool
	complete *rpc.CompleteRequest
}

func (s *agentServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+rpc.PathLease, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		job := s.job
		give := job != nil && !s.leased
		s.leased = s.leased || give
		s.mu.Unlock()
		if give {
			_ = json.NewEncoder(w).Encode(job)
			return
		}
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+rpc.PathExtend, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(rpc.ExtendResponse{Expires: time.Now().Add(time.Minute)})
	})
	mux.HandleFunc("POST "+rpc.PathStep, func(w http.ResponseWriter, r *http.Request) {
		var u rpc.StepUpdate
		_ = json.NewDecoder(r.Body).Decode(&u)
		s.mu.Lock()
		s.running = s.running || u.Status == "running"
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+rpc.PathLogs, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	// The agent sends several queued reports in one request.
	mux.HandleFunc("POST "+rpc.PathReport, func(w http.ResponseWriter, r *http.Request) {
		var rep rpc.Report
		_ = json.NewDecoder(r.Body).Decode(&rep)
		s.mu.Lock()
		for _, it := range rep.Items {
			if it.Step != nil && it.Step.Status == "running" {
				s.running = true
			}
		}
		if rep.Complete != nil {
			s.complete = rep.Complete
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+rpc.PathComplete, func(w http.ResponseWriter, r *http.Request) {
		var c rpc.CompleteRequest
		_ = json.NewDecoder(r.Body).Decode(&c)
		s.mu.Lock()
		s.complete = &c
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (s *agentServer) state() (running bool, complete *rpc.CompleteRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.complete
}

// buildFerry compiles the ferry binary into a temp dir.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startAgentProcess runs `ferry agent` against srv.
func startAgentProcess(t *testing.T, bin, url string) (*exec.Cmd, chan error, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, "agent", "--server", url, "--backend", "local", "--workdir", t.TempDir(), "--poll-wait", "1s", "--heartbeat", "100ms",
		"--exec-user", strconv.Itoa(os.Geteuid()))
	cmd.Env = append(os.Environ(), "FERRY_AGENT_TOKEN=secret")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		t.Logf("agent process ended: %v", <-exited)
	})
	return cmd, exited, &stderr
}

// TestAgentSignals runs the real binary: the first SIGTERM drains (the
// running job goes on), the second kills the job, which is reported as
// killed, and the agent exits 0. An idle agent exits at the first signal.
func TestAgentSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ferry binary")
	}
	bin := buildFerry(t)

	t.Run("idle", func(t *testing.T) {
		srv := httptest.NewServer((&agentServer{}).handler())
		defer srv.Close()
		cmd, exited, stderr := startAgentProcess(t, bin, srv.URL)
		time.Sleep(300 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err
			if err != nil {
				t.Fatalf("agent exited with %v\n%s", err, stderr)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("idle agent still runs 5s after SIGTERM\n%s", stderr)
		}
	})

	t.Run("drain then kill", func(t *testing.T) {
		s := &agentServer{job: &rpc.Job{
			ID: 1, LeaseToken: "l", LeaseTTL: 10 * time.Second, Pipeline: "build", Number: 1,
			ConfigFile: ".drone.yml",
			Config:     "kind: pipeline\ntype: exec\nname: build\nsteps:\n- name: wait\n  commands:\n  - sleep 60\n",
			Clone:      rpc.Clone{Disable: true},
			Trusted:    true,
		}}
		srv := httptest.NewServer(s.handler())
		defer srv.Close()
		cmd, exited, stderr := startAgentProcess(t, bin, srv.URL)
		deadline := time.Now().Add(10 * time.Second)
		for running, _ := s.state(); !running; running, _ = s.state() {
			if time.Now().After(deadline) {
				t.Fatalf("the job's step never ran\n%s", stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("agent exited (%v) at the first signal although a job runs\n%s", err, stderr)
		case <-time.After(time.Second):
		}
		if _, c := s.state(); c != nil {
			t.Fatalf("first signal ended the job: %+v", c)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatalf("agent exited with %v\n%s", err, stderr)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("agent still runs 5s after the second SIGTERM\n%s", stderr)
		}
		if _, c := s.state(); c == nil || c.Status != "killed" {
			t.Fatalf("job completed as %+v, want killed\n%s", c, stderr)
		}
	})
}
