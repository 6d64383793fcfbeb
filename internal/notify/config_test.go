package notify

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestLoadYAMLGood reads every key.
func TestLoadYAMLGood(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadYAML("good.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Config{
		{Type: "webhook", URL: "https://hooks.example.com/ferry", Secret: "s3cret",
			Headers: map[string]string{"Authorization": "Bearer tok"}, On: []string{"deployment.failed", "build.*"}, Timeout: 5 * time.Second},
		{Type: "slack", URL: "https://hooks.slack.com/services/T0/B0/XXX", Channel: "#deploys", Username: "ferry", Icon: ":ship:", On: []string{"failed"}},
		{Type: "graphite", URL: "https://ferry:pw@graphite.example.com", Tags: []string{"production"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// Values from secrets, as Drone's from_secret.
	fromSecret, err := LoadYAML("secret.yml", []byte("- {type: webhook, url: {from_secret: hook_url}, secret: {from_secret: hook_key}, headers: {X-A: a, Authorization: {from_secret: tok}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantSecret := Config{Type: "webhook", Headers: map[string]string{"X-A": "a"},
		FromSecret: map[string]string{"url": "hook_url", "secret": "hook_key", "headers.Authorization": "tok"}}
	if len(fromSecret) != 1 || !reflect.DeepEqual(fromSecret[0], wantSecret) {
		t.Fatalf("from_secret: got %+v\nwant %+v", fromSecret, wantSecret)
	}
	resolved, err := fromSecret[0].Resolve(map[string]string{"hook_url": "https://h.example/x", "hook_key": "k", "tok": "Bearer t"})
	wantResolved := Config{Type: "webhook", URL: "https://h.example/x", Secret: "k", Headers: map[string]string{"X-A": "a", "Authorization": "Bearer t"}}
	if err != nil || !reflect.DeepEqual(resolved, wantResolved) {
		t.Fatalf("resolved: %+v, %v\nwant %+v", resolved, err, wantResolved)
	}
	if fromSecret[0].Headers["Authorization"] != "" {
		t.Fatal("Resolve changed the configuration's own headers")
	}
	if _, err := fromSecret[0].Resolve(map[string]string{"hook_url": "ftp://h.example"}); err == nil || !strings.Contains(err.Error(), "from_secret: no secret \"tok\"") {
		t.Fatalf("a missing secret: %v", err)
	}
	// A bare list works too.
	list, err := LoadYAML("list.yml", []byte("- {type: webhook, url: http://h.example}\n"))
	if err != nil || len(list) != 1 {
		t.Errorf("bare list: %v, %v", list, err)
	}
}

// TestLoadYAMLBad: each bad entry's message names file:line:col and the
// key, and says what would be valid.
func TestLoadYAMLBad(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"notify:\n  - url: https://h.example\n",
			"bad.yml:2:5: notify[0].type: missing; use one of graphite, slack, webhook"},
		{"notify:\n  - type: teams\n    url: https://h.example\n",
			`bad.yml:2:11: notify[0].type: unknown type "teams"; use one of graphite, slack, webhook`},
		{"notify:\n  - type: webhook\n    url: ftp://h.example\n",
			`bad.yml:3:10: notify[0].url: "ftp://h.example" is not an http:// or https:// URL`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    on: [build.done]\n",
			`bad.yml:4:10: notify[0].on[0]: unknown build event "build.done"; use build.* or one of build.started, build.finished, build.success, build.failure, build.error, build.killed`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    on: [deploy.failed]\n",
			`bad.yml:4:10: notify[0].on[0]: unknown kind "deploy" in "deploy.failed"; use build or deployment`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    timeout: soon\n",
			`bad.yml:4:14: notify[0].timeout: "soon" is not a duration; write e.g. 10s or 1m`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    timeout: 1h\n",
			`bad.yml:4:14: notify[0].timeout: 1h0m0s is out of range; use a duration from 1ms to 5m0s, or leave it out for 10s`},
		{"notify:\n  - type: slack\n    url: https://h.example\n    secret: x\n",
			"bad.yml:4:13: notify[0].secret: does not apply to type slack"},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    channel: '#x'\n",
			"bad.yml:4:14: notify[0].channel: does not apply to type webhook"},
		{"notify:\n  - type: slack\n    url: https://h.example\n    channel: deploys\n",
			`bad.yml:4:14: notify[0].channel: "deploys": write #channel or @user`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    headers: {'Bad Name': x}\n",
			`bad.yml:4:14: notify[0].headers: "Bad Name" is not a valid header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~)`},
		{"notify:\n  - type: webhook\n    url: https://h.example\n    secrets: x\n",
			"bad.yml:4:5: notify[0].secrets: unknown key; valid keys are type, url, secret, headers, on, timeout, channel, username, icon, tags"},
		{"notify: {type: webhook}\n",
			"bad.yml:1:9: notify: must be a list of {type, url, …} entries, got a map"},
		{"notify:\n  - webhook\n",
			`bad.yml:2:5: notify[0]: must be a map with keys type and url, got "webhook"`},
		{"steps: []\n",
			"bad.yml:1:1: no notify: key; write notify: followed by a list of {type, url}"},
		{"notify:\n  - type: webhook\n    url: {from_secrets: x}\n",
			"bad.yml:3:10: notify[0].url: must be a string or {from_secret: NAME}, got a map with other keys"},
		{"notify:\n  - type: webhook\n    url: {from_secret: ''}\n",
			"bad.yml:3:10: notify[0].url: from_secret must name a secret"},
		{"notify:\n  - type: slack\n    url: {from_secret: hook}\n    secret: {from_secret: key}\n",
			"bad.yml:4:13: notify[0].secret: does not apply to type slack"},
	} {
		_, err := LoadYAML("bad.yml", []byte(tc.yaml))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// TestParseFlag reads --notify values and FERRY_NOTIFY lines.
func TestParseFlag(t *testing.T) {
	got, err := ParseFlags([]string{
		"webhook=https://h.example/x;secret=s;on=build.failure, deployment.*;header=Authorization: Bearer t;timeout=3s",
		"slack=https://hooks.slack.com/services/T/B/X;channel=#ci;username=ferry;icon=:ship:\n\ngraphite=http://u:p@g.example;tags=prod,eu\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Config{
		{Type: "webhook", URL: "https://h.example/x", Secret: "s", On: []string{"build.failure", "deployment.*"},
			Headers: map[string]string{"Authorization": "Bearer t"}, Timeout: 3 * time.Second},
		{Type: "slack", URL: "https://hooks.slack.com/services/T/B/X", Channel: "#ci", Username: "ferry", Icon: ":ship:"},
		{Type: "graphite", URL: "http://u:p@g.example", Tags: []string{"prod", "eu"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for in, want := range map[string]string{
		"https://h.example":                         `"https://h.example": write TYPE=URL[;KEY=VALUE]..., TYPE one of graphite, slack, webhook`,
		"teams=https://h.example":                   `"teams https://h.example": type: unknown type "teams"; use one of graphite, slack, webhook`,
		"webhook=https://h.example;retries=3":       `"webhook https://h.example": unknown option "retries"; use secret, header, on, timeout, channel, username, icon or tags`,
		"webhook=https://h.example;on=build.done":   `"webhook https://h.example": on[0]: unknown build event "build.done"; use build.* or one of build.started, build.finished, build.success, build.failure, build.error, build.killed`,
		"webhook=https://h.example;header=X":        `"webhook https://h.example": header "X": write header=NAME: VALUE`,
		"graphite=http://u:secret@g.example;secret": `"graphite http://u:xxxxx@g.example": option "secret" needs a value: write KEY=VALUE`,
		"webhook=": `"webhook ": url: missing; give the endpoint's http:// or https:// URL`,
	} {
		_, err := ParseFlag(in)
		if err == nil || err.Error() != want {
			t.Errorf("ParseFlag(%q):\n got %v\nwant %s", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("ParseFlag(%q) shows the password: %v", in, err)
		}
	}
}

// TestFilter matches the patterns documented on Filter.
func TestFilter(t *testing.T) {
	started := buildEvent()
	started.Action, started.Status = ActionStarted, "running"
	failure := buildEvent()
	rolled := deployEvent()
	depStarted := deployEvent()
	depStarted.Action, depStarted.Status = DeploymentStarted, DeploymentStarted
	for _, tc := range []struct {
		on   []string
		ev   Event
		want bool
	}{
		{nil, failure, true},
		{nil, started, false},
		{nil, rolled, true},
		{nil, depStarted, false},
		{[]string{"deployment.*"}, depStarted, true},
		{[]string{"*"}, started, true},
		{[]string{"build.*"}, started, true},
		{[]string{"build.*"}, rolled, false},
		{[]string{"build.failure"}, failure, true},
		{[]string{"build.success"}, failure, false},
		{[]string{"build.finished"}, failure, true},
		{[]string{"deployment.failed"}, rolled, false},
		{[]string{"deployment.rolled_back"}, rolled, true},
		{[]string{"rolled_back"}, rolled, true},
		{[]string{"started"}, started, true},
		{[]string{"started"}, depStarted, true},
		{[]string{"failure", "failed"}, failure, true},
	} {
		if got := Filter(tc.on, &tc.ev); got != tc.want {
			t.Errorf("Filter(%v, %s/%s) = %v, want %v", tc.on, tc.ev.Name(), tc.ev.Status, got, tc.want)
		}
	}
}
