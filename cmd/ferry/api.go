package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/cli"
)

// apiFlags are the flags of every command that talks to the API. They
// are given on the top-level command and apply to its subcommands, so
// both `ferry repo --server URL ls` and `ferry repo ls --server URL` work.
func apiFlags(withJSON bool) []ucli.Flag {
	flags := []ucli.Flag{
		&ucli.StringFlag{Name: "server", Value: apiclient.DefaultServer, Usage: "base `URL` of the ferry server", Sources: ucli.EnvVars("FERRY_SERVER")},
		&ucli.StringFlag{Name: "token", Usage: "personal API `TOKEN` (see `ferry token create`)", Sources: ucli.EnvVars("FERRY_TOKEN")},
	}
	if withJSON {
		flags = append(flags, &ucli.BoolFlag{Name: "json", Usage: "print the API's JSON objects instead of tables"})
	}
	return flags
}

// apiAction wraps an API command: it checks that the command got between
// minArgs and maxArgs arguments (maxArgs < 0: no limit), builds the client
// from the flags, runs fn and turns its error into the exit code. usage
// describes the arguments for the error message.
func apiAction(minArgs, maxArgs int, usage string,
	fn func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error) ucli.ActionFunc {
	return func(ctx context.Context, c *ucli.Command) error {
		api := &cli.API{Stdout: c.Writer, Stderr: c.ErrWriter, Stdin: c.Reader, JSON: c.Bool("json")}
		args := c.Args().Slice()
		if len(args) < minArgs || (maxArgs >= 0 && len(args) > maxArgs) {
			return exitOf(api.ExitCode(&cli.UsageError{Message: fmt.Sprintf("%s takes %s; got %d argument(s): %q",
				commandName(c), usage, len(args), args)}))
		}
		return withAPI(c, api, func(api *cli.API) error { return fn(ctx, c, api, args) })
	}
}

// withAPI gives api a client of the server named by --server and --token,
// runs fn and turns its error into the process's exit code.
func withAPI(c *ucli.Command, api *cli.API, fn func(api *cli.API) error) error {
	client, err := apiclient.New(c.String("server"), c.String("token"), nil)
	if err != nil {
		return exitOf(api.ExitCode(&cli.UsageError{Message: "--server: " + err.Error()}))
	}
	defer client.CloseIdleConnections()
	api.Client = client
	return exitOf(api.ExitCode(fn(api)))
}

// commandName names c as typed after "ferry", e.g. "build ls".
func commandName(c *ucli.Command) string {
	return strings.TrimPrefix(c.FullName(), c.Root().Name+" ")
}

// exitOf turns an exit code into Action's result.
func exitOf(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// number parses argument i as a positive number.
func number(args []string, i int, what string) (int64, error) {
	return cli.ParseNumber(what, args[i])
}

// optString returns the flag's value when it was given.
func optString(c *ucli.Command, name string) *string {
	if !c.IsSet(name) {
		return nil
	}
	return new(c.String(name))
}

// optBool returns the flag's value when it was given.
func optBool(c *ucli.Command, name string) *bool {
	if !c.IsSet(name) {
		return nil
	}
	return new(c.Bool(name))
}

// optDuration returns the flag's value when it was given.
func optDuration(c *ucli.Command, name string) *apiclient.Duration {
	if !c.IsSet(name) {
		return nil
	}
	return new(apiclient.Duration(c.Duration(name)))
}

// repoFlags are the settings of `repo add` and `repo update`; update
// changes only the flags given.
func repoFlags(update bool) []ucli.Flag {
	usage := func(add, upd string) string {
		if update {
			return upd
		}
		return add
	}
	flags := []ucli.Flag{
		&ucli.StringFlag{Name: "slug", Usage: usage("the repo's `OWNER/NAME` (default: the last two parts of the git URL)", "rename the repo to `OWNER/NAME`")},
		&ucli.StringFlag{Name: "forge", Usage: "`FORGE` that sends webhooks: github, gitea, gitlab or none" + usage(" (default: none)", "")},
		&ucli.StringFlag{Name: "webhook-secret", Usage: usage("`SECRET` that signs the forge's webhooks (default: generated)", "`SECRET` that signs the forge's webhooks")},
		&ucli.DurationFlag{Name: "poll-interval", HideDefault: true, Usage: "poll the repo for new commits every `DURATION` (0: no polling" +
			usage("; default: the server's --poll-interval-default for forge none, else 0)", ")")},
		&ucli.StringFlag{Name: "config-path", Usage: "pipeline file `PATH` in the repo (empty: .ferry.yml, then .drone.yml)"},
		&ucli.BoolFlag{Name: "trusted", Usage: "allow host execution, privileged steps, host volumes, devices and network_mode (administrators only; see docs/security.md)" + usage("", "; --trusted=false revokes it")},
		&ucli.DurationFlag{Name: "timeout", HideDefault: true, Usage: "pipeline timeout `DURATION` (0: the agent's default)"},
		&ucli.StringFlag{Name: "default-branch", Usage: "`BRANCH` built by default" + usage(" (default: the remote's HEAD)", "")},
	}
	flags = append(flags, credentialFlags()...)
	if update {
		flags = append(flags,
			&ucli.StringFlag{Name: "git-url", Usage: "clone from git `URL` from now on"},
			&ucli.BoolFlag{Name: "active", Usage: "whether webhooks, polling and crons start builds (--active=false pauses the repo)"},
		)
	}
	return flags
}

// credentialFlags give a repo's git credential, from files.
func credentialFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "credential-user", Usage: "`USER` for HTTPS access to a private repo, with --credential-token-file (GitHub and GitLab: optional with a token)"},
		&ucli.StringFlag{Name: "credential-token-file", Usage: "`FILE` holding the HTTPS password or access token of a private repo"},
		&ucli.StringFlag{Name: "ssh-key-file", Usage: "`FILE` holding the SSH deploy key (private key) of a private repo with an ssh URL"},
		&ucli.StringFlag{Name: "known-hosts-file", Usage: "`FILE` of known_hosts lines the SSH server's key must match (default: trusted on first use)"},
	}
}

// credentialOptions reads the flags of credentialFlags.
func credentialOptions(c *ucli.Command) cli.CredentialOptions {
	return cli.CredentialOptions{User: c.String("credential-user"), TokenFile: c.String("credential-token-file"),
		SSHKeyFile: c.String("ssh-key-file"), KnownHostsFile: c.String("known-hosts-file")}
}

// repoRequest builds a repo request from the flags that were given.
func repoRequest(c *ucli.Command) (*apiclient.RepoRequest, error) {
	cred, err := credentialOptions(c).Request()
	if err != nil {
		return nil, err
	}
	return &apiclient.RepoRequest{
		Credential:    cred,
		GitURL:        optString(c, "git-url"),
		Slug:          optString(c, "slug"),
		Forge:         optString(c, "forge"),
		WebhookSecret: optString(c, "webhook-secret"),
		PollInterval:  optDuration(c, "poll-interval"),
		ConfigPath:    optString(c, "config-path"),
		Trusted:       optBool(c, "trusted"),
		Timeout:       optDuration(c, "timeout"),
		DefaultBranch: optString(c, "default-branch"),
		Active:        optBool(c, "active"),
	}, nil
}

func repoCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "repo",
		Usage: "add, list, show, change and remove the repos the server builds",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "add a repo by its git URL (http, https, ssh, git or file URL, or user@host:path)",
				ArgsUsage: "GIT_URL",
				Flags:     repoFlags(false),
				Action: apiAction(1, 1, "GIT_URL", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					req, err := repoRequest(c)
					if err != nil {
						return err
					}
					req.GitURL = &args[0]
					return api.RepoAdd(ctx, req)
				}),
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list the repos you have a role on",
				Action: apiAction(0, 0, "no arguments", func(ctx context.Context, _ *ucli.Command, api *cli.API, _ []string) error {
					return api.RepoList(ctx)
				}),
			},
			{
				Name:      "info",
				Usage:     "show a repo's settings",
				ArgsUsage: "OWNER/NAME",
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
					return api.RepoInfo(ctx, args[0])
				}),
			},
			{
				Name:      "update",
				Usage:     "change a repo's settings: only the flags given change",
				ArgsUsage: "OWNER/NAME",
				Flags:     repoFlags(true),
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					req, err := repoRequest(c)
					if err != nil {
						return err
					}
					return api.RepoUpdate(ctx, args[0], req)
				}),
			},
			{
				Name:  "credential",
				Usage: "set or remove the git credential (HTTPS token or SSH deploy key) of a private repo",
				Commands: []*ucli.Command{
					{
						Name:      "set",
						Usage:     "set or replace the credential: --credential-user and --credential-token-file, or --ssh-key-file",
						ArgsUsage: "OWNER/NAME",
						Flags:     credentialFlags(),
						Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
							return api.RepoCredentialSet(ctx, args[0], credentialOptions(c))
						}),
					},
					{
						Name:      "rm",
						Aliases:   []string{"remove"},
						Usage:     "remove the credential",
						ArgsUsage: "OWNER/NAME",
						Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
							return api.RepoCredentialRemove(ctx, args[0])
						}),
					},
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a repo with its builds, logs and secrets",
				ArgsUsage: "OWNER/NAME",
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, _ *ucli.Command, api *cli.API, args []string) error {
					return api.RepoRemove(ctx, args[0])
				}),
			},
		},
	}
}

// buildNumberAction is an action on REPO NUMBER.
func buildNumberAction(fn func(ctx context.Context, c *ucli.Command, api *cli.API, repo string, n int64) error) ucli.ActionFunc {
	return apiAction(2, 2, "OWNER/NAME NUMBER", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
		n, err := number(args, 1, "build number")
		if err != nil {
			return err
		}
		return fn(ctx, c, api, args[0], n)
	})
}

// buildNumberCommand is a command without flags on REPO NUMBER; fn is a
// method of cli.API, such as (*cli.API).BuildInfo.
func buildNumberCommand(name, usage string, fn func(api *cli.API, ctx context.Context, repo string, n int64) error) *ucli.Command {
	return &ucli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "OWNER/NAME NUMBER",
		Action: buildNumberAction(func(ctx context.Context, _ *ucli.Command, api *cli.API, repo string, n int64) error {
			return fn(api, ctx, repo, n)
		}),
	}
}

func buildCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "build",
		Usage: "list, start, show, cancel, approve, restart and wait for builds, and print their logs",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:      "ls",
				Aliases:   []string{"list"},
				Usage:     "list a repo's builds, newest first",
				ArgsUsage: "OWNER/NAME",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "branch", Usage: "only builds of `BRANCH`"},
					&ucli.StringFlag{Name: "status", Usage: "only builds with `STATUS` (blocked, pending, running, success, failure, error, killed, skipped, declined)"},
					&ucli.StringFlag{Name: "event", Usage: "only builds of `EVENT` (push, pull_request, tag, cron, custom, promote, rollback)"},
					&ucli.Int64Flag{Name: "pr", HideDefault: true, Usage: "only builds of pull request `N`"},
					&ucli.IntFlag{Name: "limit", Value: 25, Usage: "list at most `N` builds"},
				},
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.BuildList(ctx, args[0], cli.BuildListOptions{
						Branch: c.String("branch"), Status: c.String("status"), Event: c.String("event"),
						PullRequest: c.Int64("pr"), Limit: c.Int("limit"),
					})
				}),
			},
			{
				Name:                      "start",
				Usage:                     "start a build by hand (a custom event) of a branch's head, a ref or a commit",
				ArgsUsage:                 "OWNER/NAME",
				DisableSliceFlagSeparator: true,
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "branch", Usage: "build the head of `BRANCH` (default: the repo's default branch)"},
					&ucli.StringFlag{Name: "ref", Usage: "build the commit of git `REF` (refs/heads/..., refs/tags/...)"},
					&ucli.StringFlag{Name: "sha", Usage: "build commit `SHA` (the full id), on --branch or --ref"},
					&ucli.StringSliceFlag{Name: "param", Usage: "pass `K=V` to the steps as an environment variable (repeatable)"},
				},
				Action: apiAction(1, 1, "OWNER/NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.BuildStart(ctx, args[0], cli.BuildStartOptions{
						Branch: c.String("branch"), Ref: c.String("ref"), SHA: c.String("sha"), Params: c.StringSlice("param"),
					})
				}),
			},
			buildNumberCommand("info", "show a build with its pipelines and steps, their statuses and why waiting ones wait", (*cli.API).BuildInfo),
			buildNumberCommand("cancel", "cancel a build that has not finished", (*cli.API).BuildCancel),
			buildNumberCommand("approve", "approve a build that waits for approval", (*cli.API).BuildApprove),
			buildNumberCommand("decline", "decline a build that waits for approval", (*cli.API).BuildDecline),
			{
				Name:      "restart",
				Usage:     "run a finished build's commit and config again, as a new build",
				ArgsUsage: "OWNER/NAME NUMBER",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "failed-only", Usage: "run only the pipelines that did not succeed; copy the others"},
				},
				Action: buildNumberAction(func(ctx context.Context, c *ucli.Command, api *cli.API, repo string, n int64) error {
					return api.BuildRestart(ctx, repo, n, c.Bool("failed-only"))
				}),
			},
			{
				Name:      "wait",
				Usage:     "wait until a build is final and show it; exit 0 when it succeeded, 1 otherwise",
				ArgsUsage: "OWNER/NAME NUMBER",
				Flags: []ucli.Flag{
					&ucli.DurationFlag{Name: "interval", Value: cli.DefaultWaitInterval, Usage: "look at the build every `DURATION`"},
					&ucli.DurationFlag{Name: "timeout", HideDefault: true, Usage: "give up (exit 1) after `DURATION` (0: wait for ever)"},
				},
				Action: buildNumberAction(func(ctx context.Context, c *ucli.Command, api *cli.API, repo string, n int64) error {
					return api.BuildWait(ctx, repo, n, cli.BuildWaitOptions{Interval: c.Duration("interval"), Timeout: c.Duration("timeout")})
				}),
			},
			buildLogsCommand(),
		},
	}
}

func logsCommand() *ucli.Command {
	return &ucli.Command{
		Name: "logs",
		// `ferry build logs` is the same command.
		Usage: "print a step's log, or follow it while the step runs",
		Description: "PIPELINE and STEP are numbers, as `ferry build info` shows them (step 1.2 is PIPELINE 1 STEP 2),\n" +
			"or names. With --follow the log is streamed as it is written, and the command exits when the step ends.",
		ArgsUsage: "OWNER/NAME NUMBER PIPELINE STEP",
		Flags: append(apiFlags(false),
			&ucli.IntFlag{Name: "tail", Value: -1, HideDefault: true, Usage: "print only the last `N` lines (with --follow: of what is logged already)"},
			&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "stream the log until the step ends"},
			&ucli.BoolFlag{Name: "raw", Usage: "print the log's bytes as they are; on a terminal, escape sequences other than colours are shown escaped unless this is set"},
		),
		Action: apiAction(4, 4, "OWNER/NAME NUMBER PIPELINE STEP", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
			n, err := number(args, 1, "build number")
			if err != nil {
				return err
			}
			return api.Logs(ctx, args[0], n, args[2], args[3], cli.LogsOptions{Tail: c.Int("tail"), Follow: c.Bool("follow"),
				Terminal: cli.IsTerminal(os.Stdout), Raw: c.Bool("raw")})
		}),
	}
}

// secretArgs splits a secret command's arguments: OWNER/NAME NAME, or
// with --global NAME alone. It returns the repo ("" for global) and the
// remaining arguments.
func secretArgs(c *ucli.Command, args []string, names int) (string, []string, error) {
	if c.Bool("global") {
		if len(args) != names {
			return "", nil, &cli.UsageError{Message: fmt.Sprintf("%s --global takes %s; got %q", commandName(c), plural(names, "NAME"), args)}
		}
		return "", args, nil
	}
	if len(args) != names+1 {
		return "", nil, &cli.UsageError{Message: fmt.Sprintf("%s takes OWNER/NAME %s (or --global %s); got %q",
			commandName(c), plural(names, "NAME"), plural(names, "NAME"), args)}
	}
	return args[0], args[1:], nil
}

// secretNameAction is an action on OWNER/NAME NAME, or --global NAME.
func secretNameAction(fn func(ctx context.Context, c *ucli.Command, api *cli.API, repo, name string) error) ucli.ActionFunc {
	return apiAction(1, 2, "OWNER/NAME NAME, or --global NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
		repo, rest, err := secretArgs(c, args, 1)
		if err != nil {
			return err
		}
		return fn(ctx, c, api, repo, rest[0])
	})
}

func plural(n int, what string) string {
	if n == 0 {
		return "no other arguments"
	}
	return strings.TrimSpace(strings.Repeat(what+" ", n))
}

// secretFlags are the flags of `secret add` and `secret update`.
func secretFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "value", Usage: "the secret's `VALUE` (visible in the process list and shell history; prefer --from-file or standard input)"},
		&ucli.StringFlag{Name: "from-file", Usage: "read the value from `FILE`, as it is"},
		&ucli.StringSliceFlag{Name: "event", Usage: "expose the secret only to builds of `EVENT`: push, pull_request, tag, cron, custom, promote or rollback (repeatable; default: every event; update replaces the list)"},
		&ucli.BoolFlag{Name: "allow-pull-request", Usage: "expose the secret to pull requests from forks too"},
	}
}

// secretOptions builds the secret options from the flags that were given.
func secretOptions(c *ucli.Command) cli.SecretOptions {
	o := cli.SecretOptions{
		Value:            optString(c, "value"),
		FromFile:         c.String("from-file"),
		AllowPullRequest: optBool(c, "allow-pull-request"),
	}
	if c.IsSet("event") {
		o.Events = c.StringSlice("event")
	}
	return o
}

func secretCommand() *ucli.Command {
	global := func() ucli.Flag {
		return &ucli.BoolFlag{Name: "global", Usage: "work on the global secrets, which every repo sees (administrators only), instead of a repo's"}
	}
	return &ucli.Command{
		Name:  "secret",
		Usage: "add, list, change and remove the secrets given to builds",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:  "add",
				Usage: "add a secret; its value comes from --value, --from-file or standard input",
				Description: "Without --value or --from-file the value is read from standard input: typed without echo\n" +
					"at a terminal, or else read to its end with one trailing newline removed.",
				ArgsUsage:                 "OWNER/NAME NAME | --global NAME",
				DisableSliceFlagSeparator: true,
				Flags:                     append(secretFlags(), global()),
				Action: secretNameAction(func(ctx context.Context, c *ucli.Command, api *cli.API, repo, name string) error {
					return api.SecretAdd(ctx, repo, name, secretOptions(c))
				}),
			},
			{
				Name:                      "update",
				Usage:                     "change a secret's value (with --value or --from-file), events or pull request setting",
				ArgsUsage:                 "OWNER/NAME NAME | --global NAME",
				DisableSliceFlagSeparator: true,
				Flags:                     append(secretFlags(), global()),
				Action: secretNameAction(func(ctx context.Context, c *ucli.Command, api *cli.API, repo, name string) error {
					return api.SecretUpdate(ctx, repo, name, secretOptions(c))
				}),
			},
			{
				Name:      "ls",
				Aliases:   []string{"list"},
				Usage:     "list secrets by name (values are never shown)",
				ArgsUsage: "OWNER/NAME | --global",
				Flags:     []ucli.Flag{global()},
				Action: apiAction(0, 1, "OWNER/NAME, or --global", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					repo, _, err := secretArgs(c, args, 0)
					if err != nil {
						return err
					}
					return api.SecretList(ctx, repo)
				}),
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a secret",
				ArgsUsage: "OWNER/NAME NAME | --global NAME",
				Flags:     []ucli.Flag{global()},
				Action: secretNameAction(func(ctx context.Context, _ *ucli.Command, api *cli.API, repo, name string) error {
					return api.SecretRemove(ctx, repo, name)
				}),
			},
		},
	}
}

func tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "create, list and revoke personal API tokens",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:  "create",
				Usage: "create a personal API token and print it (it is shown once)",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Value: cli.DefaultTokenName, Usage: "`NAME` that describes the token"},
					&ucli.StringFlag{Name: "user", Usage: "create the token for user `LOGIN` instead of yourself (administrators only)"},
					&ucli.DurationFlag{Name: "expires-in", HideDefault: true, Usage: "the token expires after `DURATION` (0: never)"},
				},
				Action: apiAction(0, 0, "no arguments", func(ctx context.Context, c *ucli.Command, api *cli.API, _ []string) error {
					return api.TokenCreate(ctx, c.String("name"), c.String("user"), c.Duration("expires-in"))
				}),
			},
			tokenLsCommand(),
			tokenRevokeCommand(),
		},
	}
}

func agentTokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "agent-token",
		Usage: "create tokens for `ferry agent` (administrators only)",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:      "create",
				Usage:     "create an agent token and print it (it is shown once)",
				ArgsUsage: "NAME",
				Flags: []ucli.Flag{
					&ucli.DurationFlag{Name: "expires-in", HideDefault: true, Usage: "the token expires after `DURATION` (0: never)"},
				},
				Action: apiAction(1, 1, "NAME", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.AgentTokenCreate(ctx, args[0], c.Duration("expires-in"))
				}),
			},
		},
	}
}

func userCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "user",
		Usage: "add and list users (administrators only), and set passwords",
		Flags: apiFlags(true),
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "add a user; give them a token with `ferry token create --user LOGIN`",
				ArgsUsage: "LOGIN",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "admin", Usage: "make the user an administrator"},
					&ucli.StringFlag{Name: "email", Usage: "the user's email `ADDRESS`"},
				},
				Action: apiAction(1, 1, "LOGIN", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					return api.UserAdd(ctx, args[0], c.String("email"), c.Bool("admin"))
				}),
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list users",
				Action: apiAction(0, 0, "no arguments", func(ctx context.Context, _ *ucli.Command, api *cli.API, _ []string) error {
					return api.UserList(ctx)
				}),
			},
			{
				Name:  "passwd",
				Usage: "set your password for the web UI, or as an administrator LOGIN's",
				Description: "The new password is typed twice without echo at a terminal, or with --password-stdin read from\n" +
					"the first line of standard input; it is never an argument. Changing your own password needs the\n" +
					"current one when you have one: typed at the terminal, or the second line of standard input.",
				ArgsUsage: "[LOGIN]",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "password-stdin", Usage: "read the new password (and then the current one) from standard input, one per line"},
				},
				Action: apiAction(0, 1, "at most a LOGIN", func(ctx context.Context, c *ucli.Command, api *cli.API, args []string) error {
					login := ""
					if len(args) == 1 {
						login = args[0]
					}
					return api.UserPasswd(ctx, login, c.Bool("password-stdin"))
				}),
			},
		},
	}
}
