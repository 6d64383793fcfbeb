package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// fillReader yields n bytes: prefix, then 'a' up to n.
type fillReader struct {
	prefix string
	n, off int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	if rest := r.n - r.off; k > rest {
		k = rest
	}
	for i := range p[:k] {
		if o := r.off + int64(i); o < int64(len(r.prefix)) {
			p[i] = r.prefix[o]
		} else {
			p[i] = 'a'
		}
	}
	r.off += k
	return int(k), nil
}

// TestWebhookFloodMemory is finding 3 of issue 7: 40 concurrent
// form-encoded webhook posts of 25 MiB each, half of them unsigned and half
// with a wrong signature, all to a real repo's endpoint. Every one is
// refused (401, or 503 when too many are in flight, or the connection
// closed before the body was taken), no build is made, and the server's
// peak resident set (VmHWM) stays under 100 MiB.
func TestWebhookFloodMemory(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/flooded"
	// A repository the server can read: it is checked when added.
	repo := gittest.NewWithOrigin(t, t.TempDir(), "flooded", map[string]string{".drone.yml": "kind: pipeline\nname: default\nsteps:\n- name: a\n  image: busybox\n"})
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug,
		"forge": "github", "webhook_secret": "the-real-secret", "poll_interval": "0s"})

	const posts, size = 40, 25 << 20
	tr := &http.Transport{MaxConnsPerHost: 0, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 3 * time.Minute}
	type outcome struct {
		status int
		err    error
	}
	results := make([]outcome, posts)
	var wg sync.WaitGroup
	for i := range posts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := &fillReader{prefix: "payload=", n: size}
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/hook/"+slug, body)
			if err != nil {
				results[i].err = err
				return
			}
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-GitHub-Event", "push")
			if i%2 == 1 {
				req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0f", 32))
			}
			res, err := hc.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results[i].status = res.StatusCode
		}()
	}
	wg.Wait()
	statuses := map[int]int{}
	for i, r := range results {
		switch {
		case r.err != nil:
			// Refused before the body was read: unsigned (from the
			// headers), or signed while 16 bodies were in flight (503);
			// the server may close the connection while the client is
			// still sending, so the client sees a reset, not the answer.
			// The 401s below show that signed bodies were checked.
			statuses[-1]++
		case r.status == http.StatusUnauthorized, r.status == http.StatusServiceUnavailable:
			statuses[r.status]++
		default:
			t.Errorf("post %d: answered %d, want 401 or 503", i, r.status)
		}
	}
	if statuses[http.StatusUnauthorized] == 0 {
		t.Errorf("no post was answered 401: %v", statuses)
	}
	hwm := srv.vmKiB(t, "VmHWM")
	t.Logf("outcomes %v (-1: connection closed); server VmHWM %d KiB", statuses, hwm)
	if hwm > 100<<10 {
		t.Errorf("server peak RSS %d KiB, want under 100 MiB", hwm)
	}
	if bs := c.builds(slug, ""); len(bs) != 0 {
		t.Errorf("the refused webhooks made %d builds", len(bs))
	}
}

// TestSlowUploadDropped is the second half of finding 3: a client that
// sends a request body slower than --read-timeout has its connection
// closed, on the webhook endpoint and on the API alike, while a response
// that takes longer (a lease long poll) is not cut.
func TestSlowUploadDropped(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{Args: []string{"--read-header-timeout", "500ms", "--read-timeout", "1s"}})
	c := adminAPI(t, srv)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "slow", map[string]string{".drone.yml": "kind: pipeline\nname: default\nsteps:\n- name: a\n  image: busybox\n"})
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": "acme/slow",
		"forge": "github", "webhook_secret": "s", "poll_interval": "0s"})
	addr := strings.TrimPrefix(srv.URL, "http://")

	// Long responses are not cut: a lease long poll held for 3 s, three
	// times the read timeout, ends with its own answer.
	lease, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/api/agent/lease",
		strings.NewReader(`{"name": "poller", "wait": 3000000000}`))
	if err != nil {
		t.Fatal(err)
	}
	lease.Header.Set("Authorization", "Bearer "+c.agentToken("poller"))
	lease.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(lease)
	if err != nil {
		t.Fatalf("a lease long poll through --read-timeout 1s: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("a lease long poll answered %s, want 204 No Content after its wait", res.Status)
	}

	for _, tc := range []struct{ name, head string }{
		{"webhook body", "POST /hook/acme/slow HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n" +
			"X-Hub-Signature-256: sha256=" + strings.Repeat("0f", 32) + "\r\nContent-Length: 100000\r\n\r\n{"},
		{"api body", "POST /api/repos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"},
		{"headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.head); err != nil {
				t.Fatal(err)
			}
			// Keep trickling a byte now and then, as a slow client
			// does, until the server hangs up. The test's own deadline
			// only guards against a server that never does.
			closed := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, bufio.NewReader(conn))
				closed <- err
			}()
			deadline := time.After(30 * time.Second)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case err := <-closed:
					if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
						t.Fatalf("reading the answer: %v", err)
					}
					return // the server closed the connection
				case <-tick.C:
					_, _ = io.WriteString(conn, " ")
				case <-deadline:
					t.Fatalf("the server still holds a connection that has been trickling for 30s with --read-timeout 1s")
				}
			}
		})
	}
}

// TestConfigTooLarge is part of finding 6: a 50 MB .drone.yml is refused
// by size, by the server (the build fails with a message naming the size
// and the limit, not aliases) and by `ferry lint`, before it is parsed.
func TestConfigTooLarge(t *testing.T) {
	t.Parallel()
	big := "kind: pipeline\ntype: exec\nname: big\nsteps:\n- name: s\n  commands:\n  - echo " +
		strings.Repeat("x", 50<<20) + "\n"
	repo := gittest.NewWithOrigin(t, t.TempDir(), "big", map[string]string{".drone.yml": big})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/big"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	t.Logf("VmHWM before the build: %d KiB", srv.vmKiB(t, "VmHWM"))
	b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
	b = c.waitBuild(slug, b.Number, time.Minute, nil)
	if b.Status != "error" && b.Status != "failure" {
		t.Fatalf("build %s, want it refused: %s", b.Status, describe(b))
	}
	for _, want := range []string{".drone.yml", "50.0 MiB", "limit of 4.0 MiB", "--max-config-size"} {
		if !strings.Contains(b.Error, want) {
			t.Errorf("build error %q does not mention %q", b.Error, want)
		}
	}
	if hwm := srv.vmKiB(t, "VmHWM"); hwm > 100<<10 {
		t.Errorf("server peak RSS %d KiB refusing a 50 MB config, want under 100 MiB", hwm)
	}

	out, code := runFerry(t, repo.Dir, "lint")
	if code != 2 || !strings.Contains(out, "limit of 4.0 MiB") || strings.Contains(out, "alias") {
		t.Errorf("ferry lint exit %d: %s; want 2 and a message about the size", code, out)
	}
	out, code = runFerry(t, repo.Dir, "exec")
	if code != 2 || !strings.Contains(out, "limit of 4.0 MiB") {
		t.Errorf("ferry exec exit %d: %s; want 2 and a message about the size", code, out)
	}
	out, code = runFerry(t, repo.Dir, "exec", "--max-config-size", fmt.Sprint(60<<20), "--pipeline", "none")
	if strings.Contains(out, "limit of") {
		t.Errorf("ferry exec --max-config-size 60MiB still refuses by size (exit %d): %s", code, out)
	}
}

// runFerry runs the ferry binary in dir and returns its combined output
// and exit code.
func runFerry(t testing.TB, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("running ferry %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// TestHugeLogLineTruncated is part of finding 6 of issue 7: a step prints
// one 45 MB line (and its command, 3 MB on one line, is traced). Neither
// is stored whole: each is cut to the agent's line limit with the marker,
// the lines after them are kept, and cancelling the build while the step
// still runs makes it final without first moving megabytes around.
func TestHugeLogLineTruncated(t *testing.T) {
	t.Parallel()
	longArg := strings.Repeat("y", 3<<20)
	config := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: flood
  commands:
  - head -c 47185920 /dev/zero | tr '\0' x; echo
  - echo after; true %s
  - echo waiting; sleep 300
`, longArg)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "longline", map[string]string{".drone.yml": config})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/longline"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	startAgent(t, srv.URL, c.agentToken("a"), agentOptions{Name: "a"})
	b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
	var log []string
	eventually(t, time.Minute, 50*time.Millisecond, func() (bool, string) {
		log = lines(c.stepLog(slug, b.Number, 1, 1))
		return slices.Contains(log, "waiting"), fmt.Sprintf("the log has %d lines so far", len(log))
	})
	var cancelled buildJSON
	c.do("POST", fmt.Sprintf("/api/repos/%s/builds/%d/cancel", slug, b.Number), nil, http.StatusOK, &cancelled)
	b = c.waitBuild(slug, b.Number, 30*time.Second, nil)
	if b.Status != "killed" {
		t.Errorf("build %s after the cancel, want killed: %s", b.Status, describe(b))
	}

	total := 0
	truncated := 0
	for _, l := range log {
		total += len(l)
		if len(l) > 300<<10 {
			t.Errorf("a log line of %d bytes was stored: %.60q…", len(l), l)
		}
		if strings.HasSuffix(l, "line truncated, it is longer than the limit of a log line]") {
			truncated++
		}
	}
	if truncated != 2 {
		t.Errorf("%d truncated lines, want 2 (the 45 MB output and the traced 3 MB command): %d lines", truncated, len(log))
	}
	if !slices.Contains(log, "after") {
		t.Errorf("the line after the long one is missing")
	}
	if total > 2<<20 {
		t.Errorf("the stored log holds %d bytes", total)
	}
}
