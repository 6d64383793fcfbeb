package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
)

// runAPI runs `ferry ARGS...` with the API commands as main wires them,
// with stdin as standard input, and returns the exit code main would
// return and what was printed.
func runAPI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &ucli.Command{
		Name:      "ferry",
		Writer:    &out,
		ErrWriter: &errb,
		Reader:    strings.NewReader(stdin),
		Commands: []*ucli.Command{repoCommand(), buildCommand(), logsCommand(), secretCommand(), tokenCommand(),
			agentTokenCommand(), userCommand()},
	}
	err := app.Run(context.Background(), append([]string{"ferry"}, args...))
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		code = int(ec)
	case err != nil:
		// As main does for errors of urfave/cli itself (an unknown flag).
		errb.WriteString("ferry: " + err.Error() + "\n")
		code = 2
	}
	return code, out.String(), errb.String()
}

// mustRun runs a command that must exit 0 and returns its output.
func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := runAPI(t, stdin, args...)
	if code != 0 {
		t.Fatalf("ferry %s: exit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestAPICommandWiring runs the API commands through urfave/cli against a
// real server: flags before and after arguments, the --server and --token
// flags and their FERRY_* variables, flags that were not given left out
// of updates, commas kept in repeated flags, standard input, and the exit
// codes 0, 1 (the server refused) and 2 (a usage error).
func TestAPICommandWiring(t *testing.T) {
	srv := apitest.NewServer(t)
	url := apitest.GitRepo(t, "acme", "app", map[string]string{
		".ferry.yml": "kind: pipeline\ntype: exec\nname: p\nsteps:\n- name: s\n  commands: [echo hi]\n",
	})
	auth := []string{"--server", srv.URL, "--token", apitest.AdminToken}

	// Flags after the argument, and on the parent command.
	out := mustRun(t, "", append([]string{"repo", "add", url, "--slug", "team/app", "--config-path", ".ferry.yml",
		"--poll-interval", "0s", "--timeout", "30m", "--trusted"}, auth...)...)
	if !strings.Contains(out, "added team/app") || !strings.Contains(out, "polling:         off") || !strings.Contains(out, "timeout:         30m0s") {
		t.Fatalf("repo add output:\n%s", out)
	}

	// The same settings from the environment.
	t.Setenv("FERRY_SERVER", srv.URL)
	t.Setenv("FERRY_TOKEN", apitest.AdminToken)
	var r apiclient.Repo
	decode(t, mustRun(t, "", "repo", "--json", "update", "team/app", "--active=false", "--default-branch", "dev"), &r)
	if r.Active || r.DefaultBranch != "dev" || r.ConfigPath != ".ferry.yml" || r.Timeout.String() != "30m0s" || r.PollInterval != 0 {
		t.Fatalf("repo update changed more than its flags: %+v", r)
	}
	decode(t, mustRun(t, "", "repo", "update", "team/app", "--active", "--default-branch", "main", "--json"), &r)
	if !r.Active {
		t.Fatalf("repo update --active: %+v", r)
	}

	// Repeated --param flags keep their commas.
	mustRun(t, "", "build", "start", "team/app", "--param", "LIST=a,b,c", "--param", "X=1")
	var b apiclient.Build
	decode(t, mustRun(t, "", "build", "info", "team/app", "1", "--json"), &b)
	if b.Params["LIST"] != "a,b,c" || b.Params["X"] != "1" || len(b.Params) != 2 {
		t.Fatalf("build params = %v", b.Params)
	}
	if out := mustRun(t, "", "build", "ls", "team/app", "--limit", "5"); !strings.Contains(out, "pending") && !strings.Contains(out, "running") {
		t.Fatalf("build ls output:\n%s", out)
	}

	// A secret's value from standard input, events repeated.
	out = mustRun(t, "hunter2\n", "secret", "add", "team/app", "password", "--event", "push", "--event", "tag")
	if out != "added secret password of team/app (events: push,tag; pull requests from forks: no)\n" {
		t.Fatalf("secret add output: %q", out)
	}
	// An update without --event keeps the events.
	out = mustRun(t, "", "secret", "update", "team/app", "password", "--allow-pull-request")
	if out != "updated secret password of team/app (events: push,tag; pull requests from forks: yes)\n" {
		t.Fatalf("secret update output: %q", out)
	}
	mustRun(t, "", "secret", "add", "--global", "shared", "--value", "v")
	var ss []apiclient.Secret
	decode(t, mustRun(t, "", "secret", "ls", "--global", "--json"), &ss)
	if len(ss) != 1 || ss[0].Name != "shared" {
		t.Fatalf("secret ls --global = %+v", ss)
	}
	mustRun(t, "", "secret", "rm", "--global", "shared")

	// A token, alone on stdout.
	tok := strings.TrimSpace(mustRun(t, "", "token", "create", "--name", "ci"))
	if code, out, _ := runAPI(t, "", "user", "ls", "--token", tok); code != 0 || !strings.Contains(out, "admin") {
		t.Fatalf("user ls with the new token: exit %d, output:\n%s", code, out)
	}

	// Exit codes: 2 for usage errors, 1 for the server's refusals.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"repo", "info"}, 2, "repo info takes OWNER/NAME; got 0 argument(s)"},
		{[]string{"build", "info", "team/app", "one"}, 2, `build number "one" must be a positive number`},
		{[]string{"secret", "add", "--global", "a", "b"}, 2, "secret add --global takes NAME"},
		{[]string{"repo", "ls", "--server", "ftp://example.com"}, 2, "--server: server URL"},
		{[]string{"repo", "ls", "--bogus"}, 2, "bogus"},
		{[]string{"repo", "info", "team/nothing"}, 1, "(HTTP 404)"},
		{[]string{"repo", "ls", "--token", "wrong"}, 1, "missing or invalid token"},
		{[]string{"repo", "add", "-x"}, 2, ""},
	} {
		code, _, errs := runAPI(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("ferry %s: exit code %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, c.code, c.msg)
		}
	}
	mustRun(t, "", "repo", "rm", "team/app")
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
}
