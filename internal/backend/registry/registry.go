// Package registry builds backends by name. It is the one place that
// knows every backend implementation: the agent and `ferry exec` open
// their backends through it, and backend.ForType says which one a
// pipeline needs. A new backend is one package and one entry in openers.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/docker"
	"github.com/ferryci/ferry/internal/backend/local"
)

// Options configure the backends Open builds.
type Options struct {
	// Logger receives the backends' diagnostics; nil discards them.
	Logger *slog.Logger
	// TempDir is where the local backend creates per-pipeline
	// directories; empty means os.TempDir().
	TempDir string
	// StateDir, when set, is where the local backend records its steps'
	// process groups (local.Options.StateDir); Open first kills what a
	// crashed process left running there (local.Cleanup).
	StateDir string
	// User is the account the local backend runs host steps as; nil
	// means the current one.
	User *local.User
	// DockerHint is appended to the error when the Docker Engine does not
	// answer, to say what else the user can do.
	DockerHint string
}

// opener builds one backend; close releases what it holds.
type opener func(ctx context.Context, o Options) (b backend.Backend, close func(), err error)

// openers are the backends by name.
var openers = map[string]opener{
	backend.Docker: openDocker,
	backend.Local:  openLocal,
}

// Names returns the names of the backends Open builds, sorted.
func Names() []string {
	names := make([]string, 0, len(openers))
	for n := range openers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Open builds the backend called name. Docker connects to the Engine the
// environment names (DOCKER_HOST, ...), checks that it answers, and
// removes what crashed runs on this host left behind. Call close when no
// pipeline runs on the backend any more.
func Open(ctx context.Context, name string, o Options) (b backend.Backend, close func(), err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	open, ok := openers[name]
	if !ok {
		return nil, nil, fmt.Errorf("backend %q is not one of %s", name, strings.Join(Names(), ", "))
	}
	return open(ctx, o)
}

func openLocal(_ context.Context, o Options) (backend.Backend, func(), error) {
	if o.StateDir != "" {
		if err := local.Cleanup(o.StateDir, o.Logger); err != nil {
			o.Logger.Warn("killing the steps an earlier agent left running", "err", err)
		}
	}
	return local.New(local.Options{Logger: o.Logger, TempDir: o.TempDir, User: o.User, StateDir: o.StateDir}), func() {}, nil
}

func openDocker(ctx context.Context, o Options) (backend.Backend, func(), error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = cli.Ping(pctx)
	cancel()
	if err != nil {
		_ = cli.Close()
		hint := "is the Docker Engine running?"
		if o.DockerHint != "" {
			hint += " " + o.DockerHint
		}
		return nil, nil, fmt.Errorf("connecting to docker at %s: %w (%s)", cli.DaemonHost(), err, hint)
	}
	if err := docker.Cleanup(ctx, cli, o.Logger); err != nil {
		o.Logger.Warn("removing leftovers of earlier runs", "err", err)
	}
	return docker.New(cli, docker.Options{Logger: o.Logger}), func() { _ = cli.Close() }, nil
}
