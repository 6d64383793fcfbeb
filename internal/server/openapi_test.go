package server_test

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/server"
)

// TestOpenAPIRoutes checks that the OpenAPI document describes exactly the
// routes the server registers, both ways, that it is a valid OpenAPI 3
// document, and that docs/openapi.json is the same document.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "sqlite", nil)
	doc := server.OpenAPI()

	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}

	// ServeMux's {name...} wildcard is {name} in OpenAPI.
	rest := regexp.MustCompile(`\{(\w+)\.\.\.\}`)
	registered := map[string]bool{}
	for _, r := range ts.Routes() {
		registered[rest.ReplaceAllString(r, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("registered but not in the document:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("in the document but not registered:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(registered) < 50 {
		t.Errorf("only %d routes registered: the comparison reads the wrong list", len(registered))
	}

	// The server serves the document, to token holders only.
	served := ts.must(http.StatusOK, "GET", "/api/openapi.json", adminToken, nil, nil)
	if !bytes.Equal(served, doc) {
		t.Error("GET /api/openapi.json differs from the embedded document")
	}
	kept, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatalf("reading docs/openapi.json: %v", err)
	}
	if !bytes.Equal(kept, doc) {
		t.Error("docs/openapi.json differs from internal/server/openapi.json; copy it: cp internal/server/openapi.json docs/")
	}
}

// TestOpenAPITypes checks that every schema of the OpenAPI document has
// exactly the fields of the Go type that the server writes or reads for
// it (internal/api for the user API, internal/rpc for agents), both ways.
func TestOpenAPITypes(t *testing.T) {
	t.Parallel()
	spec, err := openapi3.NewLoader().LoadFromData(server.OpenAPI())
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	types := map[string]any{
		"User": api.User{}, "UserRequest": api.UserRequest{}, "Token": api.Token{}, "TokenRequest": api.TokenRequest{},
		"Agent": api.Agent{}, "Repo": api.Repo{}, "RepoRequest": api.RepoRequest{}, "Perm": api.Perm{},
		"PermRequest": api.PermRequest{}, "Secret": api.Secret{}, "SecretRequest": api.SecretRequest{},
		"Cron": api.Cron{}, "CronRequest": api.CronRequest{}, "BuildDetail": api.Build{}, "Pipeline": api.Pipeline{},
		"Step": api.Step{}, "Job": api.Job{}, "ManualBuildRequest": api.BuildRequest{},
		"RestartRequest": api.RestartRequest{}, "Credential": api.Credential{}, "SessionRequest": api.SessionRequest{}, "PasswordRequest": api.PasswordRequest{},
		"Release": api.Release{}, "ReleaseRequest": api.ReleaseRequest{}, "Deployment": api.Deployment{},
		"DeploymentNode": api.DeploymentNode{}, "DeployRequest": api.DeployRequest{}, "ActionRequest": api.ActionRequest{},
		"Lock": api.Lock{}, "AuditEntry": api.AuditEntry{}, "Node": api.Node{}, "Service": api.Service{}, "QueueEntry": api.QueueEntry{},
		"EnvironmentStatus":   api.EnvironmentStatus{},
		"NodeRegisterRequest": nodeproto.RegisterRequest{}, "NodeRegisterResponse": nodeproto.RegisterResponse{},
		"DesiredState": nodeproto.DesiredState{}, "NodeRelease": nodeproto.Release{}, "NodeReport": nodeproto.Report{},
		"NodeServiceStatus": nodeproto.ServiceStatus{}, "CredentialRequest": api.CredentialRequest{},
		"LeaseRequest": rpc.LeaseRequest{}, "AgentJob": rpc.Job{}, "ExtendRequest": rpc.ExtendRequest{},
		"ExtendResponse": rpc.ExtendResponse{}, "StepUpdate": rpc.StepUpdate{}, "LogBatch": rpc.LogBatch{},
		"CompleteRequest": rpc.CompleteRequest{}, "Report": rpc.Report{}, "ReportItem": rpc.ReportItem{},
	}
	// Schemas that no Go type stands for: errors are written by one
	// function, and Build is BuildDetail without its pipelines.
	untyped := map[string]bool{"Error": true, "Build": true}
	for name, ref := range spec.Components.Schemas {
		typ, ok := types[name]
		if !ok {
			if !untyped[name] {
				t.Errorf("schema %s: no Go type is checked against it; add it to the table", name)
			}
			continue
		}
		documented := schemaFields(ref.Value)
		fields := jsonFields(reflect.TypeOf(typ))
		for f := range fields {
			if !documented[f] {
				t.Errorf("schema %s lacks field %q of %T", name, f, typ)
			}
		}
		for f := range documented {
			if !fields[f] {
				t.Errorf("schema %s has field %q, which %T lacks", name, f, typ)
			}
		}
	}
	// Build is BuildDetail less its pipelines.
	build := schemaFields(spec.Components.Schemas["Build"].Value)
	want := jsonFields(reflect.TypeFor[api.Build]())
	delete(want, "pipelines")
	if !maps.Equal(build, want) {
		t.Errorf("schema Build has fields %v, want %v", slices.Sorted(maps.Keys(build)), slices.Sorted(maps.Keys(want)))
	}
}

// schemaFields returns the property names of s, merging allOf.
func schemaFields(s *openapi3.Schema) map[string]bool {
	out := map[string]bool{}
	for name := range s.Properties {
		out[name] = true
	}
	for _, sub := range s.AllOf {
		maps.Copy(out, schemaFields(sub.Value))
	}
	return out
}

// jsonFields returns the JSON names of struct type t's fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = true
	}
	return out
}
