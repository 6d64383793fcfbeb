package server

import (
	"net/http"
	"slices"

	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/trigger"
)

// buildRouter registers every route and builds the top-level handler.
func (s *Server) buildRouter() {
	hooks := trigger.WebhookHandler(s.store, s, s.log.With("component", "webhook"))
	const repo = "/api/repos/{owner}/{name}"
	const build = repo + "/builds/{number}"
	const step = build + "/pipelines/{pipeline}/steps/{step}"
	s.routes = []route{
		{"GET", "/healthz", accessPublic, http.HandlerFunc(s.healthz)},
		{"POST", "/hook", accessPublic, hooks},
		{"POST", "/hook/{slug...}", accessPublic, hooks},
		{"GET", "/metrics", accessMetrics, s.metrics.handler()},
		{"GET", "/api/openapi.json", accessUser, http.HandlerFunc(serveOpenAPI)},
		{"POST", "/api/sessions", accessPublic, s.serve(s.createSession)},

		{"GET", "/api/user", accessUser, s.serve(s.getSelf)},
		{"GET", "/api/user/tokens", accessUser, s.serve(s.listOwnTokens)},
		{"POST", "/api/user/tokens", accessUser, s.serve(s.createOwnToken)},
		{"DELETE", "/api/user/tokens/{id}", accessUser, s.serve(s.deleteOwnToken)},
		{"PUT", "/api/user/password", accessUser, s.serve(s.setOwnPassword)},

		{"GET", "/api/users", accessAdmin, s.serve(s.listUsers)},
		{"POST", "/api/users", accessAdmin, s.serve(s.createUser)},
		{"GET", "/api/users/{login}", accessAdmin, s.serve(s.getUser)},
		{"PATCH", "/api/users/{login}", accessAdmin, s.serve(s.updateUser)},
		{"DELETE", "/api/users/{login}", accessAdmin, s.serve(s.deleteUser)},
		{"POST", "/api/users/{login}/tokens", accessAdmin, s.serve(s.createUserToken)},
		{"PUT", "/api/users/{login}/password", accessAdmin, s.serve(s.setUserPassword)},

		{"GET", "/api/agent-tokens", accessAdmin, s.serve(s.listAgentTokens)},
		{"POST", "/api/agent-tokens", accessAdmin, s.serve(s.createAgentToken)},
		{"DELETE", "/api/agent-tokens/{id}", accessAdmin, s.serve(s.deleteAgentToken)},
		{"GET", "/api/agents", accessAdmin, s.serve(s.listAgents)},
		{"GET", "/api/queue", accessAdmin, s.serve(s.listQueue)},
		{"DELETE", "/api/agents/{agent}", accessAdmin, s.serve(s.deleteAgent)},

		{"GET", "/api/secrets", accessAdmin, s.serve(s.listSecrets)},
		{"POST", "/api/secrets", accessAdmin, s.serve(s.createSecret)},
		{"GET", "/api/secrets/{secret}", accessAdmin, s.serve(s.getSecret)},
		{"PATCH", "/api/secrets/{secret}", accessAdmin, s.serve(s.updateSecret)},
		{"DELETE", "/api/secrets/{secret}", accessAdmin, s.serve(s.deleteSecret)},

		{"GET", "/api/repos", accessUser, s.serve(s.listRepos)},
		{"POST", "/api/repos", accessUser, s.serve(s.createRepo)},
		{"GET", repo, accessUser, s.serve(s.getRepo)},
		{"PATCH", repo, accessUser, s.serve(s.updateRepo)},
		{"DELETE", repo, accessUser, s.serve(s.deleteRepo)},
		{"GET", repo + "/perms", accessUser, s.serve(s.listPerms)},
		{"PUT", repo + "/perms/{login}", accessUser, s.serve(s.setPerm)},
		{"DELETE", repo + "/perms/{login}", accessUser, s.serve(s.deletePerm)},
		{"GET", repo + "/secrets", accessUser, s.serve(s.listSecrets)},
		{"POST", repo + "/secrets", accessUser, s.serve(s.createSecret)},
		{"GET", repo + "/secrets/{secret}", accessUser, s.serve(s.getSecret)},
		{"PATCH", repo + "/secrets/{secret}", accessUser, s.serve(s.updateSecret)},
		{"DELETE", repo + "/secrets/{secret}", accessUser, s.serve(s.deleteSecret)},
		{"GET", repo + "/credential", accessUser, s.serve(s.getCredential)},
		{"PUT", repo + "/credential", accessUser, s.serve(s.putCredential)},
		{"DELETE", repo + "/credential", accessUser, s.serve(s.deleteCredential)},
		{"GET", repo + "/crons", accessUser, s.serve(s.listCrons)},
		{"POST", repo + "/crons", accessUser, s.serve(s.createCron)},
		{"DELETE", repo + "/crons/{cron}", accessUser, s.serve(s.deleteCron)},

		{"GET", repo + "/builds", accessUser, s.serve(s.listBuilds)},
		{"POST", repo + "/builds", accessUser, s.serve(s.postBuild)},
		{"GET", build, accessUser, s.serve(s.getBuild)},
		{"GET", build + "/events", accessUser, s.serve(s.buildEventStream)},
		{"POST", build + "/cancel", accessUser, s.serve(s.cancelBuild)},
		{"POST", build + "/restart", accessUser, s.serve(s.restartBuild)},
		{"POST", build + "/approve", accessUser, s.serve(s.approveBuild)},
		{"POST", build + "/decline", accessUser, s.serve(s.declineBuild)},
		{"GET", step + "/logs", accessUser, s.serve(s.stepLogs)},
		{"GET", step + "/logs/stream", accessUser, s.serve(s.stepLogStream)},

		{"POST", rpc.PathLease, accessAgent, s.serve(s.rpcLease)},
		{"POST", rpc.PathExtend, accessAgent, s.serve(s.rpcExtend)},
		{"POST", rpc.PathStep, accessAgent, s.serve(s.rpcStep)},
		{"POST", rpc.PathLogs, accessAgent, s.serve(s.rpcLogs)},
		{"POST", rpc.PathComplete, accessAgent, s.serve(s.rpcComplete)},
		{"POST", rpc.PathReport, accessAgent, s.serve(s.rpcReport)},
	}
	s.routes = append(s.routes, s.deployRoutes()...)
	s.mux = http.NewServeMux()
	accessOf := make(map[string]access, len(s.routes))
	for _, rt := range s.routes {
		pattern := rt.method + " " + rt.path
		s.mux.Handle(pattern, rt.handler)
		accessOf[pattern] = rt.access
	}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		a, known := accessOf[pattern]
		if known && a == accessPublic {
			s.mux.ServeHTTP(w, r)
			return
		}
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if known {
			if err := authorize(p, a); err != nil {
				s.writeError(w, r, err)
				return
			}
		} else {
			// No route matched: the router answers 404 or 405, as JSON.
			w = &jsonErrorWriter{ResponseWriter: w}
		}
		s.mux.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// Routes returns the registered routes as "METHOD /pattern" strings, in
// registration order. The OpenAPI document describes exactly these.
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, rt.method+" "+rt.path)
	}
	return slices.Clip(out)
}

// healthz answers 200 when the store answers within two seconds, and 503
// otherwise.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.storeDown(r.Context()) {
		s.log.Warn("health check: the store does not answer")
		writeJSON(w, http.StatusServiceUnavailable, &apiError{Message: "the store does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
