package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/ferryci/ferry/internal/apiclient"
)

// API runs the commands that talk to a ferry server's API: repo, build,
// logs, secret, token, agent-token and user. Each command method returns
// an error; ExitCode prints it and turns it into the process's exit code.
// An API value is used by one command at a time.
type API struct {
	// Client calls the server.
	Client *apiclient.Client
	// Stdout receives the command's output: tables, or with JSON the API's
	// objects.
	Stdout io.Writer
	// Stderr receives errors and notes.
	Stderr io.Writer
	// Stdin is where `secret add` reads a value given neither by --value
	// nor by --from-file.
	Stdin io.Reader
	// JSON prints the API's objects as JSON instead of tables.
	JSON bool
	// Now returns the current time, for relative times in tables; nil
	// means time.Now.
	Now func() time.Time
}

// UsageError is a mistake in a command's arguments or flags, found before
// anything was sent to the server. Its command exits with ExitInvalid.
type UsageError struct {
	Message string
}

// Error returns the message.
func (e *UsageError) Error() string { return e.Message }

// usagef returns a *UsageError.
func usagef(format string, args ...any) error {
	return &UsageError{Message: fmt.Sprintf(format, args...)}
}

// ExitError ends a command with Code without printing anything more: the
// command has already said why (`build wait` on a failed build).
type ExitError struct {
	Code int
}

// Error names the exit code.
func (e *ExitError) Error() string { return "exit " + strconv.Itoa(e.Code) }

// ExitCode prints err to Stderr, as "ferry: message", and returns the
// exit code for it: ExitOK for nil, ExitInvalid for a *UsageError, the
// code of an *ExitError, and ExitFailed for anything else (an error answer
// from the server, or an unreachable server). A 401 answer gets a hint
// about where the token comes from.
func (a *API) ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitInvalid
	}
	if apiclient.IsStatus(err, http.StatusUnauthorized) {
		fmt.Fprintln(a.Stderr, "ferry: set --token or FERRY_TOKEN to a personal API token of this server (see `ferry token create`)")
	}
	return ExitFailed
}

// now returns the current time.
func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// printJSON writes v as indented JSON.
func (a *API) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// table starts a table on Stdout; call Flush on the result when done.
func (a *API) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated table row. Each cell goes through
// cellSafe: cells show values such as commit messages that whoever pushed
// wrote, whose escape sequences must not reach the terminal.
func row(w io.Writer, cells ...string) {
	safe := make([]string, len(cells))
	for i, c := range cells {
		safe[i] = cellSafe(c)
	}
	fmt.Fprintln(w, strings.Join(safe, "\t"))
}

// ago formats t relative to now ("3 minutes ago"), or "-" when unset.
func (a *API) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return humanize.RelTime(t, a.now(), "ago", "from now")
}

// stamp formats t as a local date and time with its relative age.
func (a *API) stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + a.ago(t) + ")"
}

// took formats how long something that started at start has run: until
// end, or until now when end is unset. It is "-" when it has not started.
func (a *API) took(start, end time.Time) string {
	if start.IsZero() {
		return "-"
	}
	if end.IsZero() {
		end = a.now()
	}
	d := end.Sub(start)
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// printList prints a list command's items: as JSON, or as a table of
// header and one row of cells per item. When there are no items and empty
// is set, the table is left out and empty goes to Stderr instead.
func printList[T any](a *API, items []T, empty string, header []string, cells func(T) []string) error {
	if a.JSON {
		return a.printJSON(items)
	}
	if len(items) == 0 && empty != "" {
		fmt.Fprintln(a.Stderr, empty)
		return nil
	}
	w := a.table()
	row(w, header...)
	for _, it := range items {
		row(w, cells(it)...)
	}
	return w.Flush()
}

// pairs formats m as KEY=VALUE pairs, sorted by key, joined with sep.
func pairs(m map[string]string, sep string) string {
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ps = append(ps, k+"="+m[k])
	}
	return strings.Join(ps, sep)
}

// yesNo formats a bool for tables.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortSHA returns the first 8 characters of a commit id.
func shortSHA(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return orDash(sha)
}

// firstLine returns the first line of s, cut to n characters.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// CheckSlug checks that repo is OWNER/NAME, as the API's paths need it.
func CheckSlug(repo string) error {
	owner, name, ok := strings.Cut(repo, "/")
	dots := func(s string) bool { return s == "." || s == ".." }
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") || dots(owner) || dots(name) {
		return usagef("repo %q must be OWNER/NAME (neither part may be '.' or '..')", repo)
	}
	return nil
}

// ParseNumber parses a build, pipeline or step number given as argument
// what.
func ParseNumber(what, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, usagef("%s %q must be a positive number", what, s)
	}
	return n, nil
}
