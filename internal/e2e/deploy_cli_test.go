package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// The rest of the deploy CLI against a real server and nodes: promote,
// approve, status --watch, rollback, and --json, with their exit codes.
func TestDeployCLIPromoteApproveWatchRollback(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, `  - name: staging
    nodes: {role: web}
`+healthCheck+`  - name: prod
    nodes: {role: web}
    gates: {approval: admin}
`+healthCheck, serverOptions{})
	v1 := f.release("v1", 0)
	if code, out, errOut := f.ferryCLI("deploy", "app", "staging", v1, "--wait", "--reason", "first"); code != 0 {
		t.Fatalf("deploy --wait: %d\n%s\n%s", code, out, errOut)
	}

	// promote --json: the deployment to prod waits for approval.
	code, out, errOut := f.ferryCLI("promote", "app", "staging", "--json", "--reason", "ship")
	if code != 0 {
		t.Fatalf("promote: %d %s %s", code, out, errOut)
	}
	var d struct {
		ID          int64  `json:"id"`
		Environment string `json:"environment"`
		Release     string `json:"release"`
		State       string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Environment != "prod" || d.Release != v1 {
		t.Fatalf("promote --json = %q (%v)", out, err)
	}
	id := strconv.FormatInt(d.ID, 10)
	if got := f.deployment(d.ID); got.State != "pending" {
		t.Fatalf("the promotion to a gated environment is %s, want pending (approval)", got.State)
	}
	if code, _, errOut := f.ferryCLI("approve", "999999", "--reason", "x"); code != 1 {
		t.Fatalf("approve of an unknown deployment: exit %d, want 1: %s", code, errOut)
	}
	if code, _, errOut := f.ferryCLI("approve"); code != 2 {
		t.Fatalf("approve without an id: exit %d, want 2: %s", code, errOut)
	}
	if code, out, errOut := f.ferryCLI("approve", id, "--reason", "looks good"); code != 0 {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}
	// status --watch follows it to its end, with a progress display.
	code, out, errOut = f.ferryCLI("status", id, "--watch")
	if code != 0 || !strings.Contains(out+errOut, "succeeded") || !strings.Contains(errOut, "2/2 nodes") {
		t.Fatalf("status --watch: %d\n%s\n%s", code, out, errOut)
	}
	f.allRun(2, v1)

	// v2 to prod, then rollback --wait returns to v1.
	v2 := f.release("v2", 0)
	if code, out, errOut := f.ferryCLI("deploy", "app", "prod", v2, "--json"); code != 0 || !strings.Contains(out, `"release": "`+v2+`"`) && !strings.Contains(out, `"release":"`+v2+`"`) {
		t.Fatalf("deploy --json: %d %s %s", code, out, errOut)
	} else {
		var dd struct {
			ID int64 `json:"id"`
		}
		_ = json.Unmarshal([]byte(out), &dd)
		f.ferryCLI("approve", strconv.FormatInt(dd.ID, 10), "--reason", "v2")
		if got := f.wait(dd.ID); got.State != "succeeded" {
			t.Fatalf("v2: %+v", got)
		}
	}
	f.allRun(2, v2)
	if code, out, errOut := f.ferryCLI("rollback", "app", "prod", "--json", "--reason", "bad v2"); code != 0 {
		t.Fatalf("rollback: %d %s %s", code, out, errOut)
	} else {
		var rb struct {
			ID      int64  `json:"id"`
			Release string `json:"release"`
		}
		if err := json.Unmarshal([]byte(out), &rb); err != nil || rb.Release != v1 {
			t.Fatalf("rollback --json = %q (%v), want release %s", out, err, v1)
		}
		f.ferryCLI("approve", strconv.FormatInt(rb.ID, 10), "--reason", "rollback")
		if got := f.wait(rb.ID); got.State != "succeeded" {
			t.Fatalf("rollback: %+v", got)
		}
	}
	f.allRun(2, v1)
	// status --json lists the matrix.
	code, out, _ = f.ferryCLI("status", "app", "--json")
	if code != 0 || !strings.Contains(out, `"prod"`) || !strings.Contains(out, v1) {
		t.Fatalf("status --json: %d %s", code, out)
	}
}
