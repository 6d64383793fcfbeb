package notify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The slack notifier POSTs a Slack incoming-webhook message: a text line
// (the event's Subject, linked to its page) and one attachment coloured by
// status, with the event's details as fields. Attachments rather than
// Block Kit blocks: Mattermost and Rocket.Chat incoming webhooks accept
// the same document (text, attachments with color/title/title_link/fields,
// channel, username, icon_emoji or icon_url), and Slack still renders it.
//
//	{"text": "<https://ci/…|acme/app build #42 success (push to main, 1a2b3c4)>",
//	 "channel": "#ci", "username": "ferry", "icon_emoji": ":ship:",
//	 "attachments": [{"color": "#2eb886", "fallback": "…", "title": "…", "title_link": "https://ci/…",
//	                  "fields": [{"title": "Repository", "value": "acme/app", "short": true}, …],
//	                  "footer": "ferry", "ts": 1764670000}]}
func init() { Register("slack", newSlack) }

type slack struct{ cfg *Config }

var _ Notifier = (*slack)(nil)

func newSlack(c *Config) (Notifier, error) {
	if err := c.accepts("channel", "username", "icon"); err != nil {
		return nil, err
	}
	if c.Channel != "" && !strings.HasPrefix(c.Channel, "#") && !strings.HasPrefix(c.Channel, "@") {
		return nil, fieldErr("channel", "%q: write #channel or @user", c.Channel)
	}
	return &slack{cfg: c}, nil
}

// slackMessage is the incoming-webhook document.
type slackMessage struct {
	Text        string            `json:"text"`
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username,omitempty"`
	IconEmoji   string            `json:"icon_emoji,omitempty"`
	IconURL     string            `json:"icon_url,omitempty"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Color     string       `json:"color"`
	Fallback  string       `json:"fallback"`
	Title     string       `json:"title"`
	TitleLink string       `json:"title_link,omitempty"`
	Text      string       `json:"text,omitempty"`
	Fields    []slackField `json:"fields,omitempty"`
	Footer    string       `json:"footer"`
	TS        int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// The attachment colours: green for success, red for failure, amber for
// an interrupted run, blue for one that started.
const (
	colorGood    = "#2eb886"
	colorDanger  = "#e01e5a"
	colorWarning = "#ecb22e"
	colorInfo    = "#439fe0"
)

// statusColor returns the attachment colour of an event.
func statusColor(ev *Event) string {
	switch ev.Status {
	case "success", DeploymentSucceeded:
		return colorGood
	case "failure", "error", DeploymentFailed, DeploymentRolledBack:
		return colorDanger
	case "killed", DeploymentCancelled:
		return colorWarning
	}
	return colorInfo
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// message builds the document of ev.
func (s *slack) message(ev *Event) slackMessage {
	subject := ev.Subject()
	text := slackEscape(subject)
	if ev.Link != "" {
		text = "<" + ev.Link + "|" + text + ">"
	}
	m := slackMessage{Text: text, Channel: s.cfg.Channel, Username: s.cfg.Username}
	if strings.HasPrefix(s.cfg.Icon, ":") {
		m.IconEmoji = s.cfg.Icon
	} else {
		m.IconURL = s.cfg.Icon
	}
	a := slackAttachment{Color: statusColor(ev), Fallback: subject, Title: subject, TitleLink: ev.Link,
		Footer: "ferry", TS: ev.Time.Unix()}
	field := func(title, value string, short bool) {
		if value != "" {
			a.Fields = append(a.Fields, slackField{Title: title, Value: slackEscape(value), Short: short})
		}
	}
	switch {
	case ev.Build != nil:
		b := ev.Build
		field("Repository", b.Repo, true)
		field("Build", "#"+strconv.FormatInt(b.Number, 10), true)
		field("Status", ev.Status, true)
		field("Event", b.Event, true)
		field("Branch", b.Branch, true)
		field("Commit", shortSHA(b.Commit), true)
		field("Author", b.Author, true)
		field("Message", b.Message, false)
		field("Error", b.Error, false)
	case ev.Deployment != nil:
		d := ev.Deployment
		field("Service", d.Service, true)
		field("Environment", d.Environment, true)
		field("Release", d.Release, true)
		field("Status", ev.Status, true)
		if d.Batches > 0 {
			field("Batch", fmt.Sprintf("%d/%d", d.Batch, d.Batches), true)
		}
		field("Previous release", d.Previous, true)
		field("Actor", d.Actor, true)
		field("Reason", d.Reason, false)
	}
	m.Attachments = []slackAttachment{a}
	return m
}

// Notify implements Notifier. Slack answers 200 "ok"; its errors (400
// invalid_payload, 403, 404 channel_not_found, 410 channel_is_archived)
// are permanent.
func (s *slack) Notify(ctx context.Context, ev *Event) error {
	body, err := encodeJSON(s.message(ev))
	if err != nil {
		return err
	}
	h := s.cfg.header()
	h.Set("Content-Type", "application/json")
	return post(ctx, s.cfg.URL, h, body)
}
