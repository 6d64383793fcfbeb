// Package metadata holds the build context a pipeline runs with: the
// repository, the build's trigger, the commit and the ferry installation.
// It is a leaf package: the compiler derives variables from it, the
// server fills it in, and the agent protocol (internal/rpc) carries it,
// without any of them importing another.
package metadata

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Metadata describes the build a pipeline runs for: the repository, the
// commit and the trigger. It is the source of the DRONE_*, CI_* and FERRY_*
// variables and of the values that `when` and `trigger` are matched against.
type Metadata struct {
	Repo   Repo
	Build  Build
	Commit Commit
	System System
}

// Repo describes the repository.
type Repo struct {
	// Slug is "namespace/name".
	Slug       string
	Namespace  string
	Name       string
	Link       string
	Branch     string // default branch
	HTTPURL    string
	SSHURL     string
	SCM        string
	Private    bool
	Visibility string
}

// Build describes the trigger.
type Build struct {
	Number int64
	Parent int64
	// Event is push, pull_request, tag, promote, rollback, cron or custom.
	Event   string
	Action  string
	Trigger string
	// Target is the deploy target of promote and rollback events.
	Target  string
	Cron    string
	Created time.Time
	Started time.Time
	// Instance is the host name of the machine that runs the pipeline
	// (DRONE_STAGE_MACHINE). The `instance` condition is matched against
	// System.Host instead, as in Drone.
	Instance string
	// ChangedPaths are the files the trigger changed, for `paths`.
	ChangedPaths []string
}

// Commit describes the commit being built.
type Commit struct {
	SHA    string
	Before string
	Ref    string
	// Branch is the target branch (the branch pushed to, or a pull
	// request's base branch).
	Branch       string
	SourceBranch string
	Message      string
	Link         string
	Author       string
	AuthorName   string
	AuthorEmail  string
	AuthorAvatar string
	// PullRequest is the pull request number, 0 if none.
	PullRequest      int
	PullRequestTitle string
}

// System describes the ferry installation.
type System struct {
	Proto   string
	Host    string
	Version string
}

// Tag is the tag name when Ref is a tag.
func (m *Metadata) Tag() string {
	if t, ok := strings.CutPrefix(m.Commit.Ref, "refs/tags/"); ok {
		return t
	}
	return ""
}

var pullNumber = regexp.MustCompile(`\d+`)

// PullRequest returns the pull request number, from the field or the ref
// (refs/pull/N/head, refs/merge-requests/N/head).
func (m *Metadata) PullRequest() string {
	if m.Commit.PullRequest > 0 {
		return strconv.Itoa(m.Commit.PullRequest)
	}
	if m.Build.Event == "pull_request" {
		return pullNumber.FindString(m.Commit.Ref)
	}
	return ""
}
