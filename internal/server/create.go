package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/build"
	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/pipeline/program"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

// Version is ferry's version as builds see it (DRONE_SYSTEM_VERSION);
// cmd/ferry sets it.
var Version = "dev"

// jobPayload is what a job carries for its lease; see build.JobPayload.
type jobPayload = build.JobPayload

func decodePayload(j *store.Job) (*jobPayload, error) { return build.DecodePayload(j) }

// CreateBuild implements trigger.Builder. It reads the pipeline file at
// ev.SHA (the repo's config path, or the first of pipeline.DefaultFiles),
// runs it when it is a program (.drone.star, .drone.jsonnet), substitutes
// ${VARIABLES}, and selects the pipelines whose
// trigger matches. With no pipeline file, or no matching pipeline, it
// creates nothing and returns nil, nil. A file that does not parse gives a
// build in status error whose Error holds the problems.
//
// The build, its pipelines and steps, and one job per pipeline are stored
// in one transaction: jobs of pipelines without dependencies are pending,
// the others blocked until their dependencies finish. A pull request from
// a fork waits for approval: its build and every job are blocked.
func (s *Server) CreateBuild(ctx context.Context, repo *store.Repo, ev *trigger.Event) (*store.Build, error) {
	if ev == nil || ev.SHA == "" {
		return nil, errors.New("creating build: the event names no commit")
	}
	remote := repo.GitURL
	if ev.CloneURL != "" {
		remote = ev.CloneURL
	}
	b := &store.Build{
		RepoID: repo.ID, Event: ev.Kind, Ref: ev.Ref, Branch: ev.Branch, SourceBranch: ev.SourceBranch,
		Commit: ev.SHA, Before: ev.Before, Message: ev.Message, Author: firstOf(ev.AuthorLogin, ev.AuthorName),
		AuthorEmail: ev.AuthorEmail, Sender: ev.Sender, PullRequest: int64(ev.PullRequest), Fork: ev.Fork,
		Cron: ev.Cron, Params: ev.Params, Status: store.StatusPending,
	}
	if b.Event == "" {
		b.Event = store.EventPush
	}
	auth, err := s.gitOptions(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	if b.Message == "" || b.Author == "" {
		// Polled commits, crons and manual builds come without them.
		if c, err := s.git.commit(ctx, remote, ev.SHA, auth...); err == nil {
			b.Message = firstOf(b.Message, c.Message)
			b.Author = firstOf(b.Author, c.Author.Name)
			b.AuthorEmail = firstOf(b.AuthorEmail, c.Author.Email)
			if ev.AuthorName == "" {
				ev.AuthorName = c.Author.Name
			}
		} else if ctx.Err() != nil {
			return nil, fmt.Errorf("creating build: %w", ctx.Err())
		}
	}
	meta := s.metadata(repo, b, ev)

	file, data, err := s.git.readConfig(ctx, remote, ev.SHA, repo.ConfigPath, s.cfg.MaxConfigSize, auth...)
	if errors.Is(err, errNoConfig) {
		s.log.Info("no pipeline file; not building", "repo", repo.Slug, "sha", ev.SHA, "err", err)
		return nil, nil
	}
	var tooLarge *pipeline.SizeError
	if errors.As(err, &tooLarge) {
		return s.createFailedBuild(ctx, repo, b, err.Error())
	}
	if errors.Is(err, forge.ErrAuth) {
		return nil, fmt.Errorf("creating build: reading pipeline file: %w; the repository needs a credential, "+
			"or its credential was refused: set one with `ferry repo credential set %s`", err, repo.Slug)
	}
	if err != nil {
		return nil, fmt.Errorf("creating build: reading pipeline file: %w", err)
	}
	var convWarnings []string
	if program.Kind(file) != "" {
		// Run .drone.star and .drone.jsonnet, and convert Woodpecker
		// workflows, here, once: the jobs carry the YAML they generate.
		data, convWarnings, err = program.Convert(ctx, file, data, program.Options{
			Input: program.FromMetadata(&meta, ev.Params, file, repo.Trusted),
			Read: func(p string) ([]byte, error) {
				return s.git.readFile(ctx, remote, ev.SHA, p, auth...)
			},
			List: func(dir string) ([]string, error) {
				return s.git.listDir(ctx, remote, ev.SHA, dir, auth...)
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("creating build: %w", ctx.Err())
			}
			return s.createFailedBuild(ctx, repo, b, err.Error())
		}
		file = program.GeneratedName(file)
	}
	cfg, err := parseConfig(file, data, &meta, ev.Params)
	if err != nil {
		return s.createFailedBuild(ctx, repo, b, err.Error())
	}
	b.Warnings = append(b.Warnings, convWarnings...)
	for _, w := range cfg.Warnings {
		b.Warnings = append(b.Warnings, w.Error())
	}
	s.syncServices(ctx, repo, b, cfg)
	if needsPaths(cfg) && ev.ChangedPaths == nil && b.Event == store.EventPush && b.Before != "" && strings.Trim(b.Before, "0") != "" {
		if paths, err := s.git.changedPaths(ctx, remote, b.Before, ev.SHA, auth...); err == nil {
			meta.Build.ChangedPaths = paths
		} else {
			s.log.Warn("listing changed files; paths conditions are ignored", "repo", repo.Slug, "sha", ev.SHA, "err", err)
		}
	}

	plan := &build.Plan{Repo: repo, Build: b, File: file, Data: data, Config: cfg, Metadata: meta,
		Params: ev.Params, CloneURL: remote}
	pls, err := plan.Pipelines()
	var untrusted *build.UntrustedError
	switch {
	case errors.Is(err, build.ErrNothingToBuild):
		s.log.Info("no pipeline matches; not building", "repo", repo.Slug, "event", b.Event, "ref", b.Ref)
		return nil, nil
	case errors.As(err, &untrusted):
		return s.createFailedBuild(ctx, repo, b, untrusted.Error())
	case err != nil:
		return nil, fmt.Errorf("creating build: %w", err)
	}
	if err := s.builds.Create(ctx, b, pls); err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	s.log.Info("build created", "repo", repo.Slug, "build", b.Number, "event", b.Event, "ref", b.Ref,
		"sha", b.Commit, "pipelines", len(pls), "approval", b.Approval)
	return b, nil
}

// parseConfig substitutes ${VARIABLES} (the build's variables and the
// manual build's parameters) in a pipeline file and parses it.
func parseConfig(file string, data []byte, meta *compiler.Metadata, params map[string]string) (*pipeline.Config, error) {
	env := compiler.Environ(meta)
	maps.Copy(env, params)
	expanded, err := pipeline.Expand(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	// Parse refuses a file without pipelines, as ferry lint and ferry exec
	// do.
	return pipeline.Parse(file, expanded)
}

// expandConfig returns the pipeline file as the agent receives it; see
// build.ExpandConfig.
func expandConfig(p *jobPayload) (string, error) { return build.ExpandConfig(p) }

// needsPaths reports whether any trigger or step condition of cfg looks at
// the changed files.
func needsPaths(cfg *pipeline.Config) bool {
	for _, p := range cfg.Pipelines {
		if p.Trigger.UsesPaths() {
			return true
		}
		for _, st := range p.Steps {
			if st.When.UsesPaths() {
				return true
			}
		}
	}
	return false
}

// createFailedBuild stores a build that ended in error before it ran (its
// pipeline file does not parse, or asks for what its repo is not trusted
// with), so that the problem is visible.
func (s *Server) createFailedBuild(ctx context.Context, repo *store.Repo, b *store.Build, reason string) (*store.Build, error) {
	now := time.Now()
	b.Status, b.Error, b.Started, b.Finished = store.StatusError, reason, now, now
	if err := s.builds.Create(ctx, b, nil); err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	s.log.Info("build failed before it ran", "repo", repo.Slug, "build", b.Number, "err", reason)
	return b, nil
}

// metadata is the build context of b, for ${VAR} substitution, trigger
// matching and the agent.
func (s *Server) metadata(repo *store.Repo, b *store.Build, ev *trigger.Event) compiler.Metadata {
	ns, name, _ := strings.Cut(repo.Slug, "/")
	pub, _ := url.Parse(s.cfg.publicURL())
	m := compiler.Metadata{
		Repo: compiler.Repo{Slug: repo.Slug, Namespace: ns, Name: name, Branch: repo.DefaultBranch,
			HTTPURL: repo.GitURL, SCM: "git", Private: true, Visibility: "private"},
		Build: compiler.Build{Number: b.Number, Parent: b.Parent, Event: b.Event, Trigger: b.Sender,
			Cron: b.Cron, Created: b.Created, Started: b.Started},
		Commit: compiler.Commit{SHA: b.Commit, Before: b.Before, Ref: b.Ref, Branch: b.Branch,
			SourceBranch: b.SourceBranch, Message: b.Message, Author: b.Author, AuthorName: b.Author,
			AuthorEmail: b.AuthorEmail, PullRequest: int(b.PullRequest)},
		System: compiler.System{Proto: pub.Scheme, Host: pub.Host, Version: Version},
	}
	if ev != nil {
		m.Build.Action, m.Build.Target, m.Build.ChangedPaths = ev.Action, ev.Target, ev.ChangedPaths
		m.Commit.Link, m.Commit.AuthorAvatar, m.Commit.PullRequestTitle = ev.Link, ev.AuthorAvatar, ev.PullRequestTitle
		m.Commit.Author = firstOf(ev.AuthorLogin, b.Author)
		m.Commit.AuthorName = firstOf(ev.AuthorName, b.Author)
	}
	if m.Commit.SourceBranch == "" {
		m.Commit.SourceBranch = m.Commit.Branch
	}
	return m
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
