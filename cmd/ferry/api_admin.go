package main

import (
	"context"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
)

func cronCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "cron",
		Usage: "schedule builds of a repo",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "build the repo on a schedule (five-field cron expression, @daily, @every 1h, CRON_TZ=…)",
				ArgsUsage: "OWNER/NAME CRON-NAME EXPR",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "branch", Usage: "build the head of `BRANCH` (default: the repo's default branch)"},
				},
				Action: apiAction(3, 3, "OWNER/NAME CRON-NAME EXPR", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.CronAdd(ctx, args[0], args[1], args[2], c.String("branch"))
				}),
			},
			{
				Name:      "ls",
				Aliases:   []string{"list"},
				Usage:     "list the repo's crons",
				ArgsUsage: "OWNER/NAME",
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
					return api.CronList(ctx, args[0])
				}),
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a cron",
				ArgsUsage: "OWNER/NAME CRON-NAME",
				Action: apiAction(2, 2, "OWNER/NAME CRON-NAME", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
					return api.CronRemove(ctx, args[0], args[1])
				}),
			},
		},
	}
}

// tokenLsCommand is `token ls`.
func tokenLsCommand() *ucli.Command {
	return &ucli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list your tokens (never their secret strings)",
		Action: apiAction(0, 0, "no arguments", func(ctx context.Context, _ *ucli.Command, api *cli.API, _ []string) error {
			return api.TokenList(ctx)
		}),
	}
}

// tokenRevokeCommand is `token revoke`.
func tokenRevokeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "revoke",
		Usage:     "revoke one of your tokens; programs using it stop working at once",
		ArgsUsage: "ID",
		Action: apiAction(1, 1, "ID (see ferry token ls)", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
			id, err := number(args, 0, "token id")
			if err != nil {
				return err
			}
			return api.TokenRevoke(ctx, id)
		}),
	}
}

// buildLogsCommand is `build logs`, the same as `ferry logs`; the server
// and token flags are the build command's.
func buildLogsCommand() *ucli.Command {
	c := logsCommand()
	c.Flags = c.Flags[len(apiFlags(false)):]
	return c
}

// agentListCommand is `agent ls`.
func agentListCommand() *ucli.Command {
	return &ucli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list the registered agents and what they run (administrators only)",
		Flags:   apiFlags(true),
		Action: apiAction(0, 0, "no arguments", func(ctx context.Context, _ *ucli.Command, api *cli.API, _ []string) error {
			return api.AgentList(ctx)
		}),
	}
}
