package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUIDeployments is the browser test of the deployments dashboard: the
// matrix shows what each environment runs; promoting staging's release to
// production through its button (confirmed, with a reason) starts a
// deployment whose progress shows, and the matrix updates in place as it
// finishes; the audit log keeps the reason.
func TestUIDeployments(t *testing.T) {
	ctx := browser(t)
	f := newFleet(t, 2, `  - name: staging
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 1}
`+healthCheck+`  - name: production
    nodes: {role: web}
    strategy: {type: rolling, max_parallel: 1}
`+healthCheck, serverOptions{})
	v1 := f.release("v1", 0)
	if d := f.wait(f.deploy("staging", v1).ID); d.State != "succeeded" {
		t.Fatalf("deploying v1 to staging: %+v", d)
	}

	login(t, ctx, f.srv.URL, adminToken, "/deployments")
	cell := func(env string) string {
		return fmt.Sprintf(`document.querySelector('td.cell[data-service="app"][data-env="%s"]')`, env)
	}
	if got := evalString(t, ctx, cell("staging")+`.querySelector(".release").dataset.release`); got != v1 {
		t.Fatalf("the staging cell shows %q, want %s", got, v1)
	}
	if got := evalString(t, ctx, cell("production")+`.querySelector(".release").textContent.trim()`); got != "nothing deployed" {
		t.Fatalf("the production cell shows %q before the promotion", got)
	}
	screenshot(t, ctx, "deployments-before")

	// Promote: the dialog is accepted, the reason typed.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__mark = true; window.confirm = function (m) { window.__confirmed = m; return true; }; true`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cell("staging")+`.querySelector("details").open = true; true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`td.cell[data-env="staging"] form[action$="/promote"] input[name="reason"]`), "ship it to prod"),
		chromedp.Click(chromedp.CSS(`td.cell[data-env="staging"] form[action$="/promote"] button`)),
	); err != nil {
		t.Fatalf("promoting: %v", err)
	}
	waitJS(t, ctx, 30*time.Second, "the confirmation was asked", `String(window.__confirmed || "").startsWith("Promote to production")`)
	// The production cell runs v1 once the deployment is over, without a
	// reload of the page.
	waitJS(t, ctx, deployTimeout, "production shows "+v1,
		fmt.Sprintf(`(function(){ const c = %s; const r = c && c.querySelector(".release"); return !!r && r.dataset.release === %q && !c.querySelector(".active"); })()`, cell("production"), v1))
	if got := evalString(t, ctx, `String(window.__mark)`); got != "true" {
		t.Errorf("the page was reloaded (mark = %s)", got)
	}
	f.allRun(2, v1)
	screenshot(t, ctx, "deployments-after")

	// The deployment page and the audit log keep who, what and why.
	var audit []struct{ Actor, Action, Reason, Environment string }
	f.api.do("GET", "/api/audit?service=app&environment=production", nil, http.StatusOK, &audit)
	found := false
	for _, e := range audit {
		if e.Reason == "ship it to prod" && e.Actor == "admin" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the audit log lacks the promotion's reason: %+v", audit)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/audit?service=app&environment=production"), chromedp.WaitVisible(chromedp.CSS("table.audit"))); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `document.querySelector("table.audit").textContent`); !strings.Contains(got, "ship it to prod") {
		t.Errorf("the audit page lacks the reason: %q", got)
	}
	// A user with the read role on the service's repo sees the matrix
	// but cannot deploy: the API refuses the form, and nothing starts.
	f.api.do("POST", "/api/users", map[string]any{"login": "viewer"}, http.StatusCreated, nil)
	f.api.do("PUT", "/api/repos/acme/app/perms/viewer", map[string]any{"role": "read"}, http.StatusOK, nil)
	var vt struct {
		Token string `json:"token"`
	}
	f.api.do("POST", "/api/users/viewer/tokens", map[string]any{"name": "ui"}, http.StatusCreated, &vt)
	viewer := newWebClient(t, f.srv.URL)
	viewer.login(vt.Token)
	if code, body := viewer.get("/deployments"); code != http.StatusOK || !strings.Contains(body, v1) {
		t.Fatalf("the viewer's dashboard (%d) does not show %s", code, v1)
	}
	var before []deployJSON
	f.api.do("GET", "/api/deployments", nil, http.StatusOK, &before)
	vcsrf := viewer.csrf("/deployments")
	for _, action := range []string{"promote", "rollback", "lock"} {
		code, _, body := viewer.do("POST", "/deployments/app/staging/"+action, url.Values{"csrf": {vcsrf}, "reason": {"not mine"}, "to": {"production"}}, nil)
		if code != http.StatusForbidden {
			t.Errorf("the viewer's %s answered %d, want 403: %.200s", action, code, body)
		}
	}
	var after []deployJSON
	f.api.do("GET", "/api/deployments", nil, http.StatusOK, &after)
	if len(after) != len(before) {
		t.Errorf("the viewer started a deployment: %d deployments, want %d", len(after), len(before))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/nodes"), chromedp.WaitVisible(chromedp.CSS("#nodes"))); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `document.getElementById("nodes").textContent`); !strings.Contains(got, "web-1") || !strings.Contains(got, v1) {
		t.Errorf("the nodes page lacks web-1 running %s: %q", v1, got)
	}
	screenshot(t, ctx, "nodes")
}
