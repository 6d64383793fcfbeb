package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

	"go.uber.org/goleak"
)

// ferryBin is the ferry binary the process tests run, built once.
var ferryBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ferry-node-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Other users (hooks run as nobody) must reach the temp dirs.
	_ = os.Chmod(dir, 0o755)
	ferryBin = filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-o", ferryBin, "github.com/ferryci/ferry/cmd/ferry")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ferry:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			return 1
		}
	}
	return code
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// releaseID is the ID standalone mode gives an artifact.
func releaseID(b []byte) string { return sha(b)[:16] }

// artifactServer serves artifacts and their .sha256 sidecars over HTTP,
// with Range support, and records every request. A path can be made to
// stall half-way through its body until released.
type artifactServer struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests []string // "GET /path Range"
	stall    map[string]chan struct{}
	stalled  chan string
}

func newArtifactServer(t testing.TB) *artifactServer {
	a := &artifactServer{files: map[string][]byte{}, stall: map[string]chan struct{}{}, stalled: make(chan string, 10)}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(func() {
		a.mu.Lock()
		for p, ch := range a.stall {
			close(ch)
			delete(a.stall, p)
		}
		a.mu.Unlock()
		a.Close()
	})
	return a
}

// publish serves body at path and its checksum at path.sha256.
func (a *artifactServer) publish(path string, body []byte) {
	a.publishWithSum(path, body, sha(body))
}

// publishWithSum serves body at path with a sidecar naming sum, which a
// tampered artifact does not match.
func (a *artifactServer) publishWithSum(path string, body []byte, sum string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[path] = body
	a.files[path+".sha256"] = []byte(sum + "  " + filepath.Base(path) + "\n")
}

// stallNext makes the next GET of path stop after half its body, send
// path on a.stalled, and hang until release is called.
func (a *artifactServer) stallNext(path string) (release func()) {
	ch := make(chan struct{})
	a.mu.Lock()
	a.stall[path] = ch
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			delete(a.stall, path)
			a.mu.Unlock()
			close(ch)
		})
	}
}

func (a *artifactServer) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")))
	body, ok := a.files[r.URL.Path]
	stall := a.stall[r.URL.Path]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if stall != nil && r.Header.Get("Range") == "" {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		a.stalled <- r.URL.Path
		select {
		case <-stall:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// gets counts the GETs of path (not of its sidecar).
func (a *artifactServer) gets(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.requests {
		if r == "GET "+path || strings.HasPrefix(r, "GET "+path+" ") {
			n++
		}
	}
	return n
}

func (a *artifactServer) requestsOf(path string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.requests {
		if strings.HasPrefix(r, "GET "+path) && !strings.HasPrefix(r, "GET "+path+".sha256") {
			out = append(out, r)
		}
	}
	return out
}

// nodeProc is a running `ferry node`.
type nodeProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode runs `ferry node --config cfg`; the test's end stops it.
func startNode(t testing.TB, cfg string) *nodeProc {
	t.Helper()
	p := &nodeProc{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(ferryBin, "node", "--config", cfg, "--log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("ferry node output:\n%s", p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the node to exit.
func (p *nodeProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("ferry node did not stop within 60 s of SIGTERM")
	}
}

// kill9 kills the node with SIGKILL and waits for it to be gone.
func (p *nodeProc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitFor polls cond until it holds; the deadline is generous because the
// machine may be busy, and only a broken node reaches it.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readState reads a service's state file.
func readState(t *testing.T, root, svc string) *State {
	t.Helper()
	st, err := ReadState(filepath.Join(root, svc, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitCurrent waits until the service's state names id as current and
// no apply is underway.
func waitCurrent(t *testing.T, root, svc, id string) *State {
	t.Helper()
	var st *State
	waitFor(t, "release "+id+" current", func() (bool, string) {
		st = readState(t, root, svc)
		return st.Current == id && st.Applying == "", fmt.Sprintf("%+v %+v", st, st.Failed)
	})
	return st
}

// currentTarget is the release `current` points to.
func currentTarget(t *testing.T, root, svc string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(root, svc, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// sharedDir makes a temporary directory every user may write.
func sharedDir(t testing.TB) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is private to root.
	for p := filepath.Dir(d); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	return d
}

// hookUser is the user hooks run as: nobody when the tests run as root.
func hookUser() string {
	if os.Geteuid() == 0 {
		return "nobody"
	}
	return ""
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
