package cli_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/cli"
)

func TestTerminalSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\twith a tab":               "plain text\twith a tab",
		"\x1b[31mred\x1b[0m \x1b[1;38;5;208mb": "\x1b[31mred\x1b[0m \x1b[1;38;5;208mb", // SGR kept
		"\x1b]0;pwned\x07title":                `\x1b]0;pwned\x07title`,                // window title
		"\x1b[2Jclear \x1b[Hhome":              `\x1b[2Jclear \x1b[Hhome`,              // erase, move
		"bell\x07 nul\x00 cr\r del\x7f":        `bell\x07 nul\x00 cr\x0d del\x7f`,
		"\u009b31m C1 CSI":                     `\u009b31m C1 CSI`,
		"bad \xff utf8":                        `bad \xff utf8`,
		"ünïcode ✓":                            "ünïcode ✓",
		"\x1b[31":                              `\x1b[31`, // unterminated
	} {
		if got := cli.TerminalSafe(in); got != want {
			t.Errorf("TerminalSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// escapesYAML prints colours, a window title, a screen clear and a bell.
const escapesYAML = `kind: pipeline
type: exec
name: esc
steps:
- name: print
  commands:
  - printf 'start \033[31mred\033[0m \033]0;pwned\007 \033[2Jcleared\n'
`

// TestAPILogsTerminalEscapes is part of finding 6 of issue 7: on a
// terminal, `ferry logs` shows a step's escape sequences escaped, except
// colours; --raw, and output that is not a terminal, get the bytes as they
// are. Followed and stored logs alike.
func TestAPILogsTerminalEscapes(t *testing.T) {
	srv := apitest.NewServer(t)
	srv.StartAgent(t)
	url := apitest.GitRepo(t, "acme", "esc", map[string]string{".ferry.yml": escapesYAML})
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Trusted: new(true)}))
	e.run("build start", e.api.BuildStart(ctx, "acme/esc", cli.BuildStartOptions{}))
	e.run("build wait", e.api.BuildWait(ctx, "acme/esc", 1, cli.BuildWaitOptions{}))

	const raw = "start \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b[2Jcleared"
	const safe = `start ` + "\x1b[31mred\x1b[0m" + ` \x1b]0;pwned\x07 \x1b[2Jcleared`
	for _, tc := range []struct {
		name string
		o    cli.LogsOptions
		want string
	}{
		{"terminal", cli.LogsOptions{Tail: -1, Terminal: true}, safe},
		{"terminal follow", cli.LogsOptions{Tail: -1, Terminal: true, Follow: true}, safe},
		{"terminal raw", cli.LogsOptions{Tail: -1, Terminal: true, Raw: true}, raw},
		{"pipe", cli.LogsOptions{Tail: -1}, raw},
	} {
		out := e.run("logs "+tc.name, e.api.Logs(ctx, "acme/esc", 1, "esc", "print", tc.o))
		if !strings.Contains(out, tc.want+"\n") {
			t.Errorf("logs (%s) = %q; want a line %q", tc.name, out, tc.want)
		}
	}
}

// TestBuildTablesEscapeControls: a commit's message and author are
// written by whoever pushed, like a step's log, and `ferry build info`
// and `ferry build ls` show them: their escape sequences (a window title,
// a screen clear) are shown escaped, not sent to the terminal.
func TestBuildTablesEscapeControls(t *testing.T) {
	srv := apitest.NewServer(t)
	url := apitest.GitRepo(t, "acme", "msg", map[string]string{".ferry.yml": escapesYAML})
	dir := strings.TrimPrefix(url, "file://")
	cmd := exec.Command("git", "commit", "--quiet", "--allow-empty", "-m", "fix \x1b]0;pwned\x07 \x1b[2Jbug")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Eve \x1b]0;evil\x07", "GIT_AUTHOR_EMAIL=eve@example.com",
		"GIT_COMMITTER_NAME=Eve", "GIT_COMMITTER_EMAIL=eve@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	e := newAPIEnv(t, srv, apitest.AdminToken)
	e.run("repo add", e.api.RepoAdd(ctx, &apiclient.RepoRequest{GitURL: &url, Trusted: new(true)}))
	e.run("build start", e.api.BuildStart(ctx, "acme/msg", cli.BuildStartOptions{}))
	for name, out := range map[string]string{
		"build info": e.run("build info", e.api.BuildInfo(ctx, "acme/msg", 1)),
		"build ls":   e.run("build ls", e.api.BuildList(ctx, "acme/msg", cli.BuildListOptions{Limit: 10})),
	} {
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s sends control characters to the terminal:\n%q", name, out)
		}
		if !strings.Contains(out, `fix \x1b]0;pwned\x07 \x1b[2Jbug`) {
			t.Errorf("%s does not show the message escaped:\n%q", name, out)
		}
	}
}
