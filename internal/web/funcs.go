package web

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"icon":      statusIcon,
	"duration":  duration,
	"ago":       ago,
	"short":     shortSHA,
	"firstLine": firstLine,
	"buildURL":  buildURL,
	"stepURL":   stepURL,
	"repoURL":   repoURL,
	"pct":       func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "%" },
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dict":      dict,
}

// statusIcon is the symbol drawn beside a status; the status is always
// written out too, for screen readers and colour-blind users.
func statusIcon(s apiclient.Status) string {
	switch s {
	case apiclient.StatusSuccess:
		return "✔"
	case apiclient.StatusFailure, apiclient.StatusError:
		return "✘"
	case apiclient.StatusKilled, apiclient.StatusDeclined:
		return "⊘"
	case apiclient.StatusRunning:
		return "◔"
	case apiclient.StatusSkipped:
		return "↷"
	case apiclient.StatusBlocked:
		return "◌"
	}
	return "○"
}

// duration is how long something that started at start ran: until end,
// or until now while it runs. It is empty when it has not started.
func duration(start, end time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(start).Round(time.Second)
	if d < time.Second {
		return "<1s"
	}
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	if d < time.Hour {
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// ago says how long ago t was, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// repoURL is the path of a repo's page.
func repoURL(slug string) string { return "/repos/" + (&url.URL{Path: slug}).EscapedPath() }

// stepURL is the path of a step's place on its build's page.
func stepURL(slug string, build, pipeline, step int64) string {
	return buildURL(slug, build) + "/" + strconv.FormatInt(pipeline, 10) + "/" + strconv.FormatInt(step, 10)
}

// dict builds a map from key, value pairs, for passing several values to
// a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict needs key, value pairs")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
