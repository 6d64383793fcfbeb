package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferryci/ferry/internal/apiclient"
)

// CronAdd runs `ferry cron add`: it schedules builds of the repo.
func (a *API) CronAdd(ctx context.Context, slug, name, expr, branch string) error {
	if strings.TrimSpace(name) == "" || strings.TrimSpace(expr) == "" {
		return usagef("cron add needs a NAME and an EXPR, e.g. ferry cron add acme/app nightly '0 3 * * *'")
	}
	c, err := a.Client.CreateCron(ctx, slug, &apiclient.CronRequest{Name: name, Expr: expr, Branch: branch})
	if err != nil {
		return fmt.Errorf("adding cron %s to %s: %w", name, slug, err)
	}
	if a.JSON {
		return a.printJSON(c)
	}
	fmt.Fprintf(a.Stdout, "added cron %s (%s) to %s; next run %s\n", c.Name, c.Expr, slug, a.stamp(c.Next))
	return nil
}

// CronList runs `ferry cron ls`.
func (a *API) CronList(ctx context.Context, slug string) error {
	cs, err := a.Client.Crons(ctx, slug)
	if err != nil {
		return fmt.Errorf("listing the crons of %s: %w", slug, err)
	}
	return printList(a, cs, "", []string{"NAME", "EXPR", "BRANCH", "NEXT", "DISABLED"}, func(c *apiclient.Cron) []string {
		return []string{c.Name, c.Expr, orDash(c.Branch), a.stamp(c.Next), yesNo(c.Disabled)}
	})
}

// CronRemove runs `ferry cron rm`.
func (a *API) CronRemove(ctx context.Context, slug, name string) error {
	if err := a.Client.DeleteCron(ctx, slug, name); err != nil {
		return fmt.Errorf("removing cron %s of %s: %w", name, slug, err)
	}
	if !a.JSON {
		fmt.Fprintf(a.Stdout, "removed cron %s of %s\n", name, slug)
	}
	return nil
}

// TokenList runs `ferry token ls`: the caller's tokens, never their
// secret strings.
func (a *API) TokenList(ctx context.Context) error {
	ts, err := a.Client.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("listing your tokens: %w", err)
	}
	return printList(a, ts, "", []string{"ID", "NAME", "CREATED", "LAST USED", "EXPIRES"}, func(t *apiclient.Token) []string {
		expires := "never"
		if !t.Expires.IsZero() {
			expires = a.stamp(t.Expires)
		}
		return []string{strconv.FormatInt(t.ID, 10), t.Name, a.ago(t.Created), orDash(a.ago(t.LastUsed)), expires}
	})
}

// TokenRevoke runs `ferry token revoke ID`.
func (a *API) TokenRevoke(ctx context.Context, id int64) error {
	if err := a.Client.RevokeToken(ctx, id); err != nil {
		return fmt.Errorf("revoking token %d: %w", id, err)
	}
	if !a.JSON {
		fmt.Fprintf(a.Stdout, "revoked token %d\n", id)
	}
	return nil
}

// AgentList runs `ferry agent ls` (administrators only).
func (a *API) AgentList(ctx context.Context) error {
	as, err := a.Client.Agents(ctx)
	if err != nil {
		return fmt.Errorf("listing agents: %w", err)
	}
	return printList(a, as, "", []string{"NAME", "CONNECTED", "RUNNING", "CAPACITY", "LABELS", "VERSION", "LAST SEEN"}, func(ag *apiclient.Agent) []string {
		return []string{ag.Name, yesNo(ag.Connected), strconv.Itoa(len(ag.RunningJobs)), strconv.Itoa(ag.Capacity),
			orDash(pairs(ag.Labels, ",")), orDash(ag.Version), orDash(a.ago(ag.LastSeen))}
	})
}
