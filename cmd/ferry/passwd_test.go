package main

import (
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient/apitest"
)

// TestUserPasswdWiring runs `ferry user passwd` through urfave/cli: the
// password comes from standard input with --password-stdin, and there is
// no flag that would take it from the command line.
func TestUserPasswdWiring(t *testing.T) {
	srv := apitest.NewServer(t)
	auth := []string{"--server", srv.URL, "--token", apitest.AdminToken}
	mustRun(t, "", append([]string{"user", "add", "dana"}, auth...)...)
	if code, _, errs := runAPI(t, "dana's password\n", append([]string{"user", "passwd", "dana", "--password-stdin"}, auth...)...); code != 0 || !strings.Contains(errs, "set dana's password") {
		t.Fatalf("user passwd dana --password-stdin: exit %d, stderr %q", code, errs)
	}
	if _, err := srv.Client(t, "").CreateSession(t.Context(), "dana", "dana's password"); err != nil {
		t.Fatalf("signing in with the password set: %v", err)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"user", "passwd", "dana", "extra", "--password-stdin"}, "user passwd takes at most a LOGIN; got 2 argument(s)"},
		{[]string{"user", "passwd", "dana", "--password", "on the command line"}, "password"},
		{[]string{"user", "passwd", "dana"}, "pass --password-stdin"},
	} {
		code, _, errs := runAPI(t, "ignored password\n", append(c.args, auth...)...)
		if code != 2 || !strings.Contains(errs, c.msg) {
			t.Errorf("ferry %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, errs, c.msg)
		}
	}
}
