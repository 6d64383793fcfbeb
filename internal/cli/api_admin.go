package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	if a.JSON {
		return a.printJSON(cs)
	}
	w := a.table()
	row(w, "NAME", "EXPR", "BRANCH", "NEXT", "DISABLED")
	for _, c := range cs {
		row(w, c.Name, c.Expr, orDash(c.Branch), a.stamp(c.Next), yesNo(c.Disabled))
	}
	return w.Flush()
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
	if a.JSON {
		return a.printJSON(ts)
	}
	w := a.table()
	row(w, "ID", "NAME", "CREATED", "LAST USED", "EXPIRES")
	for _, t := range ts {
		expires := "never"
		if !t.Expires.IsZero() {
			expires = a.stamp(t.Expires)
		}
		row(w, strconv.FormatInt(t.ID, 10), t.Name, a.ago(t.Created), orDash(a.ago(t.LastUsed)), expires)
	}
	return w.Flush()
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
	if a.JSON {
		return a.printJSON(as)
	}
	w := a.table()
	row(w, "NAME", "CONNECTED", "RUNNING", "CAPACITY", "LABELS", "VERSION", "LAST SEEN")
	for _, ag := range as {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(ag.Labels)) {
			labels = append(labels, k+"="+ag.Labels[k])
		}
		row(w, ag.Name, yesNo(ag.Connected), strconv.Itoa(len(ag.RunningJobs)), strconv.Itoa(ag.Capacity),
			orDash(strings.Join(labels, ",")), orDash(ag.Version), orDash(a.ago(ag.LastSeen)))
	}
	return w.Flush()
}
