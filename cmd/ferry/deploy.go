package main

import (
	"context"
	"os"
	"strconv"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
)

// reasonFlag is --reason, for the audit log.
func reasonFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "reason", Usage: "why, for the audit log"}
}

// deployFlags are the flags of deploy, promote and rollback.
func deployFlags() []ucli.Flag {
	return []ucli.Flag{
		reasonFlag(),
		&ucli.BoolFlag{Name: "wait", Usage: "watch the deployment to its end with a progress display; exit 1 unless it succeeds"},
	}
}

func deployOptions(c *ucli.Command) cli.DeployOptions {
	return cli.DeployOptions{Reason: c.String("reason"), Wait: c.Bool("wait")}
}

// deployCommands are the delivery commands of the CLI.
func deployCommands() []*ucli.Command {
	return []*ucli.Command{
		{
			Name:  "release",
			Usage: "create and list releases (immutable, content-addressed versions of a service)",
			Flags: apiFlags(true),
			Commands: []*ucli.Command{
				{
					Name:      "create",
					Usage:     "create a release from an artifact (--url, --sha256) or an image (--image, --digest) and print its ID",
					ArgsUsage: "SERVICE",
					Flags: []ucli.Flag{
						&ucli.StringFlag{Name: "url", Usage: "the artifact's `URL` (http(s)://, s3://, file://)"},
						&ucli.StringFlag{Name: "sha256", Usage: "the artifact's hex `DIGEST`"},
						&ucli.StringFlag{Name: "format", Usage: "tar.gz or file (default: from the URL)"},
						&ucli.StringFlag{Name: "image", Usage: "a container image `REF`"},
						&ucli.StringFlag{Name: "digest", Usage: "the image's `DIGEST` (sha256:...)"},
						&ucli.StringFlag{Name: "version", Usage: "a `LABEL` such as a tag"},
						&ucli.IntFlag{Name: "build", Usage: "the `NUMBER` of the build that made it (default $DRONE_BUILD_NUMBER)", Sources: ucli.EnvVars("DRONE_BUILD_NUMBER")},
					},
					Action: apiAction(1, 1, "SERVICE", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
						return api.ReleaseCreate(ctx, args[0], cli.ReleaseCreateOptions{URL: c.String("url"), SHA256: c.String("sha256"),
							Format: c.String("format"), Image: c.String("image"), Digest: c.String("digest"),
							Version: c.String("version"), BuildNumber: int64(c.Int("build"))})
					}),
				},
				{
					Name:      "ls",
					Aliases:   []string{"list"},
					Usage:     "list a service's releases, newest first",
					ArgsUsage: "SERVICE",
					Action: apiAction(1, 1, "SERVICE", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
						return api.ReleaseList(ctx, args[0])
					}),
				},
			},
		},
		{
			Name:      "deploy",
			Usage:     "deploy a release to an environment",
			ArgsUsage: "SERVICE ENV RELEASE",
			Flags:     append(apiFlags(true), deployFlags()...),
			Action: apiAction(3, 3, "SERVICE ENV RELEASE", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				return api.Deploy(ctx, args[0], args[1], args[2], deployOptions(c))
			}),
		},
		{
			Name:      "promote",
			Usage:     "deploy the release an environment runs to the next environment",
			ArgsUsage: "SERVICE FROM_ENV",
			Flags: append(append(apiFlags(true), deployFlags()...),
				&ucli.StringFlag{Name: "to", Usage: "the target `ENV` (default: the next in the service's order)"}),
			Action: apiAction(2, 2, "SERVICE FROM_ENV", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				return api.Promote(ctx, args[0], args[1], c.String("to"), deployOptions(c))
			}),
		},
		{
			Name:      "rollback",
			Usage:     "deploy the release an environment ran before its current one (nodes kept it: no download)",
			ArgsUsage: "SERVICE ENV",
			Flags:     append(apiFlags(true), deployFlags()...),
			Action: apiAction(2, 2, "SERVICE ENV", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				return api.Rollback(ctx, args[0], args[1], deployOptions(c))
			}),
		},
		deploymentAction("approve", "approve a deployment waiting at its approval gate or at a manual canary pause", apiFlags(true)...),
		{
			Name:  "deployment",
			Usage: "pause, resume or cancel a deployment",
			Flags: apiFlags(true),
			Commands: []*ucli.Command{
				deploymentAction("pause", "hold the deployment after its current batch"),
				deploymentAction("resume", "continue a paused deployment"),
				deploymentAction("cancel", "stop the deployment; nodes keep what they run"),
			},
		},
		{
			Name:      "lock",
			Usage:     "lock an environment: deployments are refused (or wait) until it is unlocked",
			ArgsUsage: "SERVICE ENV",
			Flags:     append(apiFlags(true), &ucli.StringFlag{Name: "reason", Usage: "why, shown to whoever is refused"}),
			Action: apiAction(2, 2, "SERVICE ENV", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				return api.Lock(ctx, args[0], args[1], c.String("reason"))
			}),
		},
		{
			Name:      "unlock",
			Usage:     "release an environment's lock (--force: anyone's, admin role, with an audit entry)",
			ArgsUsage: "SERVICE ENV",
			Flags: append(apiFlags(true), &ucli.BoolFlag{Name: "force", Usage: "release a lock held by someone else or by a deployment"},
				reasonFlag()),
			Action: apiAction(2, 2, "SERVICE ENV", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				return api.Unlock(ctx, args[0], args[1], c.String("reason"), c.Bool("force"))
			}),
		},
		{
			Name:      "status",
			Usage:     "show what runs in each environment, or follow a deployment with --watch",
			ArgsUsage: "[SERVICE | DEPLOYMENT]",
			Flags: append(apiFlags(true), &ucli.BoolFlag{Name: "watch", Usage: "follow the DEPLOYMENT with a progress display until it ends; exit 1 unless it succeeds"},
				&ucli.DurationFlag{Name: "interval", Value: cli.DefaultWatchInterval, Usage: "how often --watch polls"}),
			Action: apiAction(0, 1, "[SERVICE | DEPLOYMENT]", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
				arg := ""
				if len(args) == 1 {
					arg = args[0]
				}
				if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
					if c.Bool("watch") {
						return api.Watch(ctx, id, c.Duration("interval"))
					}
					return api.Watch(ctx, id, -1)
				}
				if c.Bool("watch") {
					return &cli.UsageError{Message: "--watch follows a deployment: give its number (ferry status 12 --watch)"}
				}
				return api.Status(ctx, arg)
			}),
		},
		{
			Name:  "node-token",
			Usage: "create tokens for `ferry node` (administrators only)",
			Flags: apiFlags(true),
			Commands: []*ucli.Command{{
				Name:      "create",
				Usage:     "create a node token and print it (shown once); each node needs its own",
				ArgsUsage: "NAME",
				Flags: []ucli.Flag{
					&ucli.DurationFlag{Name: "expires-in", HideDefault: true, Usage: "the token expires after `DURATION` (0: never)"},
				},
				Action: apiAction(1, 1, "NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.NodeTokenCreate(ctx, args[0], c.Duration("expires-in"))
				}),
			}},
		},
	}
}

// deploymentAction is the command that takes action on a DEPLOYMENT, with
// flags (the API's, when it is not below one that has them) and --reason.
func deploymentAction(action, usage string, flags ...ucli.Flag) *ucli.Command {
	return &ucli.Command{
		Name:      action,
		Usage:     usage,
		ArgsUsage: "DEPLOYMENT",
		Flags:     append(flags, reasonFlag()),
		Action: apiAction(1, 1, "DEPLOYMENT", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
			id, err := number(args, 0, "deployment")
			if err != nil {
				return err
			}
			return api.DeploymentAction(ctx, id, action, c.String("reason"))
		}),
	}
}

// nodeListCommand is `ferry node ls`, the API's view of the nodes.
func nodeListCommand() *ucli.Command {
	return &ucli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list the nodes registered with a server: labels, what each runs and what it should run",
		Flags:   apiFlags(true),
		Action: apiAction(0, 0, "no arguments", func(ctx context.Context, _ *ucli.Command, api *cli.API, _ []string) error {
			return api.NodeList(ctx)
		}),
	}
}

// releaseAfterPush creates a release of service from a pushed artifact,
// for `ferry artifact push --release SERVICE`.
func releaseAfterPush(ctx context.Context, c *ucli.Command, url, sha string) error {
	api := &cli.API{Stdout: os.Stdout, Stderr: os.Stderr, JSON: c.Bool("json")}
	return withAPI(c, api, func(api *cli.API) error {
		return api.ReleaseCreate(ctx, c.String("release"), cli.ReleaseCreateOptions{URL: url, SHA256: sha,
			Version: c.String("version"), BuildNumber: int64(c.Int("build"))})
	})
}

// artifactReleaseFlags are `ferry artifact push`'s flags for creating a
// release in the same step.
func artifactReleaseFlags() []ucli.Flag {
	return append(apiFlags(false),
		&ucli.StringFlag{Name: "release", Usage: "after the push, create a release of `SERVICE` on the server (needs --token)"},
		&ucli.StringFlag{Name: "version", Usage: "the release's `LABEL`"},
		&ucli.IntFlag{Name: "build", Usage: "the `NUMBER` of the build that made it (default $DRONE_BUILD_NUMBER)", Sources: ucli.EnvVars("DRONE_BUILD_NUMBER")},
	)
}
