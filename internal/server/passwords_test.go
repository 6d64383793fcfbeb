package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/server"
)

// sessionJSON is the answer of POST /api/sessions.
type sessionJSON struct {
	ID      int64     `json:"id"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
	Token   string    `json:"token"`
}

// signIn posts a login and password to /api/sessions from the loopback
// address from (127.0.0.x: each is a different client to the limiter).
func signIn(t *testing.T, ts *testServer, from, login, password string) (int, []byte, http.Header) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}
	defer tr.CloseIdleConnections()
	body, _ := json.Marshal(map[string]string{"login": login, "password": password})
	res, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Post(ts.URL+"/api/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("signing in as %s from %s: %v", login, from, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data, res.Header
}

// mustSignIn signs in and returns the session token.
func mustSignIn(t *testing.T, ts *testServer, from, login, password string) *sessionJSON {
	t.Helper()
	code, body, _ := signIn(t, ts, from, login, password)
	if code != http.StatusCreated {
		t.Fatalf("signing in as %s: status %d, want 201; body %s", login, code, body)
	}
	var s sessionJSON
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestPasswords sets passwords, signs in with them and checks who may set
// whose, on both stores.
func TestPasswords(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			testPasswords(t, startServer(t, driver, nil))
		})
	}
}

func testPasswords(t *testing.T, ts *testServer) {
	bob := ts.userToken("bob")
	carol := ts.userToken("carol")

	// The policy, and a body bounded before anything is hashed.
	for _, tc := range []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"too short", map[string]string{"password": "1234567"}, 400, "password must be 8 to 1024 bytes long; it has 7"},
		{"too long", map[string]string{"password": strings.Repeat("x", 1025)}, 400, "password must be 8 to 1024 bytes long; it has 1025"},
		{"huge body", map[string]string{"password": strings.Repeat("x", 5000)}, 413, "request body is larger than 4096 bytes"},
		{"unknown field", `{"pasword":"12345678"}`, 400, "pasword"},
	} {
		code, body := ts.call("PUT", "/api/user/password", bob, tc.body)
		if code != tc.want || !strings.Contains(string(body), tc.msg) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.want, tc.msg)
		}
	}

	// A user without a password sets the first with a token alone.
	ts.must(http.StatusNoContent, "PUT", "/api/user/password", bob, map[string]string{"password": "correct horse"}, nil)
	s := mustSignIn(t, ts, "127.0.0.1", "bob", "correct horse")
	if s.Kind != "personal" || s.Name != "web session" || s.User != "bob" || !strings.HasPrefix(s.Token, "ferry_") {
		t.Errorf("session = %+v, want bob's personal token named web session", s)
	}
	if left := time.Until(s.Expires); left <= 11*time.Hour || left > 12*time.Hour {
		t.Errorf("the session token expires in %s, want 12h", left)
	}
	var self struct {
		Login string `json:"login"`
	}
	ts.must(http.StatusOK, "GET", "/api/user", s.Token, nil, &self)
	if self.Login != "bob" {
		t.Errorf("the session token is %s's, want bob's", self.Login)
	}

	// A wrong password, an unknown user and a user without a password
	// get the same answer.
	wrongCode, wrong, _ := signIn(t, ts, "127.0.0.1", "bob", "wrong horse")
	unknownCode, unknown, _ := signIn(t, ts, "127.0.0.1", "nobody", "correct horse")
	noneCode, none, _ := signIn(t, ts, "127.0.0.1", "carol", "correct horse")
	if wrongCode != 401 || unknownCode != 401 || noneCode != 401 || !bytes.Equal(wrong, unknown) || !bytes.Equal(wrong, none) {
		t.Errorf("wrong password %d %s, unknown user %d %s, no password %d %s: want the same 401", wrongCode, wrong, unknownCode, unknown, noneCode, none)
	}
	if !strings.Contains(string(wrong), "wrong login or password") {
		t.Errorf("wrong password: %s", wrong)
	}
	if code, body, _ := signIn(t, ts, "127.0.0.1", "bob", ""); code != 400 || !strings.Contains(string(body), "login and password are required") {
		t.Errorf("empty password: %d %s", code, body)
	}

	// Changing one's password needs the current one.
	code, body := ts.call("PUT", "/api/user/password", s.Token, map[string]string{"password": "battery staple"})
	if code != 400 || !strings.Contains(string(body), `"field":"current_password"`) {
		t.Errorf("change without the current password: %d %s", code, body)
	}
	code, body = ts.call("PUT", "/api/user/password", s.Token, map[string]string{"current_password": "wrong horse", "password": "battery staple"})
	if code != 403 || !strings.Contains(string(body), "current_password is wrong") {
		t.Errorf("change with a wrong current password: %d %s", code, body)
	}
	other := mustSignIn(t, ts, "127.0.0.1", "bob", "correct horse")
	ts.must(http.StatusNoContent, "PUT", "/api/user/password", s.Token, map[string]string{"current_password": "correct horse", "password": "battery staple"}, nil)
	// The change ends the other session the old password opened, not
	// the one that changed it, nor bob's own tokens.
	if code, _ := ts.call("GET", "/api/user", other.Token, nil); code != 401 {
		t.Errorf("another session after a password change answers %d, want 401", code)
	}
	for _, tok := range []string{s.Token, bob} {
		ts.must(http.StatusOK, "GET", "/api/user", tok, nil, nil)
	}
	if code, _, _ := signIn(t, ts, "127.0.0.1", "bob", "correct horse"); code != 401 {
		t.Errorf("the old password signs in: %d", code)
	}
	mustSignIn(t, ts, "127.0.0.1", "bob", "battery staple")

	// A user cannot set another's password; an administrator can.
	for _, c := range []struct{ who, token, path string }{
		{"bob", bob, "/api/users/carol/password"},
		{"bob", bob, "/api/users/bob/password"},
		{"carol", carol, "/api/users/bob/password"},
	} {
		if code, body := ts.call("PUT", c.path, c.token, map[string]string{"password": "was here"}); code != 403 {
			t.Errorf("%s sets %s: %d %s, want 403", c.who, c.path, code, body)
		}
	}
	ts.must(http.StatusNoContent, "PUT", "/api/users/carol/password", adminToken, map[string]string{"password": "carol's secret"}, nil)
	carolSession := mustSignIn(t, ts, "127.0.0.1", "carol", "carol's secret")
	// An administrator's reset ends carol's sessions too.
	ts.must(http.StatusNoContent, "PUT", "/api/users/carol/password", adminToken, map[string]string{"password": "carol's second"}, nil)
	if code, _ := ts.call("GET", "/api/user", carolSession.Token, nil); code != 401 {
		t.Errorf("carol's session after the admin's reset answers %d, want 401", code)
	}
	ts.must(http.StatusOK, "GET", "/api/user", carol, nil, nil)
	mustSignIn(t, ts, "127.0.0.1", "carol", "carol's second")
	if code, body := ts.call("PUT", "/api/users/nobody/password", adminToken, map[string]string{"password": "12345678"}); code != 404 {
		t.Errorf("a password for an unknown user: %d %s", code, body)
	}
	if code, body := ts.call("PUT", "/api/users/carol/password", adminToken, map[string]string{"password": "x"}); code != 400 {
		t.Errorf("the admin sets a short password: %d %s", code, body)
	}

	// Revoking the session token (the UI's logout) ends it.
	ts.must(http.StatusNoContent, "DELETE", "/api/user/tokens/"+itoa(s.ID), s.Token, nil, nil)
	if code, _ := ts.call("GET", "/api/user", s.Token, nil); code != 401 {
		t.Errorf("a revoked session token answers %d, want 401", code)
	}

	// A session token expires after 12 hours: signed in 13 hours ago, it
	// has.
	server.SkewPasswordClock(ts.Server, -13*time.Hour)
	old := mustSignIn(t, ts, "127.0.0.1", "carol", "carol's second")
	server.SkewPasswordClock(ts.Server, 0)
	if code, body := ts.call("GET", "/api/user", old.Token, nil); code != 401 || !strings.Contains(string(body), "token expired") {
		t.Errorf("a session token of 13 hours ago: %d %s, want 401 token expired", code, body)
	}
}

// TestPasswordRateLimit checks that failed sign-ins are limited per login
// and per address, for unknown logins too, and that the limit ends with
// its window.
func TestPasswordRateLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	for _, u := range []string{"dave", "erin"} {
		ts.userToken(u)
		ts.must(http.StatusNoContent, "PUT", "/api/users/"+u+"/password", adminToken, map[string]string{"password": u + " password"}, nil)
	}
	limited := func(what string, code int, body []byte, h http.Header) {
		t.Helper()
		if code != http.StatusTooManyRequests || !strings.Contains(string(body), "too many failed sign-ins") || h.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s (Retry-After %q), want 429", what, code, body, h.Get("Retry-After"))
		}
	}

	// Ten wrong passwords for dave from .1: then even the right one is
	// refused, for dave from anywhere, and for anyone from .1.
	for i := range 10 {
		if code, body, _ := signIn(t, ts, "127.0.0.1", "dave", "guess"+itoa(int64(i))); code != 401 {
			t.Fatalf("wrong password %d: %d %s, want 401", i+1, code, body)
		}
	}
	code, body, h := signIn(t, ts, "127.0.0.1", "dave", "dave password")
	limited("dave's 11th sign-in", code, body, h)
	code, body, h = signIn(t, ts, "127.0.0.2", "dave", "dave password")
	limited("dave from another address", code, body, h)
	code, body, h = signIn(t, ts, "127.0.0.1", "erin", "erin password")
	limited("erin from dave's address", code, body, h)
	mustSignIn(t, ts, "127.0.0.2", "erin", "erin password")

	// Unknown logins count the same.
	for i := range 10 {
		if code, body, _ := signIn(t, ts, "127.0.0.3", "ghost", "guess"+itoa(int64(i))); code != 401 {
			t.Fatalf("unknown login %d: %d %s, want 401", i+1, code, body)
		}
	}
	code, body, h = signIn(t, ts, "127.0.0.4", "ghost", "anything")
	limited("an unknown login's 11th sign-in", code, body, h)

	// A successful sign-in is not a failure: erin signs in more than ten
	// times from one address.
	for range 11 {
		mustSignIn(t, ts, "127.0.0.5", "erin", "erin password")
	}

	// Fifteen minutes later, the limit has ended.
	server.SkewPasswordClock(ts.Server, 16*time.Minute)
	mustSignIn(t, ts, "127.0.0.1", "dave", "dave password")
	mustSignIn(t, ts, "127.0.0.1", "erin", "erin password")
}
