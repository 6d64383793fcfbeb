package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

func init() { RegisterNotifier("graphite", graphite{}) }

// graphite posts a Graphite event (POST /events/ of graphite-web): a
// deploy annotation on dashboards, tagged deploy, the service and the
// environment. url is the events endpoint, e.g. http://graphite/events/.
type graphite struct{}

func (graphite) Send(ctx context.Context, hc *http.Client, url string, ev *Event) error {
	body, err := json.Marshal(map[string]any{
		"what": fmt.Sprintf("deploy %s %s/%s %s", ev.Release, ev.Service, ev.Environment, ev.State),
		"tags": []string{"deploy", ev.Service, ev.Environment, ev.State},
		"when": ev.Time.Unix(),
		"data": ev.Reason,
	})
	if err != nil {
		return err
	}
	return postJSON(ctx, hc, url, "application/json", body)
}
