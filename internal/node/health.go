package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/nodeproto"
)

// Defaults of a health check.
const (
	DefaultHealthInterval  = time.Second
	DefaultHealthTimeout   = 5 * time.Second
	DefaultHealthyDeadline = time.Minute
)

// Probe is one kind of health check: one probe answers whether the
// release is healthy now. Probes are called one at a time.
type Probe interface {
	// Probe returns nil when healthy; ctx carries the probe's timeout.
	Probe(ctx context.Context) error
}

// probeKind is a registered health-check type.
type probeKind struct {
	// validate checks the fields the type needs.
	validate func(hc *nodeproto.HealthCheck) error
	// new makes the probe; run executes a command as the service's hooks.
	new func(hc *nodeproto.HealthCheck, run runFunc) Probe
}

// runFunc runs a shell command as the service's user, with its
// environment, in dir.
type runFunc func(ctx context.Context, dir, script string) error

var probeKinds = map[string]probeKind{}

// registerProbe adds a health-check type; call it from init.
func registerProbe(name string, k probeKind) {
	if _, dup := probeKinds[name]; dup {
		panic("node: health check registered twice: " + name)
	}
	probeKinds[name] = k
}

func validateHealth(hc *nodeproto.HealthCheck) error {
	k, ok := probeKinds[hc.Type]
	if !ok {
		return fmt.Errorf("type %q: want one of %s", hc.Type, strings.Join(sortedKeys(probeKinds), ", "))
	}
	if hc.Interval < 0 || hc.Timeout < 0 || hc.MinHealthyTime < 0 || hc.HealthyDeadline < 0 || hc.HealthyThreshold < 0 {
		return errors.New("interval, timeout, healthy_threshold, min_healthy_time and healthy_deadline must not be negative")
	}
	// {container_ip} (docker run mode) is known only when the check runs.
	return k.validate(withContainerIP(hc, "127.0.0.1"))
}

// waitHealthy probes until the check passes healthy_threshold times in a
// row and then stays healthy for min_healthy_time, or fails when
// healthy_deadline passes first.
func waitHealthy(ctx context.Context, hc *nodeproto.HealthCheck, run runFunc) error {
	if err := validateHealth(hc); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	interval := or(hc.Interval.Std(), DefaultHealthInterval)
	timeout := or(hc.Timeout.Std(), DefaultHealthTimeout)
	deadline := or(hc.HealthyDeadline.Std(), DefaultHealthyDeadline)
	threshold := max(hc.HealthyThreshold, 1)
	p := probeKinds[hc.Type].new(hc, run)

	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var (
		passes  int
		since   time.Time
		lastErr error
	)
	for {
		pctx, pcancel := context.WithTimeout(ctx, timeout)
		err := p.Probe(pctx)
		pcancel()
		if err == nil {
			passes++
			if passes >= threshold {
				if since.IsZero() {
					since = time.Now()
				}
				if time.Since(since) >= hc.MinHealthyTime.Std() {
					return nil
				}
			}
		} else {
			passes, since, lastErr = 0, time.Time{}, err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if lastErr == nil {
				lastErr = errors.New("not yet healthy long enough")
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("health check %s: not healthy within healthy_deadline %s: %w", hc.Type, deadline, lastErr)
			}
			return fmt.Errorf("health check %s: %w", hc.Type, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
