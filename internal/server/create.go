package server

import (
	"context"
	"fmt"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

// Version is ferry's version as builds see it (DRONE_SYSTEM_VERSION);
// cmd/ferry sets it.
var Version = "dev"

// jobPayload is what a job carries for its lease; see build.JobPayload.
type jobPayload = build.JobPayload

func decodePayload(j *store.Job) (*jobPayload, error) { return build.DecodePayload(j) }

// expandConfig returns the pipeline file as the agent receives it; see
// build.ExpandConfig.
func expandConfig(p *jobPayload) (string, error) { return build.ExpandConfig(p) }

// CreateBuild implements trigger.Builder: the build domain creates the
// build (build.Lifecycle.CreateFromEvent), reading the repository through
// the server's git mirrors with the repo's credential.
func (s *Server) CreateBuild(ctx context.Context, repo *store.Repo, ev *trigger.Event) (*store.Build, error) {
	auth, err := s.gitOptions(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	remote := repo.GitURL
	if ev != nil && ev.CloneURL != "" {
		remote = ev.CloneURL
	}
	return s.builds.CreateFromEvent(ctx, repo, ev, build.CreateOptions{
		Source:     &gitSource{g: s.git, remote: remote, auth: auth, max: s.cfg.MaxConfigSize},
		System:     build.SystemFor(s.cfg.publicURL(), Version),
		Configured: s.syncServices,
	})
}

// gitSource is a build.Source over the server's git mirrors: one remote,
// with the repo's credential.
type gitSource struct {
	g      *gitReader
	remote string
	auth   []forge.GitOption
	max    int64
}

func (s *gitSource) Commit(ctx context.Context, sha string) (*forge.Commit, error) {
	return s.g.commit(ctx, s.remote, sha, s.auth...)
}

func (s *gitSource) ReadConfig(ctx context.Context, sha, path string) (string, []byte, error) {
	return s.g.readConfig(ctx, s.remote, sha, path, s.max, s.auth...)
}

func (s *gitSource) ReadFile(ctx context.Context, sha, path string) ([]byte, error) {
	return s.g.readFile(ctx, s.remote, sha, path, s.auth...)
}

func (s *gitSource) ListDir(ctx context.Context, sha, dir string) ([]string, error) {
	return s.g.listDir(ctx, s.remote, sha, dir, s.auth...)
}

func (s *gitSource) ChangedPaths(ctx context.Context, before, after string) ([]string, error) {
	return s.g.changedPaths(ctx, s.remote, before, after, s.auth...)
}
