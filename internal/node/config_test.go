package node

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaultsAndDurations(t *testing.T) {
	c, err := ParseConfig([]byte(`
root: /srv/ferry
services:
  app:
    watch: {url: "s3://releases/app.tar.gz", check_interval: 2s}
    health: {type: http, url: "http://127.0.0.1:8080/health", interval: 250ms, healthy_deadline: 30s}
    run: {mode: process, command: ./app}
    lb: {driver: haproxy, socket: /run/haproxy/admin.sock, backend: be, server: web1}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services["app"]
	if c.Keep != DefaultKeep || s.Watch.CheckInterval != 2*time.Second || s.Health.Interval.Std() != 250*time.Millisecond ||
		s.Health.HealthyDeadline.Std() != 30*time.Second || s.LB.Backend != "be" {
		t.Fatalf("parsed %+v / %+v / %+v", c, s.Watch, s.Health)
	}
}

func TestParseConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"services: {app: {}}", "services.app.watch: required without a server (standalone mode)"},
		{"root: rel\nservices: {app: {watch: {url: /x}}}", `root: "rel" must be an absolute path`},
		{"keep: 1\nservices: {app: {watch: {url: /x}}}", "keep: 1: keep at least 2 releases"},
		{"services: {app: {watch: {url: /x}, health: {type: ping}}}", `services.app.health: type "ping": want one of command, http, tcp`},
		{"services: {app: {watch: {url: /x}, health: {type: tcp, address: nope}}}", `services.app.health: address "nope": the tcp check needs host:port`},
		{"services: {app: {watch: {url: /x}, run: {mode: systemd}}}", `services.app.run.mode: "systemd": want one of command, docker, none, process`},
		{"services: {app: {watch: {url: /x}, run: {mode: process}}}", "services.app.run: the process mode needs command"},
		{"services: {app: {watch: {url: /x}, lb: {driver: nginx}}}", `services.app.lb.driver: "nginx": want one of haproxy, hook`},
		{"services: {app: {watch: {url: /x, format: zip}}}", `services.app.watch.format: "zip": want tar.gz or file`},
		{"services: {app: {watch: {url: /x}, hooks: {befor: [x]}}}", "field befor not found"},
		{"server: {url: http://x}\nuser: app\nservices: {app: {}}", "server.token_file: required"},
		{"services: {app: {watch: {url: /x}, health: {type: http, url: x, interval: 5}}}", "duration"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}
