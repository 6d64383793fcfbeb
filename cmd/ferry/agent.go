package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/agent"
)

func agentCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "agent",
		Usage: "lease jobs from a ferry server and run them on the docker or local backend",
		Description: "The first SIGTERM or SIGINT stops leasing and lets the running jobs finish (drain);\n" +
			"a second one kills the running jobs, reports them as killed and removes their containers.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "server", Usage: "base `URL` of the ferry server", Sources: ucli.EnvVars("FERRY_SERVER")},
			&ucli.StringFlag{Name: "token", Usage: "refused: a token on the command line is readable by every process on the machine; set FERRY_AGENT_TOKEN or use --token-file"},
			&ucli.StringFlag{Name: "token-file", Usage: "`FILE` holding the agent token issued by the server (or set FERRY_AGENT_TOKEN)", Sources: ucli.EnvVars("FERRY_AGENT_TOKEN_FILE")},
			&ucli.StringFlag{Name: "exec-user", Usage: "`USER` host steps run as (default: nobody when the agent runs as root; an agent that is not root runs host steps only when this names its own user)", Sources: ucli.EnvVars("FERRY_EXEC_USER")},
			&ucli.StringFlag{Name: "name", Usage: "agent `NAME` shown by the server (default: the host name)", Sources: ucli.EnvVars("FERRY_AGENT_NAME")},
			&ucli.StringSliceFlag{Name: "labels", Usage: "custom label `K=V` that pipelines select with node: (repeatable; the variable takes K=V,K=V)", Sources: ucli.EnvVars("FERRY_AGENT_LABELS")},
			&ucli.IntFlag{Name: "capacity", Value: agent.DefaultCapacity, Usage: "jobs run at once on each backend", Sources: ucli.EnvVars("FERRY_AGENT_CAPACITY")},
			&ucli.StringFlag{Name: "backend", Value: agent.DefaultBackend, Usage: "docker, local, auto (docker if the Engine answers, else local) or docker,local (both)", Sources: ucli.EnvVars("FERRY_AGENT_BACKEND")},
			&ucli.StringFlag{Name: "workdir", Usage: "`DIR` for the jobs' checkouts (default: $TMPDIR/ferry-agent)", Sources: ucli.EnvVars("FERRY_AGENT_WORKDIR")},
			&ucli.DurationFlag{Name: "poll-wait", Value: agent.DefaultPollWait, Usage: "how long one lease request waits on the server for a job", Sources: ucli.EnvVars("FERRY_AGENT_POLL_WAIT")},
			&ucli.DurationFlag{Name: "heartbeat", Value: agent.DefaultHeartbeat, Usage: "how often a running job's lease is extended", Sources: ucli.EnvVars("FERRY_AGENT_HEARTBEAT")},
			&ucli.DurationFlag{Name: "timeout", Value: agent.DefaultTimeout, Usage: "pipeline timeout when the server sets none", Sources: ucli.EnvVars("FERRY_AGENT_TIMEOUT")},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", Sources: ucli.EnvVars("FERRY_LOG_LEVEL")},
		},
		Commands: []*ucli.Command{agentListCommand()},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("agent takes no arguments, got %q", c.Args().Slice())
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			labels, err := parseLabels(c.StringSlice("labels"))
			if err != nil {
				return err
			}
			if c.IsSet("token") {
				return errors.New("--token: a token on the command line is readable by every process on the machine, " +
					"host steps included; set FERRY_AGENT_TOKEN or use --token-file FILE")
			}
			// Read once, and kept from the processes the agent starts
			// (git, credential helpers); steps get a clean environment.
			token := os.Getenv("FERRY_AGENT_TOKEN")
			_ = os.Unsetenv("FERRY_AGENT_TOKEN")
			a, err := agent.New(agent.Config{
				Server:    c.String("server"),
				Token:     token,
				TokenFile: c.String("token-file"),
				ExecUser:  c.String("exec-user"),
				Name:      c.String("name"),
				Labels:    labels,
				Capacity:  c.Int("capacity"),
				Backend:   c.String("backend"),
				WorkDir:   c.String("workdir"),
				PollWait:  c.Duration("poll-wait"),
				Heartbeat: c.Duration("heartbeat"),
				Timeout:   c.Duration("timeout"),
			}, logger)
			if err != nil {
				return err
			}
			sigs := takeOverSignals()
			defer signal.Stop(sigs)
			// main's signal context may already be cancelled by a signal
			// that came before takeOverSignals; the agent ignores it.
			return runAgent(context.WithoutCancel(ctx), a, sigs, logger)
		},
	}
}

// takeOverSignals makes SIGINT and SIGTERM arrive on the returned channel
// only: signal.Reset detaches main's signalContext, whose first signal
// would cancel everything and whose second would exit at once, while the
// agent needs a first signal to drain and a second to kill cleanly.
func takeOverSignals() chan os.Signal {
	signal.Reset(syscall.SIGINT, syscall.SIGTERM)
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	return sigs
}

// drainRunner is what runAgent drives: *agent.Agent.
type drainRunner interface {
	Run(ctx context.Context) error
	Drain()
}

// runAgent runs a until it ends. The first signal on sigs drains it (no
// new jobs; running ones finish), the second cancels the running jobs,
// which are reported as killed and cleaned up; a third exits at once.
func runAgent(ctx context.Context, a drainRunner, sigs <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for n := 1; ; n++ {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-ctx.Done():
				return
			}
			switch n {
			case 1:
				logger.Info("received signal: finishing running jobs, then exiting (send again to kill them)", "signal", sig.String())
				a.Drain()
			case 2:
				logger.Warn("received signal: killing running jobs (send again to exit at once)", "signal", sig.String())
				cancel(fmt.Errorf("received %s", sig))
			default:
				logger.Error("received signal: exiting at once", "signal", sig.String())
				os.Exit(1)
			}
		}
	}()
	return a.Run(ctx)
}

// parseLabels reads K=V labels; a value may hold several, separated by
// commas (as FERRY_AGENT_LABELS does).
func parseLabels(values []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, v := range values {
		for _, pair := range strings.Split(v, ",") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--labels %q: expected K=V", pair)
			}
			labels[k] = val
		}
	}
	return labels, nil
}
