package notify

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// The graphite notifier records each event as a Graphite event through
// graphite-web's events API (docs/events.rst in graphite-web):
//
//	POST URL/events/
//	{"what": "app v2 to production: succeeded", "tags": ["ferry", "deployment", "succeeded", "app", "production"],
//	 "when": 1764670000, "data": "app v2 to production: succeeded\nhttps://ci/…"}
//
// Grafana shows these as annotations on a Graphite data source with an
// "Graphite events" annotation query filtered by tags (e.g. "ferry
// production"): what is the title, data the text, tags the tags. That is
// why ferry uses events rather than the plaintext protocol's metric lines:
// a metric line (drawAsInfinite) carries no text and needs a series per
// kind of event, which graphite-web's documentation advises against.
//
// Tags are a JSON list, which graphite-web accepts since 0.10 (older
// versions took one space-separated string); each tag has its spaces
// replaced by "_", since Graphite stores tags space-separated. Basic auth,
// when graphite-web sits behind it, goes in the URL:
// https://USER:PASSWORD@graphite.example.com.
func init() { Register("graphite", newGraphite) }

type graphite struct {
	cfg *Config
	// endpoint is the events API URL.
	endpoint string
}

var _ Notifier = (*graphite)(nil)

func newGraphite(c *Config) (Notifier, error) {
	if err := c.accepts("tags"); err != nil {
		return nil, err
	}
	for i, t := range c.Tags {
		if strings.TrimSpace(t) == "" {
			return nil, fieldErr(fmt.Sprintf("tags[%d]", i), "is empty; give a word such as production")
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fieldErr("url", "%v", err)
	}
	switch {
	case strings.HasSuffix(u.Path, "/events/"):
	case strings.HasSuffix(u.Path, "/events"):
		u.Path += "/"
	default:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/events/"
	}
	return &graphite{cfg: c, endpoint: u.String()}, nil
}

// graphiteEvent is the events API's document.
type graphiteEvent struct {
	What string   `json:"what"`
	Tags []string `json:"tags"`
	When int64    `json:"when"`
	Data string   `json:"data"`
}

// event builds the document of ev.
func (g *graphite) event(ev *Event) graphiteEvent {
	tags := []string{"ferry", string(ev.Kind), ev.Action}
	if ev.Status != ev.Action {
		tags = append(tags, ev.Status)
	}
	switch {
	case ev.Build != nil:
		tags = append(tags, ev.Build.Repo, ev.Build.Branch)
	case ev.Deployment != nil:
		tags = append(tags, ev.Deployment.Service, ev.Deployment.Environment)
	}
	tags = append(tags, g.cfg.Tags...)
	clean := tags[:0]
	for _, t := range tags {
		if t = strings.Join(strings.Fields(t), "_"); t != "" {
			clean = append(clean, t)
		}
	}
	what := ev.Subject()
	data := what
	if ev.Link != "" {
		data += "\n" + ev.Link
	}
	return graphiteEvent{What: what, Tags: clean, When: ev.Time.Unix(), Data: data}
}

// Notify implements Notifier. graphite-web answers 200 with an empty
// body; 400 when the document is wrong.
func (g *graphite) Notify(ctx context.Context, ev *Event) error {
	body, err := encodeJSON(g.event(ev))
	if err != nil {
		return err
	}
	h := g.cfg.header()
	h.Set("Content-Type", "application/json")
	return post(ctx, g.endpoint, h, body)
}
