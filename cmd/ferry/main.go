// Command ferry is ferry's single binary: the pipeline runner, and in later
// milestones the server, agent and node. It only wires subcommands; the work
// happens in internal/cli.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/pipeline"
)

func main() {
	os.Exit(run(os.Args))
}

// exitCode carries a subcommand's exit code through urfave/cli.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(args []string) int {
	ctx, stop := signalContext()
	defer stop()
	return runApp(ctx, newApp(), args, os.Stderr)
}

// newApp returns ferry's command tree, with the usage-error handling of
// withUsageErrors.
func newApp() *ucli.Command {
	app := &ucli.Command{
		Name:                      "ferry",
		Usage:                     "build, test and deploy from commit to production",
		Version:                   cli.Version,
		DisableSliceFlagSeparator: true,
		Commands: append([]*ucli.Command{
			execCommand(),
			lintCommand(),
			agentCommand(),
			nodeCommand(),
			artifactCommand(),
			upCommand(),
			serverCommand(),
			repoCommand(),
			buildCommand(),
			logsCommand(),
			secretCommand(),
			tokenCommand(),
			agentTokenCommand(),
			userCommand(),
			cronCommand(),
		}, deployCommands()...),
		EnableShellCompletion: true,
		// Errors come back to runApp, which prints them once; urfave/cli
		// would print some itself and exit with codes of its own.
		ExitErrHandler: func(context.Context, *ucli.Command, error) {},
	}
	withUsageErrors(app)
	return app
}

// runApp runs app with args and returns the exit code: the subcommand's,
// or 2 with one line on stderr for a usage error.
func runApp(ctx context.Context, app *ucli.Command, args []string, stderr io.Writer) int {
	err := app.Run(ctx, args)
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var ue *commandError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, ue.msg)
		return cli.ExitInvalid
	}
	// `ferry help NAME` for an unknown NAME.
	if name, ok := strings.CutPrefix(fmt.Sprint(err), "No help topic for '"); ok && strings.HasSuffix(name, "'") {
		fmt.Fprintln(stderr, unknownCommand(app, strings.TrimSuffix(name, "'")))
		return cli.ExitInvalid
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return cli.ExitInvalid
	}
	return 0
}

// commandError is a usage error whose message names the command already
// ("ferry exec: unknown flag --x").
type commandError struct{ msg string }

func (e *commandError) Error() string { return e.msg }

// withUsageErrors makes every usage error of cmd and its subcommands one
// line that names the problem and the closest command or flag, instead of
// urfave/cli's help page followed by the error (twice): an unknown flag
// ("exec: unknown flag --nosuchflag; did you mean --json?"), an unknown
// command ("unknown command "frobnicate"; run ferry --help for the list"),
// a flag value that does not parse. runApp prints it and exits 2.
func withUsageErrors(cmd *ucli.Command) {
	cmd.OnUsageError = func(_ context.Context, c *ucli.Command, err error, _ bool) error {
		return usageError(c, err)
	}
	if len(cmd.Commands) > 0 && cmd.Action == nil {
		// Without an action, urfave/cli takes an unknown command for a
		// help topic ("No help topic for 'x'", exit 3).
		cmd.Action = func(_ context.Context, c *ucli.Command) error {
			if c.Args().Len() == 0 {
				if c.Root() == c {
					return ucli.ShowAppHelp(c)
				}
				return ucli.ShowSubcommandHelp(c)
			}
			return unknownCommand(c, c.Args().First())
		}
	}
	for _, sub := range cmd.Commands {
		withUsageErrors(sub)
	}
}

// usageError rewrites a flag parsing error of c.
func usageError(c *ucli.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		var names []string
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if len(n) > 1 { // one-letter aliases are near everything
					names = append(names, n)
				}
			}
		}
		msg = fmt.Sprintf("unknown flag %s", dashed(name))
		if s := pipeline.Closest(name, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", dashed(s))
		} else {
			msg += fmt.Sprintf("; run %s --help for the flags", c.FullName())
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		msg = "invalid value " + strings.Replace(rest, " for flag -", " for flag --", 1)
	}
	return &commandError{msg: c.FullName() + ": " + msg}
}

// unknownCommand is the error for an argument that names no subcommand of c.
func unknownCommand(c *ucli.Command, name string) error {
	var names []string
	for _, sub := range c.VisibleCommands() {
		names = append(names, sub.Names()...)
	}
	msg := fmt.Sprintf("%s: unknown command %q", c.FullName(), name)
	if s := pipeline.Closest(name, names); s != "" {
		return &commandError{msg: fmt.Sprintf("%s; did you mean %q?", msg, s)}
	}
	return &commandError{msg: fmt.Sprintf("%s; run %s --help for the list", msg, c.FullName())}
}

// dashed writes a flag name as it is typed.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// signalContext is cancelled by the first SIGINT or SIGTERM, with the
// signal as its cause; a second signal exits at once (leftover containers
// are removed by the next run).
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "ferry: received %s, stopping (send again to exit at once)\n", sig)
		cancel(fmt.Errorf("received %s", sig))
		if _, ok := <-ch; ok {
			os.Exit(cli.ExitFailed)
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(ch)
		cancel(nil)
	}
}

func execCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "exec",
		Usage:     "run the pipelines of a config file on this machine, without a server",
		ArgsUsage: "[FILE]",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "backend", Usage: "run every pipeline on `BACKEND` (docker or local); default: docker for type: docker, local for type: exec", Sources: ucli.EnvVars("FERRY_BACKEND")},
			&ucli.StringSliceFlag{Name: "pipeline", Usage: "run only the pipeline `NAME` (repeatable)"},
			&ucli.StringSliceFlag{Name: "secret", Usage: "provide secret `NAME=VALUE` (repeatable)"},
			&ucli.StringFlag{Name: "secret-file", Usage: "read secrets from a dotenv `FILE`"},
			&ucli.StringSliceFlag{Name: "env", Usage: "set `K=V` in every step's environment (repeatable)"},
			&ucli.StringFlag{Name: "event", Usage: "trigger event for when/trigger: " + strings.Join(pipeline.Events(), ", ") + " (default: push, or tag for a tag ref)"},
			&ucli.StringFlag{Name: "branch", Usage: "branch for when/trigger (default: the checkout's branch)"},
			&ucli.StringFlag{Name: "ref", Usage: "git ref for when/trigger (default: refs/heads/BRANCH)"},
			&ucli.StringFlag{Name: "commit", Usage: "commit SHA (default: the checkout's HEAD)"},
			&ucli.StringFlag{Name: "target", Usage: "deploy target for promote and rollback events"},
			&ucli.StringFlag{Name: "cron", Usage: "name of the cron job, for when.cron (implies --event cron)"},
			&ucli.DurationFlag{Name: "timeout", Usage: "stop the whole run after `DURATION` (0: no limit)"},
			&ucli.BoolFlag{Name: "json", Usage: "print one JSON event per line instead of text"},
			&ucli.BoolFlag{Name: "trusted", Usage: "allow privileged steps, host volumes, devices and network_mode (host execution needs no flag: it is your machine)"},
			maxConfigSizeFlag(),
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 1 {
				return fmt.Errorf("exec takes at most one FILE, got %d arguments", c.Args().Len())
			}
			cli.LimitExecMemory()
			code := cli.Exec(ctx, cli.ExecOptions{
				File:          c.Args().First(),
				Backend:       c.String("backend"),
				Pipelines:     c.StringSlice("pipeline"),
				Secrets:       c.StringSlice("secret"),
				SecretFile:    c.String("secret-file"),
				Env:           c.StringSlice("env"),
				Event:         c.String("event"),
				Branch:        c.String("branch"),
				Ref:           c.String("ref"),
				Commit:        c.String("commit"),
				Target:        c.String("target"),
				Cron:          c.String("cron"),
				Timeout:       c.Duration("timeout"),
				JSON:          c.Bool("json"),
				Trusted:       c.Bool("trusted"),
				MaxConfigSize: c.Int64("max-config-size"),
				Stdout:        c.Root().Writer,
				Stderr:        c.Root().ErrWriter,
			})
			return exitCode(code)
		},
	}
}

func lintCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "lint",
		Usage:     "validate a config file and print every problem as FILE:LINE:COL: message",
		ArgsUsage: "[FILE]",
		Flags: []ucli.Flag{
			maxConfigSizeFlag(),
			&ucli.BoolFlag{Name: "strict", Usage: "treat warnings (unknown keys, legacy forms Drone tolerates) as errors"},
			&ucli.BoolFlag{Name: "print", Usage: "print the YAML a .drone.star, .drone.jsonnet or Woodpecker config generates, instead of linting it"},
		},
		Action: func(_ context.Context, c *ucli.Command) error {
			if c.Args().Len() > 1 {
				return fmt.Errorf("lint takes at most one FILE, got %d arguments", c.Args().Len())
			}
			if c.Bool("print") {
				return exitCode(cli.PrintGenerated("", c.Args().First(), os.Stdout, os.Stderr))
			}
			return exitCode(cli.LintMax("", c.Args().First(), c.Bool("strict"), c.Int64("max-config-size"), os.Stdout, os.Stderr))
		},
	}
}
