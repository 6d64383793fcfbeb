package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

func init() { RegisterNotifier("slack", slack{}) }

// slack posts a Slack-compatible incoming-webhook message: {"text": ...}.
type slack struct{}

func (slack) Send(ctx context.Context, hc *http.Client, url string, ev *Event) error {
	text := fmt.Sprintf("Deployment #%d of %s to %s/%s: *%s*", ev.Deployment, ev.Release, ev.Service, ev.Environment, ev.State)
	if ev.Reason != "" {
		text += " — " + ev.Reason
	}
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	return postJSON(ctx, hc, url, "application/json", body)
}
