package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// from makes w's connections come from the loopback address ip
// (127.0.0.x), a client of its own to the server's sign-in limits.
func (w *webClient) from(ip string) *webClient {
	tr := w.hc.Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	return w
}

// webSessions counts the tokens of a's user that password sign-ins made.
func webSessions(a *api) int {
	var ts []struct {
		Name string `json:"name"`
	}
	a.do("GET", "/api/user/tokens", nil, http.StatusOK, &ts)
	n := 0
	for _, t := range ts {
		if t.Name == "web session" {
			n++
		}
	}
	return n
}

// signIn posts the password form of the login page.
func (w *webClient) signIn(login, password string) (int, string, string) {
	w.t.Helper()
	return w.do("POST", "/login", url.Values{"login": {login}, "password": {password}, "next": {"/agents"}}, nil)
}

// TestUIPasswordLogin signs in to the UI with a login and password against
// a real server: both forms are offered, a wrong password and an unknown
// user look the same, logout revokes the session's token (a copy of the
// cookie is then useless), and failed sign-ins are limited per browser
// address, which the UI passes on to the API.
func TestUIPasswordLogin(t *testing.T) {
	srv := startServer(t, serverOptions{})
	admin := adminAPI(t, srv)
	for _, login := range []string{"pat", "quinn"} {
		admin.do("POST", "/api/users", map[string]any{"login": login}, http.StatusCreated, nil)
		admin.do("PUT", "/api/users/"+login+"/password", map[string]any{"password": login + " password"}, http.StatusNoContent, nil)
	}
	var tok struct {
		Token string `json:"token"`
	}
	admin.do("POST", "/api/users/pat/tokens", map[string]any{"name": "cli"}, http.StatusCreated, &tok)
	pat := &api{t: t, base: srv.URL, token: tok.Token, hc: newHTTPClient(t)}
	sessions := func() int { return webSessions(pat) }

	w := newWebClient(t, srv.URL).from("127.0.0.1")
	code, page := w.get("/login")
	for _, want := range []string{`id="login" name="login"`, `id="password" name="password" type="password"`, `id="token" name="token" type="password"`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("the login page (%d) has no %s: %s", code, want, page)
		}
	}

	// A wrong password and an unknown user get the same page.
	const refused = "Wrong login or password."
	code, loc, wrong := w.signIn("pat", "not the password")
	if code != http.StatusUnauthorized || loc != "" || !strings.Contains(wrong, refused) || !strings.Contains(wrong, `value="pat"`) {
		t.Errorf("a wrong password answered %d to %q: %s", code, loc, wrong)
	}
	code, loc, unknown := w.signIn("nobody", "not the password")
	if code != http.StatusUnauthorized || loc != "" || strings.ReplaceAll(unknown, "nobody", "pat") != wrong {
		t.Errorf("an unknown user answered %d to %q, unlike a wrong password: %s", code, loc, unknown)
	}

	// The right password signs in, through a session token of its own.
	if code, loc, body := w.signIn("pat", "pat password"); code != http.StatusSeeOther || loc != "/agents" {
		t.Fatalf("signing in answered %d to %q: %s", code, loc, body)
	}
	if code, body := w.get("/"); code != http.StatusOK || !strings.Contains(body, "pat") {
		t.Fatalf("the repos page after signing in: %d %.300s", code, body)
	}
	if n := sessions(); n != 1 {
		t.Fatalf("pat has %d web session tokens, want 1", n)
	}
	u, _ := url.Parse(srv.URL)
	cookies := w.hc.Jar.Cookies(u)

	// Logout revokes that token: the old cookie no longer opens a page.
	csrf := w.csrf("/")
	if code, loc, body := w.do("POST", "/logout", url.Values{"csrf": {csrf}}, nil); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout answered %d to %q: %s", code, loc, body)
	}
	if n := sessions(); n != 0 {
		t.Errorf("after logout pat has %d web session tokens, want 0", n)
	}
	replay := newWebClient(t, srv.URL)
	replay.hc.Jar.SetCookies(u, cookies)
	if code, loc, _ := replay.do("GET", "/", nil, nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Errorf("the cookie of an ended session answered %d to %q, want the login page", code, loc)
	}

	// Ten failures from this address (two above, eight here), and even
	// the right password is refused from it; another address still signs
	// in.
	for i := range 8 {
		if code, _, body := w.signIn("pat", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %.300s", i+3, code, body)
		}
	}
	code, _, body := w.signIn("quinn", "quinn password")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "too many failed sign-ins") {
		t.Errorf("the 11th sign-in from one address answered %d: %.500s", code, body)
	}
	other := newWebClient(t, srv.URL).from("127.0.0.2")
	if code, loc, body := other.signIn("quinn", "quinn password"); code != http.StatusSeeOther || loc != "/agents" {
		t.Errorf("signing in from another address answered %d to %q: %.300s", code, loc, body)
	}
}

// TestUIPasswordBrowser signs in with a login and password in chromium,
// lands on the page it started from, and signs out, which revokes the
// session's token.
func TestUIPasswordBrowser(t *testing.T) {
	ctx := browser(t)
	srv := startServer(t, serverOptions{})
	admin := adminAPI(t, srv)
	admin.do("PUT", "/api/user/password", map[string]any{"password": "the admin's password"}, http.StatusNoContent, nil)
	sessions := func() int { return webSessions(admin) }

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/agents"),
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#login"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), "the admin's password"),
	); err != nil {
		t.Fatalf("filling in the login form: %v", err)
	}
	screenshot(t, ctx, "login-password")
	if err := chromedp.Do(ctx, chromedp.Submit(chromedp.CSS("#password"))); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	waitJS(t, ctx, 30*time.Second, "on /agents as admin after signing in",
		`location.pathname === "/agents" && !document.getElementById("password") && document.querySelector(".who").textContent === "admin"`)
	if n := sessions(); n != 1 {
		t.Fatalf("%d web session tokens after signing in, want 1", n)
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(".logout button"))); err != nil {
		t.Fatalf("signing out: %v", err)
	}
	waitJS(t, ctx, 30*time.Second, "on the login page after signing out",
		`location.pathname === "/login" && !!document.getElementById("password")`)
	if n := sessions(); n != 0 {
		t.Errorf("%d web session tokens after signing out, want 0", n)
	}
}
