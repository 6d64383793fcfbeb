package pipeline

import (
	"fmt"
	"slices"
	"strings"
)

// closest returns the candidate nearest to s when it is near enough to be
// a likely typo, or "" when none is. Near means few single-character edits
// (case is ignored, and "-" counts as "_"), or one being a prefix of the
// other ("depends" for "depends_on").
func closest(s string, candidates []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	// Typos are short; long inputs are not worth the quadratic distance.
	const maxLen = 64
	if len(s) > maxLen {
		return ""
	}
	ns := norm(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		if len(c) > maxLen {
			continue
		}
		nc := norm(c)
		d := editDistance(ns, nc)
		limit := max(1, min(len(ns), len(nc))/3)
		if d > limit && !(len(ns) >= 4 && (strings.HasPrefix(nc, ns) || strings.HasPrefix(ns, nc) && len(nc) >= 4)) {
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b,
// in bytes: the Levenshtein distance where swapping two adjacent
// characters ("biuld" for "build") also counts as one edit.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Closest returns the candidate nearest to s when it is near enough to be
// a likely typo, or "" when none is: the "did you mean" of the CLI's
// commands and flags, as of the config's keys.
func Closest(s string, candidates []string) string { return closest(s, candidates) }

// Events returns the build events ferry knows, in the order messages list
// them.
func Events() []string { return slices.Clone(events) }

// CheckEvent reports whether e is a build event ferry knows; if not, the
// error suggests the closest and lists the valid ones.
func CheckEvent(e string) error {
	if slices.Contains(events, e) {
		return nil
	}
	return fmt.Errorf("unknown event %q; %s", e, choices(e, "valid events are", events))
}
