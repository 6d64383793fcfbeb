package program

import "github.com/ferryci/ferry/internal/compiler"

// FromMetadata is the Input of a build described by m, for the config
// file named config; params are a manual build's parameters. trusted is
// the repository's trust, which Drone exposes as ctx.repo.trusted.
func FromMetadata(m *compiler.Metadata, params map[string]string, config string, trusted bool) Input {
	source := m.Commit.SourceBranch
	if source == "" {
		source = m.Commit.Branch
	}
	return Input{
		Repo: Repo{
			UID: m.Repo.Slug, Name: m.Repo.Name, Namespace: m.Repo.Namespace, Slug: m.Repo.Slug,
			HTTPURL: m.Repo.HTTPURL, SSHURL: m.Repo.SSHURL, Link: m.Repo.Link, Branch: m.Repo.Branch,
			Config: config, Private: m.Repo.Private, Visibility: m.Repo.Visibility, Active: true, Trusted: trusted,
		},
		Build: Build{
			Event: m.Build.Event, Action: m.Build.Action, Cron: m.Build.Cron, Environment: m.Build.Target,
			Link: m.Commit.Link, Branch: m.Commit.Branch, Source: source, Target: m.Commit.Branch,
			Before: m.Commit.Before, After: m.Commit.SHA, Ref: m.Commit.Ref, Commit: m.Commit.SHA,
			Title: m.Commit.PullRequestTitle, Message: m.Commit.Message, AuthorLogin: m.Commit.Author,
			AuthorName: m.Commit.AuthorName, AuthorEmail: m.Commit.AuthorEmail, AuthorAvatar: m.Commit.AuthorAvatar,
			Sender: m.Build.Trigger,
		},
		Params: params,
	}
}
