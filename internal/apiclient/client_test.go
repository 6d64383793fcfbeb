package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/apiclient/apitest"
	"github.com/ferryci/ferry/internal/rpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var ctx = context.Background()

// TestTypesMatchOpenAPI checks that every type mirrors its schema in
// docs/openapi.json field for field, so that printing a decoded object
// (--json) shows what the server sent, and that requests send only
// fields the server knows.
func TestTypesMatchOpenAPI(t *testing.T) {
	data, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				AllOf      []struct {
					Ref        string                     `json:"$ref"`
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"allOf"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var schemaFields func(name string) []string
	schemaFields = func(name string) []string {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("docs/openapi.json has no schema %s", name)
		}
		var out []string
		for k := range s.Properties {
			out = append(out, k)
		}
		for _, part := range s.AllOf {
			if ref, ok := strings.CutPrefix(part.Ref, "#/components/schemas/"); ok {
				out = append(out, schemaFields(ref)...)
			}
			for k := range part.Properties {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	for schema, v := range map[string]any{
		"User": apiclient.User{}, "UserRequest": apiclient.UserRequest{}, "Token": apiclient.Token{},
		"TokenRequest": apiclient.TokenRequest{}, "Repo": apiclient.Repo{}, "RepoRequest": apiclient.RepoRequest{},
		"Secret": apiclient.Secret{}, "SecretRequest": apiclient.SecretRequest{}, "BuildDetail": apiclient.Build{},
		"Pipeline": apiclient.Pipeline{}, "Step": apiclient.Step{}, "Job": apiclient.Job{},
		"ManualBuildRequest": apiclient.BuildRequest{},
		"SessionRequest":     apiclient.SessionRequest{}, "PasswordRequest": apiclient.PasswordRequest{},
	} {
		var fields []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields = append(fields, name)
			}
		}
		slices.Sort(fields)
		if want := schemaFields(schema); !slices.Equal(fields, want) {
			t.Errorf("%s has JSON fields %v; schema %s has %v", typ.Name(), fields, schema, want)
		}
	}
}

// setup starts a server with the repo acme/app holding a one-step exec
// pipeline, and returns an admin client and an agent client.
func setup(t *testing.T) (*apitest.Server, *apiclient.Client, *rpc.Client) {
	t.Helper()
	srv := apitest.NewServer(t)
	c := srv.Client(t, apitest.AdminToken)
	url := apitest.GitRepo(t, "acme", "app", map[string]string{
		".ferry.yml": "kind: pipeline\ntype: exec\nname: p\nsteps:\n- name: s\n  commands: [echo hi]\n",
	})
	if _, err := c.CreateRepo(ctx, &apiclient.RepoRequest{GitURL: &url, PollInterval: new(apiclient.Duration(0)), Trusted: new(true)}); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.CreateAgentToken(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alive: the tests cut connections under the API client, and
	// an agent call must not be sent on a connection the server dropped.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return srv, c, rpc.NewClient(srv.URL, tok, hc)
}

// leaseJob leases the pending job of an exec pipeline and marks its step s
// running.
func leaseJob(t *testing.T, a *rpc.Client) *rpc.Job {
	t.Helper()
	job, err := a.Lease(ctx, &rpc.LeaseRequest{Name: "test", Capacity: 1, Wait: 5 * time.Second,
		Labels: map[string]string{"backend": "local", "platform": "linux/amd64"}})
	if err != nil || job == nil {
		t.Fatalf("Lease: %v, %v", job, err)
	}
	if err := a.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: job.LeaseToken, Step: "s", Status: "running", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return job
}

// TestDecodedObjectsEncodeAsSent checks that a build and a repo decoded by
// the client encode to the JSON the server sent.
func TestDecodedObjectsEncodeAsSent(t *testing.T) {
	srv, c, _ := setup(t)
	b, err := c.StartBuild(ctx, "acme/app", &apiclient.BuildRequest{Params: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Number != 1 || len(b.Pipelines) != 1 || b.Pipelines[0].Job == nil || b.Pipelines[0].Job.WaitingReason == "" {
		t.Fatalf("StartBuild = %+v", b)
	}
	for _, path := range []string{"/api/repos/acme/app/builds/1", "/api/repos/acme/app", "/api/user"} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
		res, err := srv.HTTP.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s, %v", path, res.Status, err)
		}
		var typed any
		switch path {
		case "/api/repos/acme/app/builds/1":
			typed, err = c.Build(ctx, "acme/app", 1)
		case "/api/repos/acme/app":
			typed, err = c.Repo(ctx, "acme/app")
		default:
			typed, err = c.Self(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(typed)
		if err != nil {
			t.Fatal(err)
		}
		var want, got any
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(again, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("GET %s: the server sent\n%s\nthe client encodes it as\n%s", path, raw, again)
		}
	}
}

// TestBuildsPages lists builds page by page.
func TestBuildsPages(t *testing.T) {
	_, c, _ := setup(t)
	for range 3 {
		if _, err := c.StartBuild(ctx, "acme/app", nil); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := c.Builds(ctx, "acme/app", apiclient.BuildFilter{Limit: 2})
	if err != nil || len(page) != 2 || page[0].Number != 3 || page[1].Number != 2 || next != 2 {
		t.Fatalf("first page: %d builds, next %d, %v", len(page), next, err)
	}
	page, next, err = c.Builds(ctx, "acme/app", apiclient.BuildFilter{Limit: 2, Before: next})
	if err != nil || len(page) != 1 || page[0].Number != 1 || next != 0 {
		t.Fatalf("second page: %d builds, next %d, %v", len(page), next, err)
	}
	page, _, err = c.Builds(ctx, "acme/app", apiclient.BuildFilter{Status: apiclient.StatusSuccess})
	if err != nil || len(page) != 0 {
		t.Fatalf("no build succeeded, yet the filter found %d (%v)", len(page), err)
	}
}

// cuttingDialer dials TCP connections and can cut them all.
type cuttingDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	dials int
}

func (d *cuttingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns = append(d.conns, c)
	d.dials++
	return c, nil
}

func (d *cuttingDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

func (d *cuttingDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// TestFollowLogReconnects follows a step's log through a connection that
// is cut in the middle: the client reconnects and resumes after the last
// line it got, so every line arrives once and in order, and the call
// returns how the step ended.
func TestFollowLogReconnects(t *testing.T) {
	srv, admin, agent := setup(t)
	if _, err := admin.StartBuild(ctx, "acme/app", nil); err != nil {
		t.Fatal(err)
	}
	job := leaseJob(t, agent)
	send := func(seq int64, lines ...string) {
		t.Helper()
		if err := agent.AppendLogs(ctx, job.ID, &rpc.LogBatch{LeaseToken: job.LeaseToken, Step: "s", Seq: seq, Lines: lines}); err != nil {
			t.Fatal(err)
		}
	}
	send(0, "zero", "", "two: progress 10%\rprogress 100%")

	d := &cuttingDialer{}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	c := srv.ClientWith(t, apitest.AdminToken, &http.Client{Transport: tr})
	got := make(chan apiclient.LogLine, 100)
	type result struct {
		end *apiclient.StepEnd
		err error
	}
	done := make(chan result, 1)
	go func() {
		end, err := c.FollowLog(ctx, "acme/app", 1, 1, 1, 0, func(l apiclient.LogLine) error {
			got <- l
			return nil
		})
		done <- result{end, err}
	}()
	var lines []apiclient.LogLine
	receive := func(n int) {
		t.Helper()
		for range n {
			select {
			case l := <-got:
				lines = append(lines, l)
			case r := <-done:
				t.Fatalf("FollowLog returned early: %+v, %v", r.end, r.err)
			case <-time.After(time.Minute): // a guard against hanging, not a requirement
				t.Fatalf("no line within a minute; got %+v", lines)
			}
		}
	}
	receive(3)
	d.cut()
	send(3, "three", "four")
	receive(2)
	if err := agent.UpdateStep(ctx, job.ID, &rpc.StepUpdate{LeaseToken: job.LeaseToken, Step: "s", Status: "failure",
		ExitCode: 3, Finished: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute): // a guard against hanging, not a requirement
		t.Fatal("FollowLog did not return within a minute of the step's end")
	}
	if r.err != nil || r.end == nil || r.end.Status != apiclient.StatusFailure || r.end.ExitCode != 3 {
		t.Fatalf("FollowLog = %+v, %v; want failure with exit code 3", r.end, r.err)
	}
	var texts []string
	for i, l := range lines {
		texts = append(texts, l.Text)
		if i > 0 && l.Seq <= lines[i-1].Seq {
			t.Errorf("sequence numbers do not grow: %+v", lines)
		}
	}
	want := []string{"zero", "", "two: progress 10%\rprogress 100%", "three", "four"}
	if !slices.Equal(texts, want) || len(got) != 0 {
		t.Fatalf("lines = %q (and %d more), want %q", texts, len(got), want)
	}
	if n := d.count(); n < 2 {
		t.Fatalf("the client dialled %d time(s); the cut should have made it reconnect", n)
	}

	// Following a finished step returns its log and end at once; from
	// skips lines.
	var rest []string
	end, err := c.FollowLog(ctx, "acme/app", 1, 1, 1, lines[3].Seq, func(l apiclient.LogLine) error {
		rest = append(rest, l.Text)
		return nil
	})
	if err != nil || end.Status != apiclient.StatusFailure || !slices.Equal(rest, []string{"three", "four"}) {
		t.Fatalf("FollowLog from %d = %q, %+v, %v", lines[3].Seq, rest, end, err)
	}
	// An error from the callback ends the stream and is returned.
	stop := errors.New("stop")
	if _, err := c.FollowLog(ctx, "acme/app", 1, 1, 1, 0, func(apiclient.LogLine) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("FollowLog with a failing callback: %v, want %v", err, stop)
	}
}

// TestFollowLogErrors checks that an error answer ends FollowLog at once,
// without retrying, and that cancelling its context ends it too.
func TestFollowLogErrors(t *testing.T) {
	srv, admin, agent := setup(t)
	d := &cuttingDialer{}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	c := srv.ClientWith(t, apitest.AdminToken, &http.Client{Transport: tr})
	noLines := func(apiclient.LogLine) error { return nil }

	_, err := c.FollowLog(ctx, "acme/app", 9, 1, 1, 0, noLines)
	if !apiclient.IsStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), "build 9 of acme/app not found") {
		t.Fatalf("FollowLog of a missing build: %v", err)
	}
	if d.count() != 1 {
		t.Fatalf("FollowLog of a missing build dialled %d times; a 404 must not be retried", d.count())
	}

	if _, err := admin.StartBuild(ctx, "acme/app", nil); err != nil {
		t.Fatal(err)
	}
	leaseJob(t, agent)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.FollowLog(cctx, "acme/app", 1, 1, 1, 0, noLines); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FollowLog with a context that ends: %v", err)
	}
	if d := time.Since(start); d > 2*time.Minute { // a guard: the stream would wait for the step
		t.Fatalf("FollowLog took %s to notice its context ended", d)
	}
}

// TestErrors checks the errors of the real server's answers, and of an
// answer that is not ferry's (a STAND-IN for a proxy in front of the
// server, which sends HTML).
func TestErrors(t *testing.T) {
	srv, c, _ := setup(t)
	_, err := c.CreateRepo(ctx, &apiclient.RepoRequest{GitURL: new("https://example.com/a/b"), Slug: new("bad slug")})
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.Field != "slug" ||
		err.Error() != `slug "bad slug" must be OWNER/NAME: two parts separated by one '/', each of 1 to 100 letters, digits, `+
			`'.', '_' or '-', not starting with '-', and neither '.' nor '..' (HTTP 400)` {
		t.Fatalf("CreateRepo with a bad slug: %#v", err)
	}
	anon := srv.Client(t, "")
	if _, err := anon.Repos(ctx); !apiclient.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("Repos without a token: %v", err)
	}
	if err := c.DeleteSecret(ctx, "acme/app", ""); err == nil || errors.As(err, &ae) {
		t.Fatalf("DeleteSecret without a name: %v", err)
	}
	if _, err := c.Repo(ctx, "no-slash"); err == nil || !strings.Contains(err.Error(), "must be OWNER/NAME") {
		t.Fatalf("Repo(no-slash): %v", err)
	}

	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>\n")
	}))
	defer proxy.Close()
	pc, err := apiclient.New(proxy.URL+"/ferry/", "tok", proxy.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = pc.Repos(ctx)
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadGateway || ae.Message != "<html><body>502 Bad Gateway</body></html>" {
		t.Fatalf("an HTML error answer: %#v", err)
	}

	for _, bad := range []string{"", "localhost:8080", "ftp://example.com", "http://", "http://example.com/?q=1"} {
		if _, err := apiclient.New(bad, "", nil); err == nil {
			t.Errorf("New(%q) accepted a bad server URL", bad)
		}
	}
}

// TestServerPath checks that a server URL with a path prefix (behind a
// reverse proxy) prefixes every request.
func TestServerPath(t *testing.T) {
	srv := apitest.NewServer(t)
	front := httptest.NewServer(http.StripPrefix("/ci", srv.HTTP.Config.Handler))
	defer front.Close()
	c, err := apiclient.New(front.URL+"/ci/", apitest.AdminToken, front.Client())
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.Self(ctx); err != nil || u.Login != "admin" {
		t.Fatalf("Self through a path prefix: %+v, %v", u, err)
	}
	if c.Server() != front.URL+"/ci" {
		t.Fatalf("Server() = %q", c.Server())
	}
}
