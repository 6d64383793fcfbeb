package lb

import (
	"context"
	"errors"
	"fmt"
)

func init() { Register("hook", newHook) }

// hook drains and re-enables through two shell commands, for balancers
// without a driver. Each command is expected to wait itself.
type hook struct {
	c   Config
	run Exec
}

func newHook(c Config, run Exec) (Driver, error) {
	if c.Drain == "" || c.Ready == "" {
		return nil, errors.New("lb: the hook driver needs both drain and ready commands")
	}
	return &hook{c: c, run: run}, nil
}

func (h *hook) Drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.c.DrainTimeout)
	defer cancel()
	if err := h.run(ctx, h.c.Drain); err != nil {
		return fmt.Errorf("lb drain hook: %w", err)
	}
	return nil
}

func (h *hook) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.c.ReadyTimeout)
	defer cancel()
	if err := h.run(ctx, h.c.Ready); err != nil {
		return fmt.Errorf("lb ready hook: %w", err)
	}
	return nil
}
