package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/server"
)

func upCommand() *ucli.Command {
	flags := append(serverFlags(),
		&ucli.StringSliceFlag{Name: "repo", Usage: "register the git checkout at `DIR` (repeatable), poll it and build its head now as a push of its branch (default: the current directory)"},
		&ucli.DurationFlag{Name: "poll-interval", Value: 10 * time.Second, Usage: "how often the registered checkouts are polled for new commits"},
		&ucli.BoolFlag{Name: "once", Usage: "exit when the first builds are final, with exit code 0 when they all succeeded"},
		&ucli.StringFlag{Name: "exec-user", Usage: "`USER` host steps run as (default: nobody when ferry runs as root, else ferry's own user)", Sources: ucli.EnvVars("FERRY_EXEC_USER")},
	)
	for _, f := range flags {
		if sf, ok := f.(*ucli.StringFlag); ok {
			switch sf.Name {
			case "data-dir":
				// Outside the work tree: a data dir inside the checkout
				// shows in git and would be copied into workspaces.
				sf.Value = ""
				sf.Usage = "`DIR` for the SQLite database, the secret key and git mirrors (default: $XDG_STATE_HOME/ferry/REPO-HASH, or ~/.local/state/ferry/REPO-HASH)"
			case "log-level":
				// ferry up tells its story on stdout; the server's INFO lines
				// would interleave with the build's log.
				sf.Value = "warn"
			}
		}
	}
	return &ucli.Command{
		Name:  "up",
		Usage: "run the server and an agent in one process on embedded SQLite: the single-machine default",
		Description: "ferry up serves the API on --addr, runs one in-process agent (Docker and host backends when the\n" +
			"Docker Engine answers, host processes otherwise), registers the --repo checkouts, builds the commit\n" +
			"each has checked out as a push of its branch (once: a restart does not build it again) and prints\n" +
			"the logs. New commits are picked up by polling. Uncommitted changes are not built (ferry exec runs\n" +
			"the files on disk). State is kept outside the checkout, in the user's state directory.",
		Flags: flags,
		// --notify values hold commas (on=build.*,deployment.failed).
		DisableSliceFlagSeparator: true,
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("up takes no arguments, got %q; use --repo DIR", c.Args().Slice())
			}
			cfg := serverConfig(c)
			level, err := server.ParseLogLevel(cfg.LogLevel)
			if err != nil {
				return err
			}
			server.Version = cli.Version
			return exitCode(cli.Up(ctx, cli.UpOptions{
				Server:       cfg,
				Repos:        c.StringSlice("repo"),
				PollInterval: c.Duration("poll-interval"),
				Once:         c.Bool("once"),
				ExecUser:     c.String("exec-user"),
				Stdout:       c.Root().Writer,
				Stderr:       c.Root().ErrWriter,
				Logger:       slog.New(slog.NewTextHandler(c.Root().ErrWriter, &slog.HandlerOptions{Level: level})),
			}))
		},
	}
}
