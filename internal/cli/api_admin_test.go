package cli_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/cli"
)

// TestAPICronTokenAgentCommands drives `cron add|ls|rm`, `token
// ls|revoke` and `agent ls` against a real server and agent, as tables
// and as JSON, with their exit codes.
func TestAPICronTokenAgentCommands(t *testing.T) {
	srv := apitest.NewServer(t)
	srv.StartAgent(t)
	e := newAPIEnv(t, srv, apitest.AdminToken)
	gitURL := apitest.GitRepo(t, "acme", "crons", map[string]string{".ferry.yml": pipelineYAML})
	if _, err := e.api.Client.CreateRepo(ctx, &apiclient.RepoRequest{GitURL: &gitURL, Trusted: new(true)}); err != nil {
		t.Fatal(err)
	}
	const slug = "acme/crons"

	out := e.run("cron add", e.api.CronAdd(ctx, slug, "nightly", "0 3 * * *", ""))
	if !strings.Contains(out, "added cron nightly (0 3 * * *) to acme/crons; next run ") {
		t.Fatalf("cron add output: %q", out)
	}
	if msg := e.fail("cron add with a bad expression", cli.ExitFailed, e.api.CronAdd(ctx, slug, "bad", "61 * * * *", "")); !strings.Contains(msg, "(HTTP 400)") {
		t.Fatalf("cron add with a bad expression: stderr %q", msg)
	}
	if msg := e.fail("cron add without an expression", cli.ExitInvalid, e.api.CronAdd(ctx, slug, "x", " ", "")); !strings.Contains(msg, "cron add needs a NAME and an EXPR") {
		t.Fatalf("cron add without an expression: stderr %q", msg)
	}
	e.run("cron add --branch", e.api.CronAdd(ctx, slug, "weekly", "@weekly", "release"))
	out = e.run("cron ls", e.api.CronList(ctx, slug))
	for _, re := range []string{`(?m)^NAME\s+EXPR\s+BRANCH\s+NEXT\s+DISABLED$`, `(?m)^nightly\s+0 3 \* \* \*\s+-\s`, `(?m)^weekly\s+@weekly\s+release\s`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("cron ls lacks %s:\n%s", re, out)
		}
	}
	var crons []apiclient.Cron
	e.jsonOf("cron ls", &crons, func() error { return e.api.CronList(ctx, slug) })
	if len(crons) != 2 || crons[0].Name == crons[1].Name || crons[0].Next.IsZero() {
		t.Fatalf("cron ls --json = %+v", crons)
	}
	e.run("cron rm", e.api.CronRemove(ctx, slug, "nightly"))
	if msg := e.fail("cron rm again", cli.ExitFailed, e.api.CronRemove(ctx, slug, "nightly")); !strings.Contains(msg, "(HTTP 404)") {
		t.Fatalf("cron rm of a removed cron: stderr %q", msg)
	}
	e.jsonOf("cron ls", &crons, func() error { return e.api.CronList(ctx, slug) })
	if len(crons) != 1 || crons[0].Name != "weekly" {
		t.Fatalf("after cron rm: %+v", crons)
	}

	// Tokens: a new one is listed (never its string) and can be revoked,
	// after which it no longer works.
	tok := strings.TrimSpace(e.run("token create", e.api.TokenCreate(ctx, "ci-bot", "", 0)))
	e.err.Reset()
	bot := newAPIEnv(t, srv, tok)
	var ts []apiclient.Token
	bot.jsonOf("token ls", &ts, func() error { return bot.api.TokenList(ctx) })
	var id int64
	for _, x := range ts {
		if x.Token != "" {
			t.Fatalf("token ls shows a token's string: %+v", x)
		}
		if x.Name == "ci-bot" {
			id = x.ID
		}
	}
	if id == 0 {
		t.Fatalf("token ls --json lacks ci-bot: %+v", ts)
	}
	out = bot.run("token ls", bot.api.TokenList(ctx))
	if !regexp.MustCompile(`(?m)^`+strconv.FormatInt(id, 10)+`\s+ci-bot\s`).MatchString(out) || strings.Contains(out, tok) {
		t.Fatalf("token ls output:\n%s", out)
	}
	bot.run("token revoke", bot.api.TokenRevoke(ctx, id))
	if msg := bot.fail("token ls with a revoked token", cli.ExitFailed, bot.api.TokenList(ctx)); !strings.Contains(msg, "(HTTP 401)") {
		t.Fatalf("a revoked token still works: stderr %q", msg)
	}

	// Agents: the running agent is listed, connected; users may not list.
	out = e.run("agent ls", e.api.AgentList(ctx))
	if !regexp.MustCompile(`(?m)^apitest\s+yes\s+0\s+1\s+backend=local`).MatchString(out) {
		t.Fatalf("agent ls output:\n%s", out)
	}
	var agents []apiclient.Agent
	e.jsonOf("agent ls", &agents, func() error { return e.api.AgentList(ctx) })
	if len(agents) != 1 || agents[0].Name != "apitest" || !agents[0].Connected {
		t.Fatalf("agent ls --json = %+v", agents)
	}
	e.run("user add", e.api.UserAdd(ctx, "erin", "", false))
	erinTok := strings.TrimSpace(e.run("token create --user", e.api.TokenCreate(ctx, "", "erin", 0)))
	erin := newAPIEnv(t, srv, erinTok)
	if msg := erin.fail("agent ls as a user", cli.ExitFailed, erin.api.AgentList(ctx)); !strings.Contains(msg, "(HTTP 403)") {
		t.Fatalf("agent ls as a user: stderr %q", msg)
	}
}
