package cli_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/cli"
)

// TestUserPasswd sets passwords with `ferry user passwd` against a real
// server and signs in with them.
func TestUserPasswd(t *testing.T) {
	srv := apitest.NewServer(t)
	admin := newAPIEnv(t, srv, apitest.AdminToken)
	admin.run("user add", admin.api.UserAdd(ctx, "bob", "", false))
	admin.run("user add", admin.api.UserAdd(ctx, "carol", "", false))
	tok, err := admin.api.Client.CreateUserToken(ctx, "bob", &apiclient.TokenRequest{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	bob := newAPIEnv(t, srv, tok.Token)
	anon := srv.Client(t, "")
	signIn := func(login, password string) error {
		t.Helper()
		_, err := anon.CreateSession(ctx, login, password)
		return err
	}

	// An administrator sets bob's password from standard input.
	admin.api.Stdin = strings.NewReader("first password\n")
	admin.run("user passwd bob", admin.api.UserPasswd(ctx, "bob", true))
	if msg := admin.err.String(); !strings.Contains(msg, "set bob's password") {
		t.Errorf("user passwd bob: stderr %q", msg)
	}
	if err := signIn("bob", "first password"); err != nil {
		t.Fatalf("signing in with the password set: %v", err)
	}

	// Bob changes his: the server asks for the current one, the second
	// line.
	bob.api.Stdin = strings.NewReader("second password\n")
	if msg := bob.fail("user passwd without the current password", cli.ExitInvalid, bob.api.UserPasswd(ctx, "", true)); !strings.Contains(msg, "standard input ended before the current password") {
		t.Errorf("stderr %q", msg)
	}
	bob.api.Stdin = strings.NewReader("second password\nnot the first\n")
	if msg := bob.fail("user passwd with a wrong current password", cli.ExitFailed, bob.api.UserPasswd(ctx, "", true)); !strings.Contains(msg, "current_password is wrong (HTTP 403)") {
		t.Errorf("stderr %q", msg)
	}
	bob.api.Stdin = strings.NewReader("second password\r\nfirst password\r\n")
	bob.run("user passwd", bob.api.UserPasswd(ctx, "", true))
	if err := signIn("bob", "second password"); err != nil {
		t.Fatalf("signing in with the changed password: %v", err)
	}
	if err := signIn("bob", "first password"); !apiclient.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("the old password: %v, want 401", err)
	}

	// Bob may not set carol's; bad input is a usage error, sent nowhere.
	bob.api.Stdin = strings.NewReader("carol's new password\n")
	if msg := bob.fail("user passwd carol as bob", cli.ExitFailed, bob.api.UserPasswd(ctx, "carol", true)); !strings.Contains(msg, "(HTTP 403)") {
		t.Errorf("stderr %q", msg)
	}
	for _, tc := range []struct{ name, stdin, want string }{
		{"short", "short\n", "the new password must be 8 to 1024 bytes long; it has 5"},
		{"long", strings.Repeat("x", 1025) + "\n", "the new password must be 8 to 1024 bytes long; it has 1025"},
		{"empty input", "", "standard input ended before the new password"},
	} {
		admin.api.Stdin = strings.NewReader(tc.stdin)
		if msg := admin.fail("user passwd, "+tc.name, cli.ExitInvalid, admin.api.UserPasswd(ctx, "carol", true)); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: stderr %q, want %q", tc.name, msg, tc.want)
		}
	}
	// Without --password-stdin the password comes from a terminal only.
	admin.api.Stdin = strings.NewReader("carol password\n")
	if msg := admin.fail("user passwd without a terminal", cli.ExitInvalid, admin.api.UserPasswd(ctx, "carol", false)); !strings.Contains(msg, "pass --password-stdin") {
		t.Errorf("stderr %q", msg)
	}
	if err := signIn("carol", "carol password"); !apiclient.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("carol signs in with a password never set: %v", err)
	}
}
