package pipeline

import (
	"cmp"
	"fmt"
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

// plainSyntax says a common YAML syntax error in the user's words: line is
// the text of the line the parser stopped at, col its 1-based column, raw
// the parser's message and ctxLine the line of the construct it was
// reading (0 if none). It returns "" for errors it does not recognise,
// which are reported in the parser's words.
func plainSyntax(raw string, ctxLine int, line string, col int) string {
	at := byte(0)
	if col >= 1 && col <= len(line) {
		at = line[col-1]
	}
	trimmed := strings.TrimLeft(line, " ")
	switch {
	case strings.Contains(raw, "tab character") || (at == '\t' && strings.Contains(raw, "cannot start any token")):
		return "a tab character; YAML indents with spaces, not tabs: replace the tab with spaces"
	case strings.Contains(raw, "cannot start any token") && at != 0:
		return fmt.Sprintf("%q cannot start an unquoted value in YAML: put the value in quotes", string(at))
	case strings.HasPrefix(raw, "mapping values are not allowed"):
		key, value, ok := strings.Cut(strings.TrimPrefix(trimmed, "- "), ": ")
		if ok && strings.Contains(value, ":") && col > len(line)-len(value) {
			return fmt.Sprintf(`a colon inside an unquoted value: quote it, as in %s: "%s"`, key, strings.ReplaceAll(value, `"`, `\"`))
		}
		return "a \"key: value\" where none may be: is this line indented too far?"
	case strings.Contains(raw, "expected '-' indicator"):
		return "the items of a list do not line up" + since(ctxLine) + ": start every \"- \" item of a list in the same column"
	case strings.Contains(raw, "did not find expected key"):
		if q := trimmed; col > 1 && col <= len(line) {
			if _, v, ok := strings.Cut(strings.TrimPrefix(q, "- "), ": "); ok && v != "" && (v[0] == '"' || v[0] == '\'') {
				return "text after a quoted value: put the whole value in quotes"
			}
		}
		return "this line does not line up with the keys of its map" + since(ctxLine) + ": keys of one map start in the same column"
	case strings.Contains(raw, "expected ',' or ']'"):
		return "a [list] that is not closed" + since(ctxLine) + ", or an item holding [ ] { } or a comma: close it with ] or quote the item"
	case strings.Contains(raw, "expected ',' or '}'"):
		return "a {map} that is not closed" + since(ctxLine) + ", or a value holding [ ] { } or a comma: close it with } or quote the value"
	case strings.Contains(raw, "unexpected end of stream") && strings.Contains(raw, "quoted scalar"):
		return "a quoted value is never closed" + since(ctxLine) + ": add the closing quote"
	case strings.Contains(raw, "could not find expected ':'"):
		return "a line that is neither \"key: value\" nor a \"- item\"" + since(ctxLine) + ": add the colon, or check the indentation"
	}
	return ""
}

// since names the line a construct starts at, for plainSyntax.
func since(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (it starts at line %d)", line)
}
