package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/pipeline/program"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
)

// ErrNoConfig means a commit has no pipeline file.
var ErrNoConfig = errors.New("no pipeline file")

// Source reads one repository at a commit, for creating a build. The
// server implements it over its git mirrors, with the repo's credential.
type Source interface {
	// Commit describes commit sha (its message and author).
	Commit(ctx context.Context, sha string) (*forge.Commit, error)
	// ReadConfig reads the pipeline file at sha: path when it is set,
	// otherwise the first of the default files. Its error wraps
	// ErrNoConfig when there is none, is a *pipeline.SizeError when the
	// file is too large, and wraps forge.ErrAuth when the repository
	// refused the credential.
	ReadConfig(ctx context.Context, sha, path string) (file string, data []byte, err error)
	// ReadFile reads one file at sha, for what a pipeline program loads.
	ReadFile(ctx context.Context, sha, path string) ([]byte, error)
	// ListDir lists the file names in directory dir at sha.
	ListDir(ctx context.Context, sha, dir string) ([]string, error)
	// ChangedPaths lists the files changed between two commits.
	ChangedPaths(ctx context.Context, before, after string) ([]string, error)
}

// CreateOptions are what creating a build from an event needs from the
// server around the Lifecycle.
type CreateOptions struct {
	// Source reads the repository (required).
	Source Source
	// System is the server as builds see it (DRONE_SYSTEM_*).
	System compiler.System
	// Configured, when set, is called with the parsed configuration of a
	// build about to be planned (the server stores the services a push
	// declares).
	Configured func(ctx context.Context, repo *store.Repo, b *store.Build, cfg *pipeline.Config)
}

// CreateFromEvent creates the build a trigger event asks for. It reads the
// pipeline file at ev.SHA (the repo's config path, or the first default
// file), runs it when it is a program (.drone.star, .drone.jsonnet,
// Woodpecker's workflows), substitutes ${VARIABLES}, and selects the
// pipelines whose trigger matches. With no pipeline file, or no matching
// pipeline, it creates nothing and returns nil, nil. A file that does not
// parse, or asks for what its repo is not trusted with, gives a build in
// status error whose Error holds the problem, so that it is visible.
//
// The build, its pipelines and steps, and one job per pipeline are stored
// in one transaction (see Create): jobs of pipelines without dependencies
// are pending, the others blocked until their dependencies finish. A pull
// request from a fork waits for approval: its build and every job are
// blocked.
func (l *Lifecycle) CreateFromEvent(ctx context.Context, repo *store.Repo, ev *trigger.Event, o CreateOptions) (*store.Build, error) {
	if ev == nil || ev.SHA == "" {
		return nil, errors.New("creating build: the event names no commit")
	}
	remote := repo.GitURL
	if ev.CloneURL != "" {
		remote = ev.CloneURL
	}
	b := &store.Build{
		RepoID: repo.ID, Event: ev.Kind, Ref: ev.Ref, Branch: ev.Branch, SourceBranch: ev.SourceBranch,
		Commit: ev.SHA, Before: ev.Before, Message: ev.Message, Author: cmp.Or(ev.AuthorLogin, ev.AuthorName),
		AuthorEmail: ev.AuthorEmail, Sender: ev.Sender, PullRequest: int64(ev.PullRequest), Fork: ev.Fork,
		Cron: ev.Cron, Params: ev.Params, Status: store.StatusPending,
	}
	if b.Event == "" {
		b.Event = store.EventPush
	}
	src := o.Source
	if b.Message == "" || b.Author == "" {
		// Polled commits, crons and manual builds come without them.
		if c, err := src.Commit(ctx, ev.SHA); err == nil {
			b.Message = cmp.Or(b.Message, c.Message)
			b.Author = cmp.Or(b.Author, c.Author.Name)
			b.AuthorEmail = cmp.Or(b.AuthorEmail, c.Author.Email)
			if ev.AuthorName == "" {
				ev.AuthorName = c.Author.Name
			}
		} else if ctx.Err() != nil {
			return nil, fmt.Errorf("creating build: %w", ctx.Err())
		}
	}
	meta := Metadata(repo, b, ev, o.System)

	file, data, err := src.ReadConfig(ctx, ev.SHA, repo.ConfigPath)
	if errors.Is(err, ErrNoConfig) {
		l.log.Info("no pipeline file; not building", "repo", repo.Slug, "sha", ev.SHA, "err", err)
		return nil, nil
	}
	var tooLarge *pipeline.SizeError
	if errors.As(err, &tooLarge) {
		return l.createFailed(ctx, repo, b, err.Error())
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
			Read:  func(p string) ([]byte, error) { return src.ReadFile(ctx, ev.SHA, p) },
			List:  func(dir string) ([]string, error) { return src.ListDir(ctx, ev.SHA, dir) },
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("creating build: %w", ctx.Err())
			}
			return l.createFailed(ctx, repo, b, err.Error())
		}
		file = program.GeneratedName(file)
	}
	cfg, err := parseConfig(file, data, &meta, ev.Params)
	if err != nil {
		return l.createFailed(ctx, repo, b, err.Error())
	}
	b.Warnings = append(b.Warnings, convWarnings...)
	for _, w := range cfg.Warnings {
		b.Warnings = append(b.Warnings, w.Error())
	}
	if o.Configured != nil {
		o.Configured(ctx, repo, b, cfg)
	}
	if needsPaths(cfg) && ev.ChangedPaths == nil && b.Event == store.EventPush && b.Before != "" && strings.Trim(b.Before, "0") != "" {
		if paths, err := src.ChangedPaths(ctx, b.Before, ev.SHA); err == nil {
			meta.Build.ChangedPaths = paths
		} else {
			l.log.Warn("listing changed files; paths conditions are ignored", "repo", repo.Slug, "sha", ev.SHA, "err", err)
		}
	}

	plan := &Plan{Repo: repo, Build: b, File: file, Data: data, Config: cfg, Metadata: meta,
		Params: ev.Params, CloneURL: remote}
	pls, err := plan.Pipelines()
	var untrusted *UntrustedError
	switch {
	case errors.Is(err, ErrNothingToBuild):
		l.log.Info("no pipeline matches; not building", "repo", repo.Slug, "event", b.Event, "ref", b.Ref)
		return nil, nil
	case errors.As(err, &untrusted):
		return l.createFailed(ctx, repo, b, untrusted.Error())
	case err != nil:
		return nil, fmt.Errorf("creating build: %w", err)
	}
	if err := l.Create(ctx, b, pls); err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	l.log.Info("build created", "repo", repo.Slug, "build", b.Number, "event", b.Event, "ref", b.Ref,
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

// createFailed stores a build that ended in error before it ran, so that
// the problem is visible.
func (l *Lifecycle) createFailed(ctx context.Context, repo *store.Repo, b *store.Build, reason string) (*store.Build, error) {
	now := time.Now()
	b.Status, b.Error, b.Started, b.Finished = store.StatusError, reason, now, now
	if err := l.Create(ctx, b, nil); err != nil {
		return nil, fmt.Errorf("creating build: %w", err)
	}
	l.log.Info("build failed before it ran", "repo", repo.Slug, "build", b.Number, "err", reason)
	return b, nil
}

// SystemFor describes a server by its public URL and version, as builds
// see it (DRONE_SYSTEM_PROTO, _HOST, _VERSION).
func SystemFor(publicURL, version string) compiler.System {
	pub, _ := url.Parse(publicURL)
	if pub == nil {
		return compiler.System{Version: version}
	}
	return compiler.System{Proto: pub.Scheme, Host: pub.Host, Version: version}
}

// Metadata is the build context of b, for ${VAR} substitution, trigger
// matching and the agent. ev may be nil.
func Metadata(repo *store.Repo, b *store.Build, ev *trigger.Event, sys compiler.System) compiler.Metadata {
	ns, name, _ := strings.Cut(repo.Slug, "/")
	m := compiler.Metadata{
		Repo: compiler.Repo{Slug: repo.Slug, Namespace: ns, Name: name, Branch: repo.DefaultBranch,
			HTTPURL: repo.GitURL, SCM: "git", Private: true, Visibility: "private"},
		Build: compiler.Build{Number: b.Number, Parent: b.Parent, Event: b.Event, Trigger: b.Sender,
			Cron: b.Cron, Created: b.Created, Started: b.Started},
		Commit: compiler.Commit{SHA: b.Commit, Before: b.Before, Ref: b.Ref, Branch: b.Branch,
			SourceBranch: b.SourceBranch, Message: b.Message, Author: b.Author, AuthorName: b.Author,
			AuthorEmail: b.AuthorEmail, PullRequest: int(b.PullRequest)},
		System: sys,
	}
	if ev != nil {
		m.Build.Action, m.Build.Target, m.Build.ChangedPaths = ev.Action, ev.Target, ev.ChangedPaths
		m.Commit.Link, m.Commit.AuthorAvatar, m.Commit.PullRequestTitle = ev.Link, ev.AuthorAvatar, ev.PullRequestTitle
		m.Commit.Author = cmp.Or(ev.AuthorLogin, b.Author)
		m.Commit.AuthorName = cmp.Or(ev.AuthorName, b.Author)
	}
	if m.Commit.SourceBranch == "" {
		m.Commit.SourceBranch = m.Commit.Branch
	}
	return m
}
