package node

import (
	"context"
	"errors"
	"fmt"
)

func init() {
	registerRunMode("command", runMode{
		validate: func(rc *RunConfig) error {
			if rc.Restart == "" {
				return errors.New("the command mode needs restart (e.g. systemctl restart app)")
			}
			return nil
		},
		new: func(s *service) Runner { return &commandRunner{s: s} },
	})
}

// commandRunner restarts an app that something else supervises (systemd,
// runit) with a command after each switch.
type commandRunner struct{ s *service }

func (r *commandRunner) Start(context.Context, string) error { return nil }

func (r *commandRunner) Switch(ctx context.Context, dir string) error {
	if err := r.s.run(ctx, dir, r.s.cfg.Run.Restart); err != nil {
		return fmt.Errorf("run.restart: %w", err)
	}
	return nil
}

func (r *commandRunner) Stop(context.Context) error { return nil }
