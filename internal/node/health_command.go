package node

import (
	"context"
	"errors"

	"github.com/ferryci/ferry/internal/nodeproto"
)

func init() {
	registerProbe("command", probeKind{
		validate: func(hc *nodeproto.HealthCheck) error {
			if hc.Command == "" {
				return errors.New("the command check needs command")
			}
			return nil
		},
		new: func(hc *nodeproto.HealthCheck, run runFunc) Probe { return commandProbe{script: hc.Command, run: run} },
	})
}

// commandProbe is healthy when its command exits 0. It runs as the
// service's user in the current release directory.
type commandProbe struct {
	script string
	run    runFunc
}

func (p commandProbe) Probe(ctx context.Context) error { return p.run(ctx, "", p.script) }
