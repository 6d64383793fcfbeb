package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// webClient is a browser-like HTTP client for the UI: it keeps cookies
// and does not follow redirects, so tests see where each answer points.
type webClient struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newWebClient(t testing.TB, base string) *webClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(t)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &webClient{t: t, base: base, hc: hc}
}

// do sends a request and returns the status, the Location header and the
// body.
func (w *webClient) do(method, path string, form url.Values, header map[string]string) (int, string, string) {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, w.base+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("Location"), string(data)
}

func (w *webClient) get(path string) (int, string) {
	code, _, body := w.do("GET", path, nil, nil)
	return code, body
}

// login signs in with token through the login form.
func (w *webClient) login(token string) {
	w.t.Helper()
	code, loc, body := w.do("POST", "/login", url.Values{"token": {token}, "next": {"/"}}, nil)
	if code != http.StatusSeeOther || loc != "/" {
		w.t.Fatalf("signing in answered %d to %q: %s", code, loc, body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the forms on the page at path.
func (w *webClient) csrf(path string) string {
	w.t.Helper()
	code, body := w.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		w.t.Fatalf("GET %s answered %d without a CSRF token: %.300s", path, code, body)
	}
	return m[1]
}

// TestUISecurity checks the UI's security rules against a real server:
// untrusted text is escaped, every form needs the session's CSRF token and
// this origin, a read-only user can't act on builds or see secrets, and
// secret values are never shown.
func TestUISecurity(t *testing.T) {
	gittest.Require(t)
	pipeline := `kind: pipeline
type: exec
name: default
clone:
  disable: true
steps:
- name: hello
  commands: [echo hello]
`
	const evilBranch = `x<script>alert(1)</script>`
	const evilMessage = `fix "quotes" & <b onmouseover=alert(2)>bold</b>`
	repo := gittest.NewWithOrigin(t, t.TempDir(), "sec", map[string]string{".drone.yml": pipeline})
	repo.Git("checkout", "-q", "-b", evilBranch)
	sha := repo.Commit(evilMessage, map[string]string{"f": "1"})
	repo.Push(evilBranch)

	srv := startServer(t, serverOptions{})
	admin := adminAPI(t, srv)
	const slug = "acme/sec"
	admin.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s", "trusted": true})
	admin.do("POST", "/api/repos/"+slug+"/secrets", map[string]any{"name": "deploy_key", "value": "s3cr3t-value-never-shown"}, http.StatusCreated, nil)
	startAgent(t, srv.URL, admin.agentToken("sec-agent"), agentOptions{Name: "sec-agent"})
	b := admin.manualBuild(slug, evilBranch, sha)
	b = admin.waitBuild(slug, b.Number, 2*time.Minute, nil)
	if b.Status != "success" {
		t.Fatalf("build ended %s: %s", b.Status, describe(b))
	}

	// A read-only user.
	admin.do("POST", "/api/users", map[string]any{"login": "reader"}, http.StatusCreated, nil)
	admin.do("PUT", "/api/repos/"+slug+"/perms/reader", map[string]any{"role": "read"}, http.StatusOK, nil)
	var tok struct {
		Token string `json:"token"`
	}
	admin.do("POST", "/api/users/reader/tokens", map[string]any{"name": "ui"}, http.StatusCreated, &tok)

	buildPage := fmt.Sprintf("/repos/%s/builds/%d", slug, b.Number)

	// Without a session: pages send to the login page, data is refused.
	anon := newWebClient(t, srv.URL)
	if code, loc, _ := anon.do("GET", buildPage, nil, nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
		t.Errorf("GET %s without a session answered %d to %q, want a redirect to the login page", buildPage, code, loc)
	}
	if code, _ := anon.get("/ui/api/repos/" + slug + "/builds/1"); code != http.StatusUnauthorized {
		t.Errorf("the UI's API proxy answered %d without a session, want 401", code)
	}
	if code, loc, _ := anon.do("POST", "/login", url.Values{"token": {"wrong"}}, nil); code != http.StatusUnauthorized || loc != "" {
		t.Errorf("a wrong token answered %d to %q, want 401 and the login page again", code, loc)
	}
	// The login page does not send a browser to another site.
	anon.login(adminToken)
	if code, loc, _ := anon.do("POST", "/login", url.Values{"token": {adminToken}, "next": {"//evil.example/x"}}, nil); code != http.StatusSeeOther || loc != "/" {
		t.Errorf("next=//evil.example answered %d to %q, want /", code, loc)
	}

	// Untrusted text is escaped on every page that shows it.
	admin1 := newWebClient(t, srv.URL)
	admin1.login(adminToken)
	for _, path := range []string{"/", "/repos/" + slug, buildPage} {
		code, body := admin1.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d: %.300s", path, code, body)
		}
		for _, raw := range []string{"<script>alert(1)", "<b onmouseover"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s holds the raw markup %q", path, raw)
			}
		}
		if !strings.Contains(body, "x&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the branch name as text", path)
		}
	}
	if _, body := admin1.get(buildPage); !strings.Contains(body, "&lt;b onmouseover=alert(2)&gt;") {
		t.Errorf("the build page does not show the commit message as text")
	}

	// CSRF: a form without the token, with a wrong one, or from another
	// origin is refused; with the session's token it works.
	restart := buildPage + "/restart"
	csrf := admin1.csrf(buildPage)
	before := len(admin.builds(slug, ""))
	for _, tc := range []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {"forged"}}, nil},
		{"other origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}},
	} {
		if code, _, body := admin1.do("POST", restart, tc.form, tc.header); code != http.StatusForbidden {
			t.Errorf("%s: restart answered %d, want 403: %.200s", tc.name, code, body)
		}
	}
	if n := len(admin.builds(slug, "")); n != before {
		t.Fatalf("a refused form started a build: %d builds, want %d", n, before)
	}
	if code, loc, body := admin1.do("POST", restart, url.Values{"csrf": {csrf}}, map[string]string{"Origin": srv.URL}); code != http.StatusSeeOther || !strings.Contains(loc, "/builds/") {
		t.Fatalf("restart with the CSRF token answered %d to %q: %.300s", code, loc, body)
	}
	if n := len(admin.builds(slug, "")); n != before+1 {
		t.Errorf("restart made %d builds, want %d", n, before+1)
	}

	// A read-only user sees the build but no buttons, and the API
	// refuses the actions even when posted by hand.
	reader := newWebClient(t, srv.URL)
	reader.login(tok.Token)
	code, body := reader.get(buildPage)
	if code != http.StatusOK {
		t.Fatalf("the reader can't open the build page: %d", code)
	}
	for _, id := range []string{`id="cancel"`, `id="restart"`, `id="approve"`} {
		if strings.Contains(body, id) {
			t.Errorf("the reader's build page has the button %s", id)
		}
	}
	rcsrf := reader.csrf(buildPage)
	for _, action := range []string{"restart", "cancel", "approve"} {
		if code, _, _ := reader.do("POST", buildPage+"/"+action, url.Values{"csrf": {rcsrf}}, nil); code != http.StatusForbidden {
			t.Errorf("the reader's %s answered %d, want 403", action, code)
		}
	}
	if n := len(admin.builds(slug, "")); n != before+1 {
		t.Errorf("the reader started a build: %d builds, want %d", n, before+1)
	}
	// Secrets: the reader sees none; nobody sees a value.
	settings := "/repos/" + slug + "/settings"
	if code, body := reader.get(settings); code != http.StatusOK || strings.Contains(body, "deploy_key") || !strings.Contains(body, `id="secrets-error"`) {
		t.Errorf("the reader's settings page (%d) shows secrets or no refusal: %.400s", code, body)
	}
	if code, _, _ := reader.do("POST", settings+"/secrets", url.Values{"csrf": {rcsrf}, "name": {"x"}, "value": {"y"}}, nil); code != http.StatusForbidden {
		t.Errorf("the reader's secret form answered %d, want 403", code)
	}
	if code, body := reader.get("/ui/api/repos/" + slug + "/secrets"); code != http.StatusForbidden {
		t.Errorf("the reader read the secrets through the proxy: %d %.200s", code, body)
	}
	code, body = admin1.get(settings)
	if code != http.StatusOK || !strings.Contains(body, "deploy_key") {
		t.Fatalf("the admin's settings page (%d) does not list the secret", code)
	}
	if strings.Contains(body, "s3cr3t-value-never-shown") {
		t.Fatal("the settings page shows a secret's value")
	}
	// A new secret through the form is stored, and still not shown.
	if code, _, body := admin1.do("POST", settings+"/secrets", url.Values{"csrf": {csrf}, "name": {"api_token"}, "value": {"another-hidden-value"}, "events": {"push", "tag"}}, nil); code != http.StatusSeeOther {
		t.Fatalf("adding a secret answered %d: %.300s", code, body)
	}
	if _, body := admin1.get(settings); !strings.Contains(body, "api_token") || strings.Contains(body, "another-hidden-value") {
		t.Error("the added secret is missing from the list, or its value is shown")
	}

	// Agents and queue: the admin sees the agent; the reader may not.
	if code, body := admin1.get("/agents"); code != http.StatusOK || !strings.Contains(body, "sec-agent") || !strings.Contains(body, "No job runs or waits.") {
		t.Errorf("the agents page (%d) lacks the agent or the empty queue: %.400s", code, body)
	}
	if code, _ := reader.get("/agents"); code != http.StatusForbidden {
		t.Errorf("the reader's agents page answered %d, want 403", code)
	}

	// Badges need no session and show the status only.
	code, body = anon.get("/badge/" + slug + "/status.svg?branch=" + url.QueryEscape(evilBranch))
	if code != http.StatusOK || !strings.Contains(body, ">success<") {
		t.Errorf("badge answered %d: %.300s", code, body)
	}
	if _, body := newWebClient(t, srv.URL).get("/badge/nobody/none/status.svg"); !strings.Contains(body, ">unknown<") {
		t.Errorf("an unknown repo's badge is not 'unknown': %.300s", body)
	}
}
