package spec

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/pipeline"
)

func TestParseGood(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Parse("good.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 {
		t.Fatalf("got %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.Name != "app" || s.Artifact.Path != "dist/app.tar.gz" || len(s.Environments) != 2 {
		t.Fatalf("service: %+v", s)
	}
	st := s.Environment("staging")
	if st.Strategy.Type != "rolling" || st.Strategy.MaxParallel != (Amount{N: 25, Percent: true}) || st.Strategy.MaxParallel.Of(8) != 2 {
		t.Errorf("staging strategy: %+v", st.Strategy)
	}
	if !st.AutoRollback || st.Health.HealthyThreshold != 2 || st.Health.ProgressDeadline != 10*time.Minute || st.Health.HealthyDeadline.Std() != time.Minute {
		t.Errorf("staging: %+v", st)
	}
	if len(st.Hooks.After) != 1 || st.Auto == nil || st.Auto.Branches[0] != "main" || st.Auto.Events[0] != "push" {
		t.Errorf("staging hooks/auto: %+v %+v", st.Hooks, st.Auto)
	}
	pr := s.Next("staging")
	if pr.Name != "production" || pr.AutoRollback || pr.LockTimeout != 10*time.Minute {
		t.Errorf("production: %+v", pr)
	}
	if len(pr.Strategy.Steps) != 2 || pr.Strategy.Steps[0].Pause != 5*time.Minute || !pr.Strategy.Steps[1].Manual {
		t.Errorf("canary steps: %+v", pr.Strategy.Steps)
	}
	if pr.Strategy.Steps[1].Timeout != DefaultApprovalTimeout || pr.Gates.ApprovalTimeout != DefaultApprovalTimeout {
		t.Errorf("the approval waits are not bounded by the default %s: step %s, gate %s", DefaultApprovalTimeout, pr.Strategy.Steps[1].Timeout, pr.Gates.ApprovalTimeout)
	}
	if pr.Gates.Approval != "admin" || pr.Gates.Frozen(time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC)) == nil {
		t.Errorf("gates: %+v", pr.Gates)
	}
	// Thursday 10:00 in Paris is inside the window; Sunday is not.
	if ok, _ := pr.Gates.InWindow(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)); !ok {
		t.Error("Thursday 10:00 Paris should be in the window")
	}
	if ok, why := pr.Gates.InWindow(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)); ok || !strings.Contains(why, "outside the deploy windows") {
		t.Errorf("Sunday: %v %q", ok, why)
	}
}

func TestParseBad(t *testing.T) {
	const head = "kind: pipeline\nname: b\nsteps: [{name: s, image: busybox}]\n---\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "kind: service\nname: app\nenvironmets: []\n", `f.yml:7:1: unknown key "environmets"; did you mean "environments"?`},
		{"no environments", "kind: service\nname: app\n", `f.yml:5:1: service "app" declares no environments`},
		{"strategy type", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: {type: rolling-update}\n", `f.yml:10:22: environments[0].strategy.type: unknown value "rolling-update"; did you mean "rolling"?`},
		{"max_parallel", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: {max_parallel: 0}\n", `f.yml:10:30: environments[0].strategy.max_parallel: "0": want a number of nodes (at least 1) or a percentage such as 25%`},
		{"duration", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    health: {type: tcp, address: ':80', healthy_deadline: soon}\n", `f.yml:10:59: environments[0].health.healthy_deadline: "soon" is not a duration`},
		{"requires", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {requires: [staging]}\n", `environment "prod" requires "staging", which is not an earlier environment`},
		{"no nodes", "kind: service\nname: app\nenvironments:\n  - name: prod\n", `f.yml:8:5: environment "prod" needs nodes`},
		{"canary steps", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: canary\n", `a canary strategy needs steps`},
		{"window", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {windows: [{from: '9am', to: '17:00'}]}\n", `environments[0].gates.windows[0].from: "9am": want a time of day HH:MM`},
		{"canary step", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: {type: canary, steps: [{pause: 1m}]}\n", `f.yml:10:38: environments[0].strategy.steps[0] needs nodes: a count (1) or a percentage (10%)`},
		{"canary steps no list", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: {type: canary, steps: 3}\n", `f.yml:10:37: environments[0].strategy.steps must be a list of {nodes, pause}, got "3"`},
		{"window to", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {windows: [{from: '09:00'}, {frm: '10:00'}]}\n", `f.yml:10:23: environments[0].gates.windows[0] needs from and to (HH:MM)`},
		{"window key", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {windows: [{from: '09:00'}, {frm: '10:00'}]}\n", `f.yml:10:41: unknown key "environments[0].gates.windows[1].frm"; did you mean "from"?`},
		{"windows no list", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {windows: {from: '09:00'}}\n", `f.yml:10:22: environments[0].gates.windows must be a list of {days, from, to, timezone}, got a map`},
		{"freeze order", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {freeze: [{from: 2026-12-24, to: 2026-12-20}]}\n", `f.yml:10:22: environments[0].gates.freeze[0] needs from before to`},
		{"freeze no list", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {freeze: x}\n", `f.yml:10:21: environments[0].gates.freeze must be a list of {from, to, reason}, got "x"`},
		{"health url", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    health: {type: http}\n", `a http health check needs url`},
		{"notify type", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    notify: [{type: teams, url: 'https://h.example'}]\n", `f.yml:10:21: environments[0].notify[0].type: unknown type "teams"; use one of graphite, slack, webhook`},
		{"notify on", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    notify: [{type: slack, url: 'https://h.example', on: [rolledback]}]\n", `f.yml:10:59: environments[0].notify[0].on[0]: unknown event "rolledback"`},
		{"approval timeout", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {approval: {role: admin, timeout: 0s}}\n", `f.yml:10:46: environments[0].gates.approval.timeout: "0s": want a duration of more than 0`},
		{"approval role", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {approval: {timeout: 1h}}\n", `environments[0].gates.approval needs a role: one of read, write, admin`},
		{"approval key", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    gates: {approval: {role: admin, timout: 1h}}\n", `unknown key "environments[0].gates.approval.timout"; did you mean "timeout"?`},
		{"step timeout", "kind: service\nname: app\nenvironments:\n  - name: prod\n    nodes: {role: web}\n    strategy: {type: canary, steps: [{nodes: 1, pause: 5m, timeout: 1h}]}\n", `f.yml:10:69: environments[0].strategy.steps[0].timeout bounds a manual pause; add pause: manual or remove it`},
		{"kind typo", "kind: servic\nname: app\n", `unknown kind "servic"; did you mean "service"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(head+tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			var list pipeline.Errors
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			_ = list
		})
	}
}

// An approval's wait is bounded: approval: {role, timeout} and a manual
// canary pause's timeout.
func TestParseApprovalTimeouts(t *testing.T) {
	svcs, err := Parse("f.yml", []byte(`kind: pipeline
name: b
steps: [{name: s, image: busybox}]
---
kind: service
name: app
environments:
  - name: prod
    nodes: {role: web}
    strategy: {type: canary, steps: [{nodes: 1, pause: manual, timeout: 2h}]}
    gates: {approval: {role: write, timeout: 30m}}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := svcs[0].Environment("prod")
	if e.Gates.Approval != "write" || e.Gates.ApprovalTimeout != 30*time.Minute {
		t.Errorf("gates: %+v", e.Gates)
	}
	if st := e.Strategy.Steps[0]; !st.Manual || st.Timeout != 2*time.Hour {
		t.Errorf("step: %+v", st)
	}
	if OrDefaultApproval(0) != DefaultApprovalTimeout || OrDefaultApproval(time.Hour) != time.Hour {
		t.Error("OrDefaultApproval")
	}
}
