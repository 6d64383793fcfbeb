package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// A node token is a node's identity and opens the node protocol only; no
// other token opens the node protocol.
func TestNodeTokenGrantsTheNodeProtocolOnly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	var tok struct {
		ID    int64  `json:"id"`
		Kind  string `json:"kind"`
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/node-tokens", adminToken, map[string]string{"name": "web-1"}, &tok)
	if tok.Kind != "node" || tok.Token == "" {
		t.Fatalf("node token: %+v", tok)
	}
	var agentTok struct {
		Token string `json:"token"`
	}
	ts.must(http.StatusCreated, "POST", "/api/agent-tokens", adminToken, map[string]string{"name": "ci"}, &agentTok)
	user := ts.userToken("someone")
	node := tok.Token

	// Before it registers, the node has no desired state to poll.
	body := ts.must(http.StatusConflict, "GET", "/api/node/desired?version=&wait=0s", node, nil, nil)
	if !strings.Contains(string(body), "POST /api/node/register first") {
		t.Fatalf("desired before register: %s", body)
	}
	var reg struct {
		NodeID int64 `json:"node_id"`
	}
	ts.must(http.StatusOK, "POST", "/api/node/register", node, map[string]any{"name": "web-1", "labels": map[string]string{"role": "web"}}, &reg)
	var again struct {
		NodeID int64 `json:"node_id"`
	}
	ts.must(http.StatusOK, "POST", "/api/node/register", node, map[string]any{"name": "web-1b"}, &again)
	if reg.NodeID == 0 || again.NodeID != reg.NodeID {
		t.Fatalf("registering again gave node %d, then %d; the token is the identity", reg.NodeID, again.NodeID)
	}
	var ds struct {
		Version  string         `json:"version"`
		Services map[string]any `json:"services"`
	}
	ts.must(http.StatusOK, "GET", "/api/node/desired?version=&wait=0s", node, nil, &ds)
	ts.must(http.StatusNotModified, "GET", "/api/node/desired?version="+ds.Version+"&wait=10ms", node, nil, nil)
	ts.must(http.StatusNoContent, "POST", "/api/node/report", node, map[string]any{"version": ds.Version, "services": []any{}}, nil)
	metrics := string(ts.must(http.StatusOK, "GET", "/metrics", adminToken, nil, nil))
	for _, want := range []string{"ferry_nodes_registered 1", "ferry_nodes_seen 1", `ferry_deployments_active{state="running"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}

	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/repos", node, http.StatusForbidden},
		{"GET", "/api/nodes", node, http.StatusForbidden},
		{"POST", "/api/agent/lease", node, http.StatusForbidden},
		{"POST", "/api/node/register", user, http.StatusForbidden},
		{"POST", "/api/node/register", agentTok.Token, http.StatusForbidden},
		{"POST", "/api/node/register", adminToken, http.StatusForbidden},
		{"GET", "/api/node-tokens", user, http.StatusForbidden},
	} {
		ts.must(c.want, c.method, c.path, c.token, map[string]any{"name": "x"}, nil)
	}
	// The node tokens are listed apart from the agent tokens; revoking
	// one shuts the node out.
	var agents, nodes []struct{ Kind string }
	ts.must(http.StatusOK, "GET", "/api/agent-tokens", adminToken, nil, &agents)
	ts.must(http.StatusOK, "GET", "/api/node-tokens", adminToken, nil, &nodes)
	if len(agents) != 1 || agents[0].Kind != "agent" || len(nodes) != 1 || nodes[0].Kind != "node" {
		t.Fatalf("agent tokens %+v, node tokens %+v", agents, nodes)
	}
	ts.must(http.StatusNoContent, "DELETE", "/api/node-tokens/"+itoa(tok.ID), adminToken, nil, nil)
	ts.must(http.StatusUnauthorized, "POST", "/api/node/report", node, map[string]any{"version": "1", "services": []any{}}, nil)
}
