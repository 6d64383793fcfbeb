package pipeline

import (
	"slices"

	"github.com/bmatcuk/doublestar/v4"
)

// Match reports whether v satisfies the condition, with Drone's rules: a
// value matching any exclude pattern never matches; otherwise it matches
// when it matches an include pattern, or when there are no include
// patterns.
//
// Patterns are globs as in path.Match ("*" and "?" do not match "/",
// "[a-z]" is a class, "\\" escapes), extended as Drone does with
// github.com/bmatcuk/doublestar: "**" matches any number of path
// elements, so "refs/heads/**" matches "refs/heads/feature/x", and
// "{a,b}" matches either alternative. An invalid pattern matches nothing
// (Validate reports it).
func (c Condition) Match(v string) bool {
	if c.Excludes(v) {
		return false
	}
	return len(c.Include) == 0 || c.Includes(v)
}

// Includes reports whether v matches one of the include patterns.
func (c Condition) Includes(v string) bool {
	return slices.ContainsFunc(c.Include, func(p string) bool { return globMatch(p, v) })
}

// Excludes reports whether v matches one of the exclude patterns.
func (c Condition) Excludes(v string) bool {
	return slices.ContainsFunc(c.Exclude, func(p string) bool { return globMatch(p, v) })
}

// IsEmpty reports whether the condition has no patterns, and so matches
// everything.
func (c Condition) IsEmpty() bool {
	return len(c.Include) == 0 && len(c.Exclude) == 0
}

// matchAny reports whether any of vs satisfies the condition.
func (c Condition) matchAny(vs []string) bool {
	return slices.ContainsFunc(vs, c.Match)
}

func globMatch(pattern, v string) bool {
	ok, err := doublestar.Match(pattern, v)
	return ok && err == nil
}

// MatchContext describes a build, to evaluate conditions against.
//
// Branch follows Drone: it is the branch pushed to for push events, the
// target (base) branch for pull requests, and the tag name for tag events.
// So a branch condition such as "branch: main" does not match tag builds,
// which is why Drone's documentation says branch conditions do not apply
// to tags.
type MatchContext struct {
	// Branch is the branch, as described above.
	Branch string
	// Event is one of push, pull_request, tag, promote, rollback, cron
	// and custom.
	Event string
	// Ref is the git ref, e.g. "refs/heads/main" or "refs/pull/7/head".
	Ref string
	// Repo is the repository's "owner/name".
	Repo string
	// Target is the deployment target of promote and rollback events.
	Target string
	// Cron is the name of the cron job that started the build.
	Cron string
	// Action is the event's action, e.g. "opened" or "synchronized" for
	// pull requests.
	Action string
	// Instance is the server's host name.
	Instance string
	// Paths are the files the build's commits changed. When empty, path
	// conditions are ignored, as in Drone: the change set is unknown.
	Paths []string
}

// Match reports whether a build satisfies every condition. Status is not
// considered: it depends on how the pipeline is going, which the runtime
// decides as it runs (see RunsOnSuccess and RunsOnFailure). A paths
// condition matches when at least one changed path matches it, so an
// exclude list skips the build only when every changed path is excluded;
// with no paths in m it is ignored.
func (c Conditions) Match(m MatchContext) bool {
	if len(c.Any) > 0 && !slices.ContainsFunc(c.Any, func(a Conditions) bool { return a.Match(m) }) {
		return false
	}
	return c.Branch.Match(m.Branch) &&
		c.Event.Match(m.Event) &&
		c.Ref.Match(m.Ref) &&
		c.Repo.Match(m.Repo) &&
		c.Target.Match(m.Target) &&
		c.Cron.Match(m.Cron) &&
		c.Action.Match(m.Action) &&
		c.Instance.Match(m.Instance) &&
		(len(m.Paths) == 0 || c.Paths.IsEmpty() || c.Paths.matchAny(m.Paths))
}

// RunsOnSuccess reports whether a step with these conditions runs while
// the pipeline is passing: always, unless a status condition leaves out
// "success".
func (c Conditions) RunsOnSuccess() bool {
	if len(c.Any) > 0 && !slices.ContainsFunc(c.Any, Conditions.RunsOnSuccess) {
		return false
	}
	return c.Status.Match("success")
}

// RunsOnFailure reports whether a step with these conditions runs once
// the pipeline has failed: only when a status condition names "failure",
// as in Drone (a step without a status condition is skipped after a
// failure).
func (c Conditions) RunsOnFailure() bool {
	if len(c.Any) > 0 {
		// An alternative runs on failure when its status and the common
		// one both allow it, and one of them names it.
		return c.Status.Match("failure") && slices.ContainsFunc(c.Any, func(a Conditions) bool {
			return a.Status.Match("failure") && (!a.Status.IsEmpty() || !c.Status.IsEmpty())
		})
	}
	return !c.Status.IsEmpty() && c.Status.Match("failure")
}

// UsesPaths reports whether the conditions, or one of their alternatives,
// look at the changed files: the caller then has to list them.
func (c Conditions) UsesPaths() bool {
	return !c.Paths.IsEmpty() || slices.ContainsFunc(c.Any, Conditions.UsesPaths)
}
