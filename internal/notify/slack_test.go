package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// slackStandIn answers as Slack's incoming webhooks document it (Slack
// cannot run here, so this is a STAND-IN, not Slack): a JSON POST with a
// text or attachments gets 200 "ok"; anything else 400 "invalid_payload"
// (or "no_text").
func slackStandIn(_ int, r *request) (int, string) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return http.StatusBadRequest, "invalid_payload"
	}
	var m struct {
		Text        string           `json:"text"`
		Attachments []map[string]any `json:"attachments"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return http.StatusBadRequest, "invalid_payload"
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		return http.StatusBadRequest, "no_text"
	}
	return http.StatusOK, "ok"
}

// TestSlackPayload checks the exact incoming-webhook documents of a
// deployment that rolled back and of a failed build, against a stand-in of
// Slack's incoming webhook.
func TestSlackPayload(t *testing.T) {
	l := newListener(t, slackStandIn)
	tg := mustTarget(t, Config{Type: "slack", URL: l.URL + "/services/T0/B0/X", Channel: "#deploys",
		Username: "ferry", Icon: ":ship:"})
	for _, ev := range []Event{deployEvent(), buildEvent()} {
		if err := tg.n.Notify(context.Background(), &ev); err != nil {
			t.Fatalf("%s: %v", ev.Name(), err)
		}
	}
	want := []string{`{"text": "<https://ci.example.com/deployments/7|app v3 to production: rolled_back (health check failed on web-1)>",
		"channel": "#deploys", "username": "ferry", "icon_emoji": ":ship:",
		"attachments": [{"color": "#e01e5a",
			"fallback": "app v3 to production: rolled_back (health check failed on web-1)",
			"title": "app v3 to production: rolled_back (health check failed on web-1)",
			"title_link": "https://ci.example.com/deployments/7",
			"fields": [
				{"title": "Service", "value": "app", "short": true},
				{"title": "Environment", "value": "production", "short": true},
				{"title": "Release", "value": "v3", "short": true},
				{"title": "Status", "value": "rolled_back", "short": true},
				{"title": "Batch", "value": "1/4", "short": true},
				{"title": "Previous release", "value": "v2", "short": true},
				{"title": "Actor", "value": "auto", "short": true},
				{"title": "Reason", "value": "health check failed on web-1", "short": false}],
			"footer": "ferry", "ts": 1796209200}]}`,
		`{"text": "<https://ci.example.com/repos/acme/app/builds/42|acme/app build #42 failure (push to main, 1a2b3c4)>",
		"channel": "#deploys", "username": "ferry", "icon_emoji": ":ship:",
		"attachments": [{"color": "#e01e5a",
			"fallback": "acme/app build #42 failure (push to main, 1a2b3c4)",
			"title": "acme/app build #42 failure (push to main, 1a2b3c4)",
			"title_link": "https://ci.example.com/repos/acme/app/builds/42",
			"fields": [
				{"title": "Repository", "value": "acme/app", "short": true},
				{"title": "Build", "value": "#42", "short": true},
				{"title": "Status", "value": "failure", "short": true},
				{"title": "Event", "value": "push", "short": true},
				{"title": "Branch", "value": "main", "short": true},
				{"title": "Commit", "value": "1a2b3c4", "short": true},
				{"title": "Author", "value": "alice", "short": true},
				{"title": "Message", "value": "fix &lt;the&gt; bug &amp; more", "short": false}],
			"footer": "ferry", "ts": 1796205600}]}`}
	rs := l.requests()
	if len(rs) != len(want) {
		t.Fatalf("%d requests, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		var got bytes.Buffer
		if err := json.Compact(&got, r.Body); err != nil {
			t.Fatal(err)
		}
		if w := compactJSON(t, want[i]); got.String() != w {
			t.Errorf("message %d:\n got %s\nwant %s", i, got.String(), w)
		}
	}
}

// TestSlackColours checks the attachment colour of each status.
func TestSlackColours(t *testing.T) {
	for status, want := range map[string]string{
		"success": colorGood, "succeeded": colorGood, "failure": colorDanger, "error": colorDanger,
		"failed": colorDanger, "rolled_back": colorDanger, "killed": colorWarning, "cancelled": colorWarning,
		"running": colorInfo, "started": colorInfo,
	} {
		if got := statusColor(&Event{Status: status}); got != want {
			t.Errorf("colour of %s = %s, want %s", status, got, want)
		}
	}
}

// TestSlackRefusal: the stand-in's 400 is a permanent error carrying
// Slack's answer, and an icon URL goes to icon_url.
func TestSlackRefusal(t *testing.T) {
	l := newListener(t, func(int, *request) (int, string) { return http.StatusNotFound, "channel_not_found" })
	tg := mustTarget(t, Config{Type: "slack", URL: l.URL, Icon: "https://example.com/ferry.png"})
	ev := buildEvent()
	err := tg.n.Notify(context.Background(), &ev)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "404 Not Found: channel_not_found") {
		t.Fatalf("err = %v, want a permanent error with Slack's answer", err)
	}
	var m map[string]any
	if err := json.Unmarshal(l.requests()[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	if m["icon_url"] != "https://example.com/ferry.png" || m["icon_emoji"] != nil {
		t.Errorf("icon fields: icon_url %v, icon_emoji %v", m["icon_url"], m["icon_emoji"])
	}
}
