package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/server"
)

func upCommand() *ucli.Command {
	flags := append(serverFlags(),
		&ucli.StringSliceFlag{Name: "repo", Usage: "register the git checkout at `DIR` (repeatable), poll it and build its current branch now (default: the current directory, when it is a git checkout with a pipeline file)"},
		&ucli.DurationFlag{Name: "poll-interval", Value: 10 * time.Second, Usage: "how often the registered checkouts are polled for new commits"},
		&ucli.BoolFlag{Name: "once", Usage: "exit when the first builds are final, with exit code 0 when they all succeeded"},
		&ucli.StringFlag{Name: "exec-user", Usage: "`USER` host steps run as (default: nobody when ferry runs as root, else ferry's own user)", Sources: ucli.EnvVars("FERRY_EXEC_USER")},
	)
	return &ucli.Command{
		Name:  "up",
		Usage: "run the server and an agent in one process on embedded SQLite: the single-machine default",
		Description: "ferry up serves the API on --addr, runs one in-process agent (Docker and host backends when the\n" +
			"Docker Engine answers, host processes otherwise), registers the --repo checkouts, builds them and\n" +
			"prints their logs. New commits are picked up by polling.",
		Flags: flags,
		Action: func(ctx context.Context, c *ucli.Command) error {
			cfg := serverConfig(c)
			level, err := server.ParseLogLevel(cfg.LogLevel)
			if err != nil {
				return err
			}
			server.Version = cli.Version
			repos := c.StringSlice("repo")
			if len(repos) == 0 && cli.HasPipeline(".") {
				repos = []string{"."}
			}
			return exitCode(cli.Up(ctx, cli.UpOptions{
				Server:       cfg,
				Repos:        repos,
				PollInterval: c.Duration("poll-interval"),
				Once:         c.Bool("once"),
				ExecUser:     c.String("exec-user"),
				Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
			}))
		},
	}
}
