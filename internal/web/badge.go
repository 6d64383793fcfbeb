package web

import (
	"fmt"
	"html"
	"net/http"
)

// badgeColours maps a build status to the badge's colour.
var badgeColours = map[string]string{
	"success": "#2e7d32", "failure": "#c62828", "error": "#c62828", "killed": "#6d4c41",
	"running": "#f9a825", "pending": "#f9a825", "blocked": "#6a1b9a", "declined": "#6d4c41",
}

// badge answers an SVG status badge for the latest build of a repo's
// branch (?branch=, default the repo's default branch). Badges need no
// session, as in Drone: they show a status and nothing else. An unknown
// repo and a repo without builds both read "unknown", so a badge does not
// tell whether a private repo exists.
func (ui *UI) badge(w http.ResponseWriter, r *http.Request) {
	status := ""
	if ui.cfg.Badge != nil {
		status = ui.cfg.Badge(r.Context(), slugOf(r), r.URL.Query().Get("branch"))
	}
	if status == "" {
		status = "unknown"
	}
	colour, ok := badgeColours[status]
	if !ok {
		colour = "#9e9e9e"
	}
	const label = "build"
	lw, vw := 6*len(label)+12, 6*len(status)+12
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-cache, max-age=0")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`+
		`<title>%s: %s</title><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/>`+
		`<g fill="#fff" text-anchor="middle" font-family="DejaVu Sans,Verdana,sans-serif" font-size="11">`+
		`<text x="%d" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>`,
		lw+vw, label, html.EscapeString(status), label, html.EscapeString(status),
		lw, lw, vw, colour, lw/2, label, lw+vw/2, html.EscapeString(status))
}
