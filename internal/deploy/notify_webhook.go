package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

func init() { RegisterNotifier("webhook", webhook{}) }

// webhook posts the event as a JSON object.
type webhook struct{}

func (webhook) Send(ctx context.Context, hc *http.Client, url string, ev *Event) error {
	body, err := json.Marshal(map[string]any{
		"deployment": ev.Deployment, "service": ev.Service, "environment": ev.Environment, "release": ev.Release,
		"state": ev.State, "reason": ev.Reason, "creator": ev.Creator, "time": ev.Time.Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	return postJSON(ctx, hc, url, "application/json", body)
}
