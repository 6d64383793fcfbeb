package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/gittest"
)

// TestRepoCredentialCommands adds a private repo, served by git
// http-backend behind basic authentication, with `repo add
// --credential-user --credential-token-file`, then removes and sets its
// credential with `repo credential`; `repo add` says which webhook events
// to tick and warns that the server posts no status to the forge.
func TestRepoCredentialCommands(t *testing.T) {
	srv := apitest.NewServer(t)
	local := strings.TrimPrefix(apitest.GitRepo(t, "acme", "app", map[string]string{"README": "hi\n"}), "file://")
	auth := &gittest.BasicAuth{User: "ci-bot", Password: "tok-cli-8d2e61f0"}
	url := gittest.Serve(t, filepath.Dir(filepath.Dir(local)), auth.Wrap) + "/acme/app"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(auth.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FERRY_SERVER", srv.URL)
	t.Setenv("FERRY_TOKEN", apitest.AdminToken)

	code, out, errs := runAPI(t, "", "repo", "add", url, "--forge", "gitea", "--poll-interval", "0s")
	if code != 1 || !strings.Contains(errs, "refused access") || !strings.Contains(errs, "--credential-token-file") {
		t.Fatalf("repo add of a private repo without a credential: exit %d, stdout %q, stderr %q; want 1 and what to give", code, out, errs)
	}
	code, out, errs = runAPI(t, "", "repo", "add", url, "--forge", "gitea", "--poll-interval", "0s",
		"--credential-user", auth.User, "--credential-token-file", tokenFile)
	if code != 0 {
		t.Fatalf("repo add with a credential: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"added acme/app", "credential:      https (user ci-bot)",
		"Tick these events: Push, Pull Request, Pull Request Synchronized.", "(gitea sends tags as push events.)"} {
		if !strings.Contains(out, want) {
			t.Errorf("repo add output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "warning: no commit status will be posted to gitea: the server has no --gitea-token") {
		t.Errorf("repo add stderr %q; want the missing status token named", errs)
	}
	if strings.Contains(out+errs, auth.Password) {
		t.Errorf("repo add printed the token")
	}

	if out := mustRun(t, "", "repo", "credential", "rm", "acme/app"); out != "removed the credential of acme/app\n" {
		t.Errorf("repo credential rm: %q", out)
	}
	if out := mustRun(t, "", "repo", "info", "acme/app"); !strings.Contains(out, "credential:      none") {
		t.Errorf("repo info after rm:\n%s", out)
	}
	if out := mustRun(t, "", "repo", "credential", "set", "acme/app", "--credential-user", auth.User, "--credential-token-file", tokenFile); out != "set the credential of acme/app: https (user ci-bot)\n" {
		t.Errorf("repo credential set: %q", out)
	}
	keyFile := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(keyFile, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"repo", "credential", "set", "acme/app"}, 2, "needs --credential-user with --credential-token-file, or --ssh-key-file"},
		{[]string{"repo", "credential", "set", "acme/app", "--credential-user", "x"}, 2, "--credential-user needs --credential-token-file"},
		{[]string{"repo", "credential", "set", "acme/app", "--ssh-key-file", keyFile, "--credential-token-file", tokenFile}, 2, "not both"},
		{[]string{"repo", "credential", "set", "acme/app", "--credential-token-file", "/no/such/file"}, 2, "--credential-token-file: open /no/such/file"},
		{[]string{"repo", "credential", "set", "acme/app", "--ssh-key-file", keyFile}, 1, "an SSH key needs an ssh git URL"},
	} {
		code, _, errs := runAPI(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("ferry %s: exit code %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, c.code, c.msg)
		}
	}
}
