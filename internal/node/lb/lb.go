// Package lb takes a node out of its load balancer around an update and
// puts it back: drivers are registered by name, so a new balancer is one
// file and one Register call. "haproxy" speaks HAProxy's runtime API;
// "hook" runs two commands, for any other balancer.
package lb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Driver drains one node's server in a balancer and re-enables it. Calls
// on one Driver are made one at a time.
type Driver interface {
	// Drain stops new requests to the server and waits until the requests
	// in flight have ended, at most Config.DrainTimeout; past it, it
	// returns an error wrapping ErrDrainTimeout, and the server stays
	// drained.
	Drain(ctx context.Context) error
	// Ready lets requests reach the server again and waits until the
	// balancer sends them, at most Config.ReadyTimeout.
	Ready(ctx context.Context) error
}

// Checker is implemented by drivers that can read whether the balancer
// would send the node requests. The node asks it, at each poll of the
// server, for a service the server keeps out of rotation, and drains it
// again when the balancer forgot (a reload of HAProxy's configuration
// puts every server back in rotation).
type Checker interface {
	// InRotation reports whether the server is neither drained nor in
	// maintenance.
	InRotation(ctx context.Context) (bool, error)
}

// ErrDrainTimeout is returned by Drain when requests were still in flight
// at the timeout.
var ErrDrainTimeout = errors.New("requests still in flight at the drain timeout")

// Config selects and configures a driver.
type Config struct {
	// Driver is the registered name: "haproxy" or "hook".
	Driver string `yaml:"driver"`
	// Socket is HAProxy's stats socket: a unix socket path, or host:port
	// for a TCP listener.
	Socket string `yaml:"socket"`
	// Backend and Server name this node's server in HAProxy.
	Backend string `yaml:"backend"`
	Server  string `yaml:"server"`
	// Drain and Ready are the hook driver's shell commands.
	Drain string `yaml:"drain"`
	Ready string `yaml:"ready"`
	// DrainTimeout bounds the wait for requests in flight (default 30s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// ReadyTimeout bounds the wait for the server to take requests
	// again (default 30s).
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
}

// Exec runs a shell command as the node runs hooks (user, environment).
type Exec func(ctx context.Context, script string) error

// NewFunc creates a driver.
type NewFunc func(c Config, run Exec) (Driver, error)

var (
	mu      sync.RWMutex
	drivers = map[string]NewFunc{}
)

// Register adds a driver under name; call it from init.
func Register(name string, f NewFunc) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("lb: driver registered twice: " + name)
	}
	drivers[name] = f
}

// Names lists the registered drivers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(drivers))
}

// New creates the driver c names.
func New(c Config, run Exec) (Driver, error) {
	mu.RLock()
	f := drivers[c.Driver]
	mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("lb.driver %q: want one of %s", c.Driver, strings.Join(Names(), ", "))
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	return f(c, run)
}
