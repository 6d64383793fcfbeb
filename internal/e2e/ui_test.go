package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryci/ferry/internal/gittest"
)

// The browser tests drive Debian's chromium, headless, through chromedp,
// against real `ferry server` and `ferry agent` processes.

// chromiumPath returns the browser to drive, skipping the test (failing
// it under CI=true) when there is none.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	skipOrFail(t, "no chromium on PATH: install Debian's chromium (scripts/test-deps.sh does) to run the browser tests")
	return ""
}

// browser starts a headless chromium for the test and returns a chromedp
// context of a tab in it. Everything is closed when the test ends.
func browser(t testing.TB) context.Context {
	t.Helper()
	return browserIn(t, t.TempDir())
}

// browserIn is browser with chromium's TMPDIR in tmp, where it keeps its
// singleton socket and cookie (org.chromium.Chromium.*): a browser killed
// at the test's end would leave them in the system's TMPDIR.
func browserIn(t testing.TB, tmp string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // the tests run as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("TMPDIR="+tmp),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshotDir is where screenshot saves: $FERRY_UI_SCREENSHOTS when set
// (docs/screenshots for the README's), else bin/ui-screenshots in the
// module, which git ignores: the tests leave nothing outside the clone.
func screenshotDir() string {
	if dir := os.Getenv("FERRY_UI_SCREENSHOTS"); dir != "" {
		return dir
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "bin", "ui-screenshots"))
	if err != nil {
		panic(err)
	}
	return dir
}

// screenshot saves the page as NAME.png in screenshotDir, among the test's
// artefacts.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// waitJS evaluates expr until it is true.
func waitJS(t testing.TB, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	eventually(t, timeout, 50*time.Millisecond, func() (bool, string) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return false, fmt.Sprintf("%s: %v", what, err)
		}
		return ok, what
	})
}

func evalString(t testing.TB, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

// login signs in through the login page with token, starting from path,
// and returns once the browser is back on path.
func login(t testing.TB, ctx context.Context, base, token, path string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+path),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	); err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/login?next=") {
		t.Fatalf("without a session %s went to %s, want the login page", path, loc)
	}
	screenshot(t, ctx, "login")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
	); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	waitJS(t, ctx, 30*time.Second, "back on "+path+" after signing in",
		fmt.Sprintf(`location.pathname === %q && !document.getElementById("token")`, strings.SplitN(path, "?", 2)[0]))
}

// TestUIBuildPage is the browser test of the build pages: sign in, open a
// running build and watch its log grow live, cancel it and see the state
// change without a reload; untrusted text (a commit message carrying
// script) is shown as text.
func TestUIBuildPage(t *testing.T) {
	gittest.Require(t)
	ctx := browser(t)
	pipeline := `kind: pipeline
type: exec
name: build
clone:
  disable: true
steps:
- name: loop
  commands:
  - i=0; while true; do i=$((i+1)); printf '\033[32mline %d\033[0m\n' $i; sleep 0.05; done
---
kind: pipeline
type: exec
name: deploy
depends_on: [build]
clone:
  disable: true
steps:
- name: ship
  commands: [echo shipped]
`
	const xss = `<img src=x onerror="window.__xss=1"> fix <script>window.__xss=2</script>`
	repo := gittest.NewWithOrigin(t, t.TempDir(), "web", map[string]string{".drone.yml": pipeline})
	sha := repo.Commit(xss, map[string]string{"README": "x"})
	repo.Push("main")
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/web"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s", "trusted": true})
	startAgent(t, srv.URL, c.agentToken("ui-agent"), agentOptions{Name: "ui-agent"})
	b := c.manualBuild(slug, "main", sha)

	buildPath := fmt.Sprintf("/repos/%s/builds/%d", slug, b.Number)
	login(t, ctx, srv.URL, adminToken, buildPath)

	// Mark the page: a reload would lose the mark.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__mark = "kept"`)); err != nil {
		t.Fatal(err)
	}
	// The log grows while we watch.
	waitJS(t, ctx, 60*time.Second, "the log shows line 3",
		`[...document.querySelectorAll(".log-line")].some(e => e.textContent.endsWith("line 3"))`)
	first := logLines(t, ctx)
	waitJS(t, ctx, 60*time.Second, "the log grows live",
		fmt.Sprintf(`parseInt(document.getElementById("log-count").textContent.replace(/[^0-9]/g, "")) > %d`, first+20))
	if colour := evalString(t, ctx, `(document.querySelector(".log-line span.a32")||{}).className||""`); colour != "a32" {
		t.Errorf("ANSI green is not rendered as a colour span: %q", colour)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("#build-status .text")[0].textContent)`); n != "running" {
		t.Errorf("build status shows %q, want running", n)
	}
	// The page follows the build's event stream, not a poll.
	if live := evalString(t, ctx, `String(document.getElementById("build").dataset.live)`); live != "events" {
		t.Errorf("the build page follows the build by %q, want its event stream", live)
	}
	screenshot(t, ctx, "build-running")

	// The commit message is text, not markup.
	if got := evalString(t, ctx, `document.querySelector("h1 .msg").textContent`); !strings.Contains(got, "<img src=x") {
		t.Errorf("commit message shows %q, want the literal text", got)
	}
	if got := evalString(t, ctx, `String(window.__xss)`); got != "undefined" {
		t.Fatalf("the commit message's script ran: window.__xss = %s", got)
	}

	// Cancel: the state changes on the page, which is not reloaded.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#cancel"))); err != nil {
		t.Fatalf("clicking cancel: %v", err)
	}
	waitJS(t, ctx, 60*time.Second, "the build shows it was cancelled",
		`["killed","failure","error"].includes(document.querySelector("#build-status .text").textContent)`)
	if got := evalString(t, ctx, `String(window.__mark)`); got != "kept" {
		t.Errorf("the page was reloaded to show the new state (mark = %s)", got)
	}
	if got := c.build(slug, b.Number).Status; got != "killed" {
		t.Errorf("the API says the build is %s, want killed", got)
	}
	screenshot(t, ctx, "build-cancelled")

	// The repos page lists the repo with its latest build.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.list"))); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `document.querySelector("table.list tbody").textContent`); !strings.Contains(got, slug) || !strings.Contains(got, "#"+strconv.FormatInt(b.Number, 10)) {
		t.Errorf("repos page lacks %s #%d: %q", slug, b.Number, got)
	}
	if got := evalString(t, ctx, `String(window.__xss)`); got != "undefined" {
		t.Fatalf("the commit message's script ran on the repos page: window.__xss = %s", got)
	}
	screenshot(t, ctx, "repos")
}

// logLines is the line count the log viewer shows.
func logLines(t testing.TB, ctx context.Context) int {
	t.Helper()
	s := evalString(t, ctx, `document.getElementById("log-count").textContent.replace(/[^0-9]/g, "")`)
	n, _ := strconv.Atoi(s)
	return n
}

// TestUIHugeLog opens the page of a step with a 1,000,000-line log: the
// viewer shows its first lines, keeps only the lines in view in the DOM,
// and jumps to a line in the middle through a link. The time to the first
// lines and to a far scroll are measured and logged (docs/benchmarks.md);
// the test asserts what the page does, not how fast.
func TestUIHugeLog(t *testing.T) {
	gittest.Require(t)
	ctx := browser(t)
	const lines = 1_000_000
	pipeline := fmt.Sprintf(`kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: flood
  commands:
  - seq -f 'row %%.0f of the huge log' 1 %d
`, lines)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "huge", map[string]string{".drone.yml": pipeline})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/huge"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s", "trusted": true})
	startAgent(t, srv.URL, c.agentToken("huge-agent"), agentOptions{Name: "huge-agent"})
	b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
	b = c.waitBuild(slug, b.Number, 5*time.Minute, nil)
	if b.Status != "success" {
		t.Fatalf("build ended %s: %s", b.Status, describe(b))
	}
	stepPath := fmt.Sprintf("/repos/%s/builds/%d/1/1", slug, b.Number)
	login(t, ctx, srv.URL, adminToken, "/")

	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+stepPath)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 60*time.Second, "the first lines and the line count show",
		fmt.Sprintf(`parseInt(document.getElementById("log-count").textContent.replace(/[^0-9]/g, "")) >= %d &&
		[...document.querySelectorAll(".log-line")].some(e => e.textContent.endsWith("row 1 of the huge log"))`, lines))
	opened, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.now()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000,000-line log: first lines shown %.0f ms after navigation started (wall %v)", opened, time.Since(start))
	if n := domRows(t, ctx); n > 500 {
		t.Errorf("the viewer holds %d lines in the DOM, want only those in view", n)
	}
	screenshot(t, ctx, "huge-log")

	// A far jump: to line 654,322 by its link (the log's first line is the
	// shell's trace of the command, so row N is line N+1), then scrolls.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__t0 = performance.now(); location.hash = "#L654322"; 0`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 60*time.Second, "line 654322 is shown and highlighted",
		`(function(){ const e = document.getElementById("L654322"); return !!e && e.classList.contains("hl") && e.textContent.endsWith("row 654321 of the huge log"); })()`)
	far, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.now() - window.__t0`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000,000-line log: jump to line 654,322 rendered in %.0f ms", far)
	for _, frac := range []string{"0.1", "0.9", "0.5"} {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(function(){ const v = document.getElementById("log-view"); v.scrollTop = v.scrollHeight * `+frac+`; return 0; })()`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, 60*time.Second, "lines at "+frac+" of the log are shown",
			`(function(){ const v = document.getElementById("log-view"); const i = Math.floor(v.scrollTop / 18) + 2;
			  const e = document.getElementById("L" + i); return !!e && e.textContent.endsWith("row " + (i - 1) + " of the huge log"); })()`)
		if n := domRows(t, ctx); n > 500 {
			t.Errorf("after scrolling to %s the viewer holds %d lines in the DOM", frac, n)
		}
	}
	// The API pages through the log for the viewer.
	res, err := c.hc.Do(mustRequest(t, "GET", srv.URL+fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/1/steps/1/logs?from=999990&limit=5", slug, b.Number), adminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// The trace line and the rows.
	if res.Header.Get("X-Log-Lines") != strconv.Itoa(lines+1) {
		t.Errorf("X-Log-Lines = %q, want %d", res.Header.Get("X-Log-Lines"), lines+1)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := "row 999990 of the huge log\nrow 999991 of the huge log\nrow 999992 of the huge log\nrow 999993 of the huge log\nrow 999994 of the huge log\n"
	if string(body) != want {
		t.Errorf("from=999990&limit=5 answered %q, want %q", body, want)
	}
}

func domRows(t testing.TB, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".log-line").length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustRequest(t testing.TB, method, u, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestScreenshotDirIsInsideTheCloneAndIgnored checks that, by default, the
// browser tests' screenshots go to a directory inside the clone that git
// ignores, rather than to TMPDIR, where they would stay after the tests.
func TestScreenshotDirIsInsideTheCloneAndIgnored(t *testing.T) {
	t.Setenv("FERRY_UI_SCREENSHOTS", "")
	dir := screenshotDir()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	if rel, err := filepath.Rel(root, dir); err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("screenshots go to %s, outside the clone %s", dir, root)
	}
	if out, err := exec.Command("git", "-C", root, "check-ignore", "-q", "--no-index", dir).CombinedOutput(); err != nil {
		t.Fatalf("git does not ignore %s, where the screenshots go: %v %s", dir, err, out)
	}
}

// TestBrowserTempFilesStayInTheTest checks that chromium keeps its
// temporary files in the test's directory, removed with it, and not in
// the system's TMPDIR, where each browser test left a directory.
func TestBrowserTempFilesStayInTheTest(t *testing.T) {
	tmp := t.TempDir()
	ctx := browserIn(t, tmp)
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if found, _ := filepath.Glob(filepath.Join(tmp, "org.chromium.Chromium.*")); len(found) == 0 {
		t.Errorf("chromium wrote nothing in the TMPDIR it was given (%s): it writes in the system's", tmp)
	}
}
