package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// TestLargeLogServerMemory runs a step that prints a log of more than
// 100 MiB through a real agent and server (SQLite) and reads it back whole:
// every line arrives once and in order, and the server's peak resident set
// stays far below the log's size, so neither storing nor serving the log
// holds it in memory.
func TestLargeLogServerMemory(t *testing.T) {
	t.Parallel()
	const (
		lines   = 1_100_000
		lineLen = 100 // bytes, without the newline
	)
	filler := strings.Repeat("x", lineLen-len("line 0000000 "))
	config := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: flood
  commands:
  - seq -f 'line %%07.0f %s' 0 %d
`, filler, lines-1)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "flood", map[string]string{".drone.yml": config})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/flood"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug})
	startAgent(t, srv.URL, c.agentToken("flood-agent"), agentOptions{Name: "flood-agent"})
	sha := repo.Git("rev-parse", "HEAD")
	idle := srv.vmKiB(t, "VmRSS")

	b := c.manualBuild(slug, "main", sha)
	b = c.waitBuild(slug, b.Number, 3*time.Minute, nil)
	if b.Status != "success" {
		t.Fatalf("build finished %s, want success: %s", b.Status, describe(b))
	}
	p := b.Pipelines[0]
	path := fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/%d/steps/%d/logs", slug, b.Number, p.Number, p.Steps[0].Number)

	// Read the whole log as a stream and check every line of the seq.
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		t.Fatalf("GET %s: %s %s", path, res.Status, body)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var total int64
	next := 0
	for sc.Scan() {
		line := sc.Text()
		total += int64(len(line)) + 1
		if !strings.HasPrefix(line, "line ") {
			continue // the trace line
		}
		if want := fmt.Sprintf("line %07d %s", next, filler); line != want {
			t.Fatalf("log line of seq %d = %.40q…, want %.40q…", next, line, want)
		}
		next++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	if next != lines {
		t.Fatalf("the log holds %d seq lines, want %d", next, lines)
	}
	if total < 100<<20 {
		t.Fatalf("the log is %d bytes; the test needs at least 100 MiB", total)
	}

	// Tail reads only the end.
	if got := c.text(path + "?tail=1"); got != fmt.Sprintf("line %07d %s\n", lines-1, filler) {
		t.Errorf("tail = %.60q", got)
	}

	peak := srv.vmKiB(t, "VmHWM")
	t.Logf("log %.1f MiB; server RSS idle %.1f MiB, peak %.1f MiB", float64(total)/(1<<20), float64(idle)/1024, float64(peak)/1024)
	if limit := idle + 60<<10; peak > limit {
		t.Errorf("the server's peak RSS was %.1f MiB for a %.0f MiB log (idle %.1f MiB): it must not grow with the log",
			float64(peak)/1024, float64(total)/(1<<20), float64(idle)/1024)
	}
}
