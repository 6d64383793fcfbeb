package web

import (
	"html"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

func TestLocalNext(t *testing.T) {
	for in, want := range map[string]string{
		"/repos/a/b": "/repos/a/b", "": "/", "//evil.example/x": "/", "/\\evil.example": "/",
		"https://evil.example/": "/", "javascript:alert(1)": "/",
	} {
		if got := localNext(in); got != want {
			t.Errorf("localNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionSealing(t *testing.T) {
	ui, err := New(Config{SessionKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{Token: "tok", Login: "ann", CSRF: "c", Expires: time.Now().Add(time.Hour).Unix()}
	v, err := ui.seal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "tok") {
		t.Fatal("the sealed cookie shows the token")
	}
	got, err := ui.open(v)
	if err != nil || got.Token != "tok" || got.Login != "ann" {
		t.Fatalf("open = %+v, %v", got, err)
	}
	// A changed byte, another key, or an expired session does not open.
	b := []byte(v)
	b[len(b)/2] ^= 1
	if _, err := ui.open(string(b)); err == nil {
		t.Error("a tampered cookie opened")
	}
	other, _ := New(Config{SessionKey: []byte(strings.Repeat("k", 32))})
	if _, err := other.open(v); err == nil {
		t.Error("a cookie opened under another key")
	}
	s.Expires = time.Now().Add(-time.Second).Unix()
	old, _ := ui.seal(s)
	if _, err := ui.open(old); err == nil {
		t.Error("an expired session opened")
	}
}

func TestPipelineDAG(t *testing.T) {
	b := &apiclient.Build{Number: 7, Pipelines: []*apiclient.Pipeline{
		{Number: 1, Name: "build", Steps: []*apiclient.Step{{Number: 1}}},
		{Number: 2, Name: "test", DependsOn: []string{"build"}},
		{Number: 3, Name: "lint", DependsOn: []string{"build"}},
		{Number: 4, Name: "deploy", DependsOn: []string{"test", "lint", "filtered-out"}},
	}}
	g := pipelineDAG("acme/app", b, b.Pipelines[1])
	cols := map[string]int{}
	for _, n := range g.Nodes {
		cols[n.Pipeline.Name] = (n.X - dagPad) / (dagNodeW + dagGapX)
	}
	if cols["build"] != 0 || cols["test"] != 1 || cols["lint"] != 1 || cols["deploy"] != 2 {
		t.Errorf("columns = %v", cols)
	}
	if len(g.Edges) != 4 {
		t.Errorf("%d edges, want 4 (a missing dependency draws none)", len(g.Edges))
	}
	if !g.Nodes[1].Selected || g.Nodes[0].Selected {
		t.Error("the selected pipeline is not marked")
	}
	if g.Nodes[0].Link != "/repos/acme/app/builds/7/1/1" || g.Nodes[1].Link != "/repos/acme/app/builds/7" {
		t.Errorf("links = %q, %q", g.Nodes[0].Link, g.Nodes[1].Link)
	}
	// A cycle (which the compiler refuses) still lays out.
	cyc := &apiclient.Build{Pipelines: []*apiclient.Pipeline{{Name: "a", DependsOn: []string{"b"}}, {Name: "b", DependsOn: []string{"a"}}}}
	if g := pipelineDAG("x/y", cyc, nil); len(g.Nodes) != 2 {
		t.Errorf("cycle: %d nodes", len(g.Nodes))
	}
}

func TestTimingBars(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &apiclient.Pipeline{Status: apiclient.StatusSuccess, Started: t0, Finished: t0.Add(100 * time.Second), Steps: []*apiclient.Step{
		{Started: t0, Finished: t0.Add(50 * time.Second)},
		{Started: t0.Add(50 * time.Second), Finished: t0.Add(100 * time.Second)},
		{}, // skipped: never started
	}}
	bars := timingBars(p, t0.Add(time.Hour))
	if bars[0].Offset != 0 || bars[0].Span != 50 || bars[1].Offset != 50 || bars[1].Span != 50 || bars[2].Span != 0 {
		t.Errorf("bars = %+v", bars)
	}
}

func TestOwns(t *testing.T) {
	for path, want := range map[string]bool{
		"/": true, "/login": true, "/repos/a/b/builds/1": true, "/static/app.js": true, "/badge/a/b/status.svg": true,
		"/api/repos": false, "/hook/a/b": false, "/healthz": false, "/metrics": false, "/api/agent/lease": false,
	} {
		if got := Owns(path); got != want {
			t.Errorf("Owns(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestBuildPageShowsWarnings checks that the build page lists the
// pipeline file's warnings (issue 11: where a user looking at the build
// sees them), and shows no warning block for a clean file.
func TestBuildPageShowsWarnings(t *testing.T) {
	ui, err := New(Config{SessionKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	render := func(b *apiclient.Build) string {
		rec := httptest.NewRecorder()
		ui.render(rec, 200, "build.html", &page{Title: "build", Session: &session{Login: "ann", CSRF: "c"},
			Data: buildData{Repo: &apiclient.Repo{Slug: "acme/app"}, Build: b, DAG: &dag{}}})
		if rec.Code != 200 {
			t.Fatalf("render: %d %s", rec.Code, rec.Body.String())
		}
		return rec.Body.String()
	}
	w := `.drone.yml:8:3: warning: "secrets" on a step is Drone 0.8's form`
	body := render(&apiclient.Build{Number: 1, Status: "success", Warnings: []string{w}})
	if !strings.Contains(body, `id="build-warnings"`) || !strings.Contains(body, html.EscapeString(w)) || !strings.Contains(body, "1 warning in the pipeline file") {
		t.Errorf("the build page lacks the warning:\n%s", body)
	}
	if body := render(&apiclient.Build{Number: 2, Status: "success"}); strings.Contains(body, "build-warnings") {
		t.Error("a build without warnings shows a warnings block")
	}
}
