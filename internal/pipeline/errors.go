package pipeline

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a pipeline file.
type Error struct {
	// File is the file name given to Parse.
	File string
	// Line and Column locate the problem (1-based).
	Line   int
	Column int
	// Key is the path of the offending key inside its document, such as
	// "steps[2].commands" or "trigger.event"; it is empty for problems that
	// concern a whole document or the file's syntax.
	Key string
	// Msg says what is wrong and what would be valid.
	Msg string
	// Warning marks a problem that Drone tolerates: an unknown or
	// misplaced key, a legacy form, a value Drone ignores. The pipeline
	// still runs; the message says what Drone (and ferry) do instead.
	Warning bool
}

// Error formats the problem as "FILE:LINE:COL: message", the form
// compilers and editors understand; a warning reads "FILE:LINE:COL:
// warning: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Column))
	b.WriteString(": ")
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a file, ordered by position. Parse
// returns it as its error; use errors.As to get at the individual problems.
type Errors []*Error

// Error returns the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sorted orders the errors by position and drops exact duplicates, which
// arise when content shared through an anchor is checked once per use.
func (es Errors) sorted() Errors {
	if len(es) == 0 {
		return nil
	}
	type key struct {
		line, col int
		msg       string
	}
	seen := make(map[key]bool, len(es))
	out := make(Errors, 0, len(es))
	for _, e := range es {
		k := key{e.Line, e.Column, e.Msg}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
		)
	})
	return out
}

// split separates the warnings from the errors, keeping the order.
func (es Errors) split() (errs, warnings Errors) {
	for _, e := range es {
		if e.Warning {
			warnings = append(warnings, e)
		} else {
			errs = append(errs, e)
		}
	}
	return errs, warnings
}
