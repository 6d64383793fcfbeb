package node

import (
	"context"
)

// Runner runs the app of one service. Calls on a Runner are made one at a
// time, by the service's goroutine.
type Runner interface {
	// Start runs the release in dir when the node starts; dir is "" when
	// the service has no release yet.
	Start(ctx context.Context, dir string) error
	// Switch makes the release in dir the running one; `current` already
	// points to it.
	Switch(ctx context.Context, dir string) error
	// Stop stops what Start and Switch started, when the node stops.
	Stop(ctx context.Context) error
}

// runMode is a registered way to run an app.
type runMode struct {
	validate func(rc *RunConfig) error
	new      func(s *service) Runner
}

var runModes = map[string]runMode{}

// registerRunMode adds a run mode; call it from init.
func registerRunMode(name string, m runMode) {
	if _, dup := runModes[name]; dup {
		panic("node: run mode registered twice: " + name)
	}
	runModes[name] = m
}

func init() {
	registerRunMode("none", runMode{
		validate: func(*RunConfig) error { return nil },
		new:      func(*service) Runner { return noRunner{} },
	})
}

// noRunner leaves running the app to the hooks.
type noRunner struct{}

func (noRunner) Start(context.Context, string) error  { return nil }
func (noRunner) Switch(context.Context, string) error { return nil }
func (noRunner) Stop(context.Context) error           { return nil }
