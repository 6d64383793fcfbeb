package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A canary's manual pause is bounded by its step's timeout: not approved
// in time, the deployment fails and rolls the canary node back, and the
// audit log says why. The deadline is stored: the server is killed while
// the deployment waits, and the new one ends it.
func TestDeployCanaryApprovalTimeout(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: prod
    nodes: {role: web}
    strategy:
      type: canary
      steps: [{nodes: 1, pause: manual, timeout: 3s}]
`+healthCheck, serverOptions{})
	paused := func(id int64) {
		t.Helper()
		eventually(t, deployTimeout, 10*time.Millisecond, func() (bool, string) {
			got := f.deployment(id)
			return strings.Contains(got.Reason, "paused after batch 1 of 2; continue with ferry approve"), got.State + ": " + got.Reason
		})
	}
	v1 := f.release("v1", 0)
	d := f.deploy("prod", v1)
	paused(d.ID)
	f.api.do("POST", fmt.Sprintf("/api/deployments/%d/approve", d.ID), nil, http.StatusOK, nil)
	if got := f.wait(d.ID); got.State != "succeeded" {
		t.Fatalf("v1: %+v", got)
	}
	f.allRun(2, v1)

	v2 := f.release("v2", 0)
	d = f.deploy("prod", v2)
	paused(d.ID)
	if got := f.running(); got["web-1"] != v2 || got["web-2"] != v1 {
		t.Fatalf("paused canary: %v", got)
	}
	f.srv.kill9()
	f.srv = f.srv.restart(t)
	f.api = f.api.on(f.srv)
	got := f.wait(d.ID)
	if got.State != "rolled_back" || !strings.Contains(got.Reason, "approval not given within 3s after batch 1 of 2") {
		t.Fatalf("v2 ended %s (%q), want rolled_back for want of an approval", got.State, got.Reason)
	}
	f.allRun(2, v1)
	var audit []struct{ Actor, Action, Reason string }
	f.api.do("GET", fmt.Sprintf("/api/audit?deployment=%d", d.ID), nil, http.StatusOK, &audit)
	if len(audit) < 2 || audit[0].Action != "rolled_back" || !strings.Contains(audit[0].Reason, "approval not given") {
		t.Fatalf("audit: %+v", audit)
	}
	// The lock is free: the next deployment starts.
	v3 := f.release("v3", 0)
	paused(f.deploy("prod", v3).ID)
}

// The first deployment of a service that fails has no release to roll
// back to: it ends failed and says so, the node runs nothing (its current
// link is gone), the other nodes are not touched, and the environment's
// lock is free for the next deployment.
func TestDeployFirstReleaseFailsWithNothingToRollBackTo(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: prod
    nodes: {role: web}
    health: {type: command, command: "sh ./health.sh", interval: 100ms, healthy_deadline: 2s, progress_deadline: 5m}
`, serverOptions{})
	v1 := f.release("v1", 1)
	d := f.wait(f.deploy("prod", v1).ID)
	if d.State != "failed" || !strings.Contains(d.Reason, "batch 1 of 2 failed: node web-1") ||
		!strings.HasSuffix(d.Reason, "; no previous release to roll back to") {
		t.Fatalf("first release ended %s (%q), want failed with nothing to roll back to", d.State, d.Reason)
	}
	if got := f.running(); got["web-1"] != "" || got["web-2"] != "" {
		t.Fatalf("nodes run %v, want nothing", got)
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "web-1", "app", "current")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("web-1 still has a current link: %v", err)
	}
	v2 := f.release("v2", 0)
	if d := f.wait(f.deploy("prod", v2).ID); d.State != "succeeded" {
		t.Fatalf("v2: %+v", d)
	}
	f.allRun(2, v2)
}
