package web

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryci/ferry/internal/apiclient"
)

// matrixData is the deployments dashboard: services × environments, each
// cell the release that runs there and what is happening to it.
type matrixData struct {
	Envs []string
	Rows []matrixRow
	// Active is set while a deployment runs, so the page follows it.
	Active bool
	Notice string
}

type matrixRow struct {
	Service *apiclient.Service
	Cells   []*matrixCell
}

// matrixCell is one environment of one service; Env is nil where the
// service has no such environment.
type matrixCell struct {
	Service string
	Env     *apiclient.EnvironmentStatus
	// Next is the environment a promotion goes to ("" for the last).
	Next string
	// Nodes are the active deployment's nodes with their health.
	Nodes []nodeHealth
}

type nodeHealth struct {
	Name, State, Error string
	Healthy            bool
}

func (ui *UI) deploymentsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	services, err := c.Services(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	nodes, err := c.Nodes(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	health := map[string]map[string]apiclient.NodeServiceStatus{} // node → service → status
	for _, n := range nodes {
		health[n.Name] = map[string]apiclient.NodeServiceStatus{}
		for _, st := range n.Services {
			health[n.Name][st.Service] = st
		}
	}
	d := matrixData{Notice: r.URL.Query().Get("notice")}
	for _, svc := range services {
		for _, e := range svc.Environments {
			if !slices.Contains(d.Envs, e.Name) {
				d.Envs = append(d.Envs, e.Name)
			}
		}
	}
	for _, svc := range services {
		row := matrixRow{Service: svc}
		for _, name := range d.Envs {
			cell := &matrixCell{Service: svc.Name}
			for i, e := range svc.Environments {
				if e.Name != name {
					continue
				}
				cell.Env = e
				if i+1 < len(svc.Environments) {
					cell.Next = svc.Environments[i+1].Name
				}
				if e.Active != nil {
					d.Active = true
					full, err := c.Deployment(r.Context(), e.Active.ID)
					if err == nil {
						cell.Env.Active = full
					}
					for _, n := range cell.Env.Active.Nodes {
						st := health[n.Node][svc.Name]
						cell.Nodes = append(cell.Nodes, nodeHealth{Name: n.Node, State: n.State, Error: cmp.Or(n.Error, st.Error), Healthy: st.Healthy})
					}
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		d.Rows = append(d.Rows, row)
	}
	ui.render(w, http.StatusOK, "deployments.html", &page{Title: "Deployments", Session: s, Data: d})
}

// deploymentData is one deployment's page.
type deploymentData struct {
	Deployment *apiclient.Deployment
	Audit      []*apiclient.AuditEntry
}

func (ui *UI) deploymentPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		ui.errorPage(w, r, http.StatusNotFound, "Deployment ids are whole numbers from 1.")
		return
	}
	c := ui.client(s)
	dep, err := c.Deployment(r.Context(), id)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	audit, err := c.Audit(r.Context(), apiclient.AuditFilter{DeploymentID: id})
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "deployment.html", &page{Title: "Deployment " + strconv.FormatInt(id, 10), Session: s,
		Data: deploymentData{Deployment: dep, Audit: audit}})
}

// envAction runs a dashboard button of an environment: promote,
// rollback, lock or unlock. Each asks for a reason, which the audit log
// keeps.
func (ui *UI) envAction(w http.ResponseWriter, r *http.Request, s *session) {
	c := ui.client(s)
	ctx := r.Context()
	service, env := r.PathValue("service"), r.PathValue("env")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		ui.actionFailed(w, r, http.StatusBadRequest, "Give a reason: it goes to the audit log.")
		return
	}
	var err error
	var notice string
	switch action := r.PathValue("action"); action {
	case "promote":
		var d *apiclient.Deployment
		d, err = c.Promote(ctx, service, env, &apiclient.DeployRequest{Reason: reason, To: r.PostFormValue("to")})
		if err == nil {
			notice = "Promoting " + d.Release + " to " + d.Environment + " (deployment " + strconv.FormatInt(d.ID, 10) + ")."
		}
	case "rollback":
		var d *apiclient.Deployment
		d, err = c.Rollback(ctx, service, env, &apiclient.DeployRequest{Reason: reason})
		if err == nil {
			notice = "Rolling " + service + " in " + env + " back to " + d.Release + "."
		}
	case "lock":
		_, err = c.Lock(ctx, service, env, reason)
		notice = "Locked " + service + " in " + env + "."
	case "unlock":
		_, err = c.Unlock(ctx, service, env, reason, r.PostFormValue("force") == "true")
		notice = "Unlocked " + service + " in " + env + "."
	default:
		ui.errorPage(w, r, http.StatusNotFound, "Environments have the actions promote, rollback, lock and unlock.")
		return
	}
	ui.afterAction(w, r, err, "/deployments", notice)
}

// deploymentAction runs a button of a deployment: approve, pause, resume
// or cancel.
func (ui *UI) deploymentAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		ui.errorPage(w, r, http.StatusNotFound, "Deployment ids are whole numbers from 1.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		ui.actionFailed(w, r, http.StatusBadRequest, "Give a reason: it goes to the audit log.")
		return
	}
	action := r.PathValue("action")
	_, err = ui.client(s).DeploymentAction(r.Context(), id, action, reason)
	back := r.PostFormValue("back")
	if back != "/deployments" {
		back = "/deployments/" + strconv.FormatInt(id, 10)
	}
	ui.afterAction(w, r, err, back, "Deployment "+strconv.FormatInt(id, 10)+": "+action+" sent.")
}

// afterAction answers a dashboard form: the script's fetch gets JSON, a
// plain form post a redirect back with a notice, or the refusal.
func (ui *UI) afterAction(w http.ResponseWriter, r *http.Request, err error, back, notice string) {
	if err != nil {
		code, msg := http.StatusBadGateway, err.Error()
		var ae *apiclient.Error
		if asAPIError(err, &ae) {
			if ae.StatusCode == http.StatusUnauthorized {
				ui.apiError(w, r, err)
				return
			}
			code, msg = ae.StatusCode, ae.Message
		}
		ui.actionFailed(w, r, code, msg)
		return
	}
	if r.Header.Get("X-Ferry-Fetch") != "" {
		writeJSON(w, http.StatusOK, map[string]string{"notice": notice})
		return
	}
	http.Redirect(w, r, back+"?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

func (ui *UI) actionFailed(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if r.Header.Get("X-Ferry-Fetch") != "" {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	ui.errorPage(w, r, code, msg)
}

func (ui *UI) nodesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ns, err := ui.client(s).Nodes(r.Context())
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "nodes.html", &page{Title: "Nodes", Session: s, Data: ns})
}

type auditData struct {
	Entries []*apiclient.AuditEntry
	Filter  apiclient.AuditFilter
}

func (ui *UI) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := apiclient.AuditFilter{Service: q.Get("service"), Environment: q.Get("environment"), Limit: 200}
	f.DeploymentID, _ = strconv.ParseInt(q.Get("deployment"), 10, 64)
	es, err := ui.client(s).Audit(r.Context(), f)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.render(w, http.StatusOK, "audit.html", &page{Title: "Audit log", Session: s, Data: auditData{Entries: es, Filter: f}})
}
