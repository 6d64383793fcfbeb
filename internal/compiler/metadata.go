package compiler

import (
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-semver/semver"

	"github.com/ferryci/ferry/internal/metadata"
)

// The build context types live in internal/metadata, a leaf package the
// agent protocol shares; these aliases keep the compiler's API in one
// place.
type (
	// Metadata describes the build a pipeline runs for; see
	// metadata.Metadata.
	Metadata = metadata.Metadata
	// Repo describes the repository.
	Repo = metadata.Repo
	// Build describes the trigger.
	Build = metadata.Build
	// Commit describes the commit being built.
	Commit = metadata.Commit
	// System describes the ferry installation.
	System = metadata.System
)

func unix(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// Environ returns the build-level variables shared by every step of every
// pipeline: the DRONE_* set Drone defines, the CI_* set that Drone and
// Woodpecker define, and a FERRY_* twin of every DRONE_* variable. These are
// also the variables available to ${VAR} substitution in the YAML.
func Environ(m *Metadata) map[string]string {
	tag := m.Tag()
	pr := m.PullRequest()
	link := ""
	if m.System.Host != "" && m.Repo.Slug != "" {
		link = m.System.Proto + "://" + m.System.Host + "/" + m.Repo.Slug + "/" + strconv.FormatInt(m.Build.Number, 10)
	}
	drone := map[string]string{
		"DRONE_SYSTEM_PROTO":         m.System.Proto,
		"DRONE_SYSTEM_HOST":          m.System.Host,
		"DRONE_SYSTEM_HOSTNAME":      m.System.Host,
		"DRONE_SYSTEM_VERSION":       m.System.Version,
		"DRONE_REPO":                 m.Repo.Slug,
		"DRONE_REPO_SCM":             m.Repo.SCM,
		"DRONE_REPO_OWNER":           m.Repo.Namespace,
		"DRONE_REPO_NAMESPACE":       m.Repo.Namespace,
		"DRONE_REPO_NAME":            m.Repo.Name,
		"DRONE_REPO_LINK":            m.Repo.Link,
		"DRONE_REPO_BRANCH":          m.Repo.Branch,
		"DRONE_REMOTE_URL":           m.Repo.HTTPURL,
		"DRONE_GIT_HTTP_URL":         m.Repo.HTTPURL,
		"DRONE_GIT_SSH_URL":          m.Repo.SSHURL,
		"DRONE_REPO_VISIBILITY":      m.Repo.Visibility,
		"DRONE_REPO_PRIVATE":         strconv.FormatBool(m.Repo.Private),
		"DRONE_BRANCH":               m.Commit.Branch,
		"DRONE_SOURCE_BRANCH":        m.Commit.SourceBranch,
		"DRONE_TARGET_BRANCH":        m.Commit.Branch,
		"DRONE_COMMIT":               m.Commit.SHA,
		"DRONE_COMMIT_SHA":           m.Commit.SHA,
		"DRONE_COMMIT_BEFORE":        m.Commit.Before,
		"DRONE_COMMIT_AFTER":         m.Commit.SHA,
		"DRONE_COMMIT_REF":           m.Commit.Ref,
		"DRONE_COMMIT_BRANCH":        m.Commit.Branch,
		"DRONE_COMMIT_LINK":          m.Commit.Link,
		"DRONE_COMMIT_MESSAGE":       m.Commit.Message,
		"DRONE_COMMIT_AUTHOR":        m.Commit.Author,
		"DRONE_COMMIT_AUTHOR_NAME":   m.Commit.AuthorName,
		"DRONE_COMMIT_AUTHOR_EMAIL":  m.Commit.AuthorEmail,
		"DRONE_COMMIT_AUTHOR_AVATAR": m.Commit.AuthorAvatar,
		"DRONE_BUILD_NUMBER":         strconv.FormatInt(m.Build.Number, 10),
		"DRONE_BUILD_PARENT":         strconv.FormatInt(m.Build.Parent, 10),
		"DRONE_BUILD_EVENT":          m.Build.Event,
		"DRONE_BUILD_ACTION":         m.Build.Action,
		"DRONE_BUILD_TRIGGER":        m.Build.Trigger,
		"DRONE_BUILD_STATUS":         "success",
		"DRONE_BUILD_CREATED":        unix(m.Build.Created),
		"DRONE_BUILD_STARTED":        unix(m.Build.Started),
		"DRONE_BUILD_FINISHED":       unix(time.Time{}),
		"DRONE_BUILD_LINK":           link,
		"DRONE_DEPLOY_TO":            m.Build.Target,
		"DRONE_CRON":                 m.Build.Cron,
	}
	if tag != "" {
		drone["DRONE_TAG"] = tag
		for k, v := range semverEnv(tag) {
			drone[k] = v
		}
	}
	if pr != "" {
		drone["DRONE_PULL_REQUEST"] = pr
		drone["DRONE_PULL_REQUEST_TITLE"] = m.Commit.PullRequestTitle
	}
	env := make(map[string]string, len(drone)*3)
	env["CI"] = "true"
	env["DRONE"] = "true"
	env["FERRY"] = "true"
	for k, v := range drone {
		env[k] = v
		env["FERRY_"+strings.TrimPrefix(k, "DRONE_")] = v
	}
	// The CI_* names Drone 0.8 and Woodpecker set, for plugins that read them.
	ci := map[string]string{
		"CI_REPO":                   m.Repo.Slug,
		"CI_REPO_NAME":              m.Repo.Slug,
		"CI_REPO_OWNER":             m.Repo.Namespace,
		"CI_REPO_LINK":              m.Repo.Link,
		"CI_REPO_URL":               m.Repo.Link,
		"CI_REPO_REMOTE":            m.Repo.HTTPURL,
		"CI_REPO_CLONE_URL":         m.Repo.HTTPURL,
		"CI_REPO_DEFAULT_BRANCH":    m.Repo.Branch,
		"CI_REPO_PRIVATE":           strconv.FormatBool(m.Repo.Private),
		"CI_REMOTE_URL":             m.Repo.HTTPURL,
		"CI_COMMIT_SHA":             m.Commit.SHA,
		"CI_COMMIT_REF":             m.Commit.Ref,
		"CI_COMMIT_BRANCH":          m.Commit.Branch,
		"CI_COMMIT_SOURCE_BRANCH":   m.Commit.SourceBranch,
		"CI_COMMIT_TARGET_BRANCH":   m.Commit.Branch,
		"CI_COMMIT_MESSAGE":         m.Commit.Message,
		"CI_COMMIT_LINK":            m.Commit.Link,
		"CI_COMMIT_AUTHOR":          m.Commit.Author,
		"CI_COMMIT_AUTHOR_NAME":     m.Commit.AuthorName,
		"CI_COMMIT_AUTHOR_EMAIL":    m.Commit.AuthorEmail,
		"CI_COMMIT_AUTHOR_AVATAR":   m.Commit.AuthorAvatar,
		"CI_COMMIT_TAG":             tag,
		"CI_COMMIT_PULL_REQUEST":    pr,
		"CI_BUILD_NUMBER":           strconv.FormatInt(m.Build.Number, 10),
		"CI_BUILD_PARENT":           strconv.FormatInt(m.Build.Parent, 10),
		"CI_BUILD_EVENT":            m.Build.Event,
		"CI_BUILD_LINK":             link,
		"CI_BUILD_CREATED":          unix(m.Build.Created),
		"CI_BUILD_STARTED":          unix(m.Build.Started),
		"CI_BUILD_TARGET":           m.Build.Target,
		"CI_BUILD_STATUS":           "success",
		"CI_PIPELINE_NUMBER":        strconv.FormatInt(m.Build.Number, 10),
		"CI_PIPELINE_PARENT":        strconv.FormatInt(m.Build.Parent, 10),
		"CI_PIPELINE_EVENT":         m.Build.Event,
		"CI_PIPELINE_URL":           link,
		"CI_PIPELINE_CREATED":       unix(m.Build.Created),
		"CI_PIPELINE_STARTED":       unix(m.Build.Started),
		"CI_PIPELINE_DEPLOY_TARGET": m.Build.Target,
		"CI_PIPELINE_STATUS":        "success",
		"CI_SYSTEM_NAME":            "ferry",
		"CI_SYSTEM_HOST":            m.System.Host,
		"CI_SYSTEM_URL":             proto(m.System),
		"CI_SYSTEM_VERSION":         m.System.Version,
	}
	for k, v := range ci {
		env[k] = v
	}
	return env
}

func proto(s System) string {
	if s.Host == "" {
		return ""
	}
	return s.Proto + "://" + s.Host
}

// semverEnv parses a tag as a semantic version (a leading "v" is allowed)
// and returns the DRONE_SEMVER_* variables, or DRONE_SEMVER_ERROR. It
// follows Drone's runner (drone/runner-go environ.versions) to the letter,
// with the same parser, so values and error messages match Drone's:
// DRONE_SEMVER_PRERELEASE and DRONE_SEMVER_BUILD are set only when the
// version has them.
func semverEnv(tag string) map[string]string {
	v, err := semver.NewVersion(strings.TrimPrefix(tag, "v"))
	if err != nil {
		return map[string]string{"DRONE_SEMVER_ERROR": err.Error()}
	}
	env := map[string]string{
		"DRONE_SEMVER":       v.String(),
		"DRONE_SEMVER_MAJOR": strconv.FormatInt(v.Major, 10),
		"DRONE_SEMVER_MINOR": strconv.FormatInt(v.Minor, 10),
		"DRONE_SEMVER_PATCH": strconv.FormatInt(v.Patch, 10),
	}
	if v.PreRelease != "" {
		env["DRONE_SEMVER_PRERELEASE"] = string(v.PreRelease)
	}
	if v.Metadata != "" {
		env["DRONE_SEMVER_BUILD"] = v.Metadata
	}
	short := semver.Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch}
	env["DRONE_SEMVER_SHORT"] = short.String()
	return env
}
