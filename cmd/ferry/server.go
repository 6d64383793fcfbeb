package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/store/database"
)

// serverFlags returns one flag per server.Config field, each with a
// FERRY_* environment variable and the default from server.DefaultConfig.
func serverFlags() []ucli.Flag {
	d := server.DefaultConfig()
	env := ucli.EnvVars
	return []ucli.Flag{
		&ucli.StringFlag{Name: "addr", Value: d.Addr, Usage: "listen on `ADDR`", Sources: env("FERRY_ADDR")},
		&ucli.StringFlag{Name: "data-dir", Value: d.DataDir, Usage: "`DIR` for the SQLite database, the secret key and git mirrors", Sources: env("FERRY_DATA_DIR")},
		&ucli.StringFlag{Name: "database", Usage: "store `DSN`: a SQLite file, or postgres://… for PostgreSQL (default: DATA-DIR/ferry.db)", Sources: env("FERRY_DATABASE")},
		&ucli.StringFlag{Name: "secret-key", Usage: "32-byte `KEY` (hex or base64) that encrypts secrets at rest; prefer the environment variable", Sources: env("FERRY_SECRET_KEY")},
		&ucli.StringFlag{Name: "secret-key-file", Usage: "`FILE` holding the secret key (default: DATA-DIR/secret.key, generated on first start)", Sources: env("FERRY_SECRET_KEY_FILE")},
		&ucli.StringFlag{Name: "admin-token", Usage: "on first start, make `TOKEN` the admin's API token instead of printing a generated one", Sources: env("FERRY_ADMIN_TOKEN")},
		&ucli.StringFlag{Name: "metrics-token", Usage: "bearer `TOKEN` that may read /metrics and nothing else", Sources: env("FERRY_METRICS_TOKEN")},
		&ucli.StringFlag{Name: "url", Usage: "public `URL` of the server, for links (default: http://localhost:PORT)", Sources: env("FERRY_URL")},
		&ucli.DurationFlag{Name: "lease-ttl", Value: d.LeaseTTL, Usage: "how long a job lease lasts unless the agent extends it", Sources: env("FERRY_LEASE_TTL")},
		&ucli.IntFlag{Name: "max-attempts", Value: d.MaxAttempts, Usage: "leases of a job before a lost agent fails it with \"agent lost\"", Sources: env("FERRY_MAX_ATTEMPTS")},
		&ucli.DurationFlag{Name: "pending-timeout", Value: d.PendingTimeout, Usage: "fail a job that no agent took for this long", Sources: env("FERRY_PENDING_TIMEOUT")},
		&ucli.DurationFlag{Name: "poll-interval-default", Value: d.PollIntervalDefault, Usage: "polling interval of repos added with no forge", Sources: env("FERRY_POLL_INTERVAL_DEFAULT")},
		&ucli.StringFlag{Name: "github-token", Usage: "`TOKEN` for commit statuses on GitHub", Sources: env("FERRY_GITHUB_TOKEN")},
		&ucli.StringFlag{Name: "github-api", Value: d.GitHubAPI, Usage: "GitHub API `URL` (GitHub Enterprise: https://HOST/api/v3)", Sources: env("FERRY_GITHUB_API")},
		&ucli.StringFlag{Name: "gitea-url", Usage: "Gitea server `URL`, for commit statuses", Sources: env("FERRY_GITEA_URL")},
		&ucli.StringFlag{Name: "gitea-token", Usage: "`TOKEN` for commit statuses on Gitea", Sources: env("FERRY_GITEA_TOKEN")},
		&ucli.StringFlag{Name: "gitlab-url", Value: d.GitLabURL, Usage: "GitLab server `URL`, for commit statuses", Sources: env("FERRY_GITLAB_URL")},
		&ucli.StringFlag{Name: "gitlab-token", Usage: "`TOKEN` for commit statuses on GitLab", Sources: env("FERRY_GITLAB_TOKEN")},
		&ucli.StringFlag{Name: "log-level", Value: d.LogLevel, Usage: "debug, info, warn or error", Sources: env("FERRY_LOG_LEVEL")},
		&ucli.BoolFlag{Name: "open-registration", Usage: "let every user register repositories (default: administrators only)", Sources: env("FERRY_OPEN_REGISTRATION")},
		&ucli.DurationFlag{Name: "read-header-timeout", Value: d.ReadHeaderTimeout, Usage: "drop a client that takes longer to send a request's headers", Sources: env("FERRY_READ_HEADER_TIMEOUT")},
		&ucli.DurationFlag{Name: "read-timeout", Value: d.ReadTimeout, Usage: "drop a client that takes longer to send a whole request, body included (responses such as log streams are not limited)", Sources: env("FERRY_READ_TIMEOUT")},
		maxConfigSizeFlag(),
		&ucli.StringSliceFlag{Name: "notify", Usage: "send build (and deployment) events to `TYPE=URL[;KEY=VALUE]...`, TYPE webhook, slack or graphite (repeatable; the variable takes one per line; docs/server.md, \"Notifications\")", Sources: env("FERRY_NOTIFY")},
		&ucli.StringSliceFlag{Name: "notify-allow-net", Usage: "let a repository's notification endpoints (an environment's notify:) reach `CIDR` although it is not public (loopback, private, link-local); by default they reach public addresses only (repeatable, or comma-separated)", Sources: env("FERRY_NOTIFY_ALLOW_NET")},
	}
}

// serverConfig reads the flags of serverFlags.
func serverConfig(c *ucli.Command) server.Config {
	return server.Config{
		Addr:                c.String("addr"),
		DataDir:             c.String("data-dir"),
		Database:            c.String("database"),
		SecretKey:           c.String("secret-key"),
		SecretKeyFile:       c.String("secret-key-file"),
		AdminToken:          c.String("admin-token"),
		MetricsToken:        c.String("metrics-token"),
		URL:                 c.String("url"),
		LeaseTTL:            c.Duration("lease-ttl"),
		MaxAttempts:         c.Int("max-attempts"),
		PendingTimeout:      c.Duration("pending-timeout"),
		PollIntervalDefault: c.Duration("poll-interval-default"),
		GitHubToken:         c.String("github-token"),
		GitHubAPI:           c.String("github-api"),
		GiteaURL:            c.String("gitea-url"),
		GiteaToken:          c.String("gitea-token"),
		GitLabURL:           c.String("gitlab-url"),
		GitLabToken:         c.String("gitlab-token"),
		LogLevel:            c.String("log-level"),
		OpenRegistration:    c.Bool("open-registration"),
		ReadHeaderTimeout:   c.Duration("read-header-timeout"),
		ReadTimeout:         c.Duration("read-timeout"),
		MaxConfigSize:       c.Int64("max-config-size"),
		Notify:              c.StringSlice("notify"),
		NotifyAllowNets:     c.StringSlice("notify-allow-net"),
	}
}

// maxConfigSizeFlag is --max-config-size, shared by the server, `ferry up`,
// `ferry exec` and `ferry lint`.
func maxConfigSizeFlag() ucli.Flag {
	return &ucli.Int64Flag{Name: "max-config-size", Value: pipeline.DefaultMaxConfigSize,
		Usage:   "refuse a pipeline file larger than `BYTES` before parsing it",
		Sources: ucli.EnvVars("FERRY_MAX_CONFIG_SIZE")}
}

func serverCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "server",
		Usage: "run the CI server: the API, webhooks, git polling, crons and the job queue",
		Description: "All state lives in the store: embedded SQLite under --data-dir by default, or PostgreSQL\n" +
			"with --database postgres://…, which several servers may share. SIGTERM or SIGINT shuts down gracefully.",
		Flags:    serverFlags(),
		Commands: []*ucli.Command{adminTokenCommand()},
		// --notify values hold commas (on=build.*,deployment.failed).
		DisableSliceFlagSeparator: true,
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("server takes no arguments, got %q", c.Args().Slice())
			}
			cfg := serverConfig(c)
			level, err := server.ParseLogLevel(cfg.LogLevel)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			server.Version = cli.Version
			if err := server.PrepareDataDir(&cfg, logger); err != nil {
				return err
			}
			st, err := database.Open(ctx, cfg.DatabaseDSN())
			if err != nil {
				return fmt.Errorf("opening store: %w", err)
			}
			srv, err := server.New(ctx, cfg, st, logger)
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.Run(ctx)
		},
	}
}

// adminTokenCommand mints a new admin API token on the store directly: the
// way back in when the token printed on first start is lost.
func adminTokenCommand() *ucli.Command {
	d := server.DefaultConfig()
	env := ucli.EnvVars
	return &ucli.Command{
		Name:  "admin-token",
		Usage: "create a new API token for the admin user, on the store directly, and print it",
		Description: "Works with no server running and no token: it opens the store of --data-dir (or --database).\n" +
			"For `ferry up`, pass the data directory it printed at start.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "data-dir", Value: d.DataDir, Usage: "the server's data `DIR`", Sources: env("FERRY_DATA_DIR")},
			&ucli.StringFlag{Name: "database", Usage: "store `DSN` (default: DATA-DIR/ferry.db)", Sources: env("FERRY_DATABASE")},
			&ucli.StringFlag{Name: "name", Value: "admin-token", Usage: "the token's `NAME`, shown in token lists"},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("admin-token takes no arguments, got %q", c.Args().Slice())
			}
			cfg := server.DefaultConfig()
			cfg.DataDir, cfg.Database = c.String("data-dir"), c.String("database")
			if cfg.Database == "" {
				if _, err := os.Stat(filepath.Join(cfg.DataDir, "ferry.db")); err != nil {
					return fmt.Errorf("no ferry database in %s: pass the --data-dir the server uses (ferry up prints it at start)", cfg.DataDir)
				}
			}
			tok, err := server.MintAdminToken(ctx, cfg, c.String("name"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Root().Writer, tok)
			return nil
		},
	}
}
