package forge

import (
	"context"
	"errors"
	"strings"
)

// GitReason says in plain words why a git command against a remote
// failed: git's own reason (its first "fatal:" or "error:" line) for the
// common cases rephrased, without the exit status and the advice git
// appends ("Please make sure you have the correct access rights…").
func GitReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "git got no answer in time (is the host reachable?)"
	}
	var ge *gitError
	if !errors.As(err, &ge) {
		return err.Error()
	}
	reason := ""
	for line := range strings.SplitSeq(ge.stderr, "\n") {
		line = strings.TrimSpace(line)
		for _, p := range []string{"fatal: ", "error: "} {
			if r, ok := strings.CutPrefix(line, p); ok && reason == "" {
				reason = r
			}
		}
	}
	if reason == "" {
		if ge.stderr == "" {
			return ge.err.Error()
		}
		return strings.ReplaceAll(ge.stderr, "\n", "; ")
	}
	lower := strings.ToLower(reason)
	switch {
	case strings.Contains(lower, "does not appear to be a git repository"):
		return "there is no git repository there (" + reason + ")"
	case strings.Contains(lower, "could not read username"), strings.Contains(lower, "terminal prompts disabled"),
		strings.Contains(lower, "authentication failed"), strings.Contains(lower, "permission denied"):
		return "the repository needs credentials, or these were refused (" + reason + ")"
	case strings.Contains(lower, "could not resolve host"):
		return "the host name does not resolve (" + reason + ")"
	case strings.Contains(lower, "connection refused"), strings.Contains(lower, "failed to connect"):
		return "nothing answers at that address (" + reason + ")"
	case strings.Contains(lower, "not found"):
		return "the server has no such repository, or hides it without credentials (" + reason + ")"
	}
	return reason
}
