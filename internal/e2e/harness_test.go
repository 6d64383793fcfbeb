package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/testnet"
	"github.com/jackc/pgx/v5"
)

// adminToken is the --admin-token every test server bootstraps with.
const adminToken = "ferry_e2e_admin_token_0123456789"

// skipOrFail skips the test with a message naming what is missing, or
// fails it when CI=true: a CI run that silently skips proves nothing.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: this is a failure, not a skip)", args...)
	}
	t.Skipf(format+" (skipping; with CI=true this fails)", args...)
}

// randomHex returns n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ---- processes ----

// proc is a ferry process started by a test. Its output goes to a file,
// which is printed when the test fails.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's error, set before done is closed
}

// startProc starts ferry with args. The process is stopped when the test
// ends (see stop), and its output is logged if the test failed.
func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, args...)
}

// startProcEnv is startProc with more environment variables (K=V): the
// way to pass tokens, which must not show on a command line.
func startProcEnv(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ferryBin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"), env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	logFile.Close() // the child holds its own copy
	p := &proc{t: t, name: name, cmd: cmd, log: logFile.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.dump()
		}
	})
	return p
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) kill9() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited before it could be killed: %v", p.name, p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("killing %s: %v", p.name, err)
	}
	<-p.done
}

// stop ends the process gracefully with SIGTERM, and with SIGKILL when it
// is still there after ten seconds. An agent gets a second SIGTERM a
// moment after the first: it drains on the first, and kills its running
// jobs (removing their containers) on the second. A server stops on the
// first; a second would make it exit at once.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if len(p.cmd.Args) > 1 && p.cmd.Args[1] == "agent" {
		select {
		case <-p.done:
			return
		case <-time.After(300 * time.Millisecond):
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute): // a guard against hanging, not a requirement
		p.t.Errorf("%s did not stop within a minute of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// output returns what the process printed so far.
func (p *proc) output() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.log, err)
	}
	return string(data)
}

// dump logs the process's output, at most its last 64 KiB.
func (p *proc) dump() {
	out := p.output()
	if len(out) > 64<<10 {
		out = "…" + out[len(out)-64<<10:]
	}
	p.t.Logf("---- output of %s (pid %d) ----\n%s---- end of %s ----", p.name, p.pid(), out, p.name)
}

// waitOutput waits until the process has printed substr.
func (p *proc) waitOutput(substr string, timeout time.Duration) {
	p.t.Helper()
	eventually(p.t, timeout, 50*time.Millisecond, func() (bool, string) {
		if p.exited() {
			p.t.Fatalf("%s exited (%v) before printing %q", p.name, p.err, substr)
		}
		return strings.Contains(p.output(), substr), fmt.Sprintf("%s has not printed %q", p.name, substr)
	})
}

// eventually calls cond every interval until it returns true, and fails
// the test with cond's last explanation when timeout passes first, or a
// minute if timeout is shorter: a wait is a guard against hanging, never a
// requirement, since on a busy machine everything takes longer.
func eventually(t testing.TB, timeout, interval time.Duration, cond func() (bool, string)) {
	t.Helper()
	timeout = max(timeout, time.Minute)
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(interval)
	}
}

// freePort returns a free loopback TCP port for a server process (see
// internal/testnet).
func freePort(t testing.TB) int {
	t.Helper()
	return testnet.FreePort(t)
}

// ---- servers ----

// serverOptions configure a ferry server process.
type serverOptions struct {
	// DataDir is the --data-dir; empty means a new temporary directory.
	DataDir string
	// Database is the --database DSN; empty means SQLite in DataDir.
	Database string
	// Port is the loopback port; zero picks a free one.
	Port int
	// SecretKey is the --secret-key; servers sharing a database need the
	// same one. Empty lets the server generate one in DataDir.
	SecretKey string
	// Args are more flags, such as --lease-ttl.
	Args []string
}

// ferryServer is a `ferry server` process.
type ferryServer struct {
	*proc
	opts serverOptions
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
}

// startServer starts a server with an admin token and waits until
// /healthz answers.
func startServer(t testing.TB, opts serverOptions) *ferryServer {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Port == 0 {
		opts.Port = freePort(t)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(opts.Port)
	args := []string{"server",
		"--addr", "127.0.0.1:" + strconv.Itoa(opts.Port),
		"--data-dir", opts.DataDir,
		"--url", url,
	}
	if opts.Database != "" {
		args = append(args, "--database", opts.Database)
	}
	if opts.SecretKey != "" {
		args = append(args, "--secret-key", opts.SecretKey)
	}
	args = append(args, opts.Args...)
	s := &ferryServer{proc: startProcEnv(t, "server-"+strconv.Itoa(opts.Port), []string{"FERRY_ADMIN_TOKEN=" + adminToken}, args...), opts: opts, URL: url}
	s.waitHealthy(t)
	return s
}

// restart starts a new server process with the same options, port and
// data directory; the old one must have exited.
func (s *ferryServer) restart(t testing.TB) *ferryServer {
	t.Helper()
	if !s.exited() {
		t.Fatalf("%s is still running", s.name)
	}
	return startServer(t, s.opts)
}

// waitHealthy waits until GET /healthz answers 200.
func (s *ferryServer) waitHealthy(t testing.TB) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, 20*time.Second, 20*time.Millisecond, func() (bool, string) {
		if s.exited() {
			t.Fatalf("%s exited at start: %v\n%s", s.name, s.err, s.output())
		}
		res, err := hc.Get(s.URL + "/healthz")
		if err != nil {
			return false, fmt.Sprintf("%s does not answer: %v", s.name, err)
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, fmt.Sprintf("GET /healthz answered %s", res.Status)
	})
}

// vmKiB reads a field of /proc/PID/status (VmRSS, VmHWM) in KiB.
func (p *proc) vmKiB(t testing.TB, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		t.Fatalf("reading the status of %s: %v", p.name, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parsing %s of %s: %q", field, p.name, line)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", p.pid(), field)
	return 0
}

// cpuTime returns the CPU time the process has used, and the CPU time of
// its children that it has waited for (an agent's steps).
func (p *proc) cpuTime(t testing.TB) (self, children time.Duration) {
	t.Helper()
	self, children, err := cpuTimeOf(p.pid())
	if err != nil {
		t.Fatalf("reading the CPU time of %s: %v", p.name, err)
	}
	return self, children
}

// cpuTimeOf reads the CPU time of process pid, and of the children it has
// waited for, from /proc/PID/stat.
func cpuTimeOf(pid int) (self, children time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command name, which is in parentheses and
	// may hold spaces, start with field 3 (state); utime is field 14,
	// stime 15, cutime 16 and cstime 17.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat has %d fields after the name", pid, len(f))
	}
	var ticks [4]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(f[14-3+i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
		}
	}
	d := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return d(ticks[0] + ticks[1]), d(ticks[2] + ticks[3]), nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ---- agents ----

// agentOptions configure a ferry agent process.
type agentOptions struct {
	Name    string
	Backend string // default local
	// Capacity is --capacity; zero keeps the default.
	Capacity int
	// WorkDir is --workdir; empty means a new temporary directory.
	WorkDir string
	Args    []string
}

// startAgent starts `ferry agent` against server with token, which it
// gets in FERRY_AGENT_TOKEN. Unless opts.Args has --exec-user, host steps
// run as the test's user: they use the test's temporary directories,
// which only that user may enter.
func startAgent(t testing.TB, server, token string, opts agentOptions) *proc {
	t.Helper()
	if opts.Backend == "" {
		opts.Backend = "local"
	}
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	args := []string{"agent",
		"--server", server,
		"--name", opts.Name,
		"--backend", opts.Backend,
		"--workdir", opts.WorkDir,
	}
	if opts.Capacity > 0 {
		args = append(args, "--capacity", strconv.Itoa(opts.Capacity))
	}
	if !slices.Contains(opts.Args, "--exec-user") {
		args = append(args, "--exec-user", strconv.Itoa(os.Geteuid()))
	}
	args = append(args, opts.Args...)
	return startProcEnv(t, "agent-"+opts.Name, []string{"FERRY_AGENT_TOKEN=" + token}, args...)
}

// ---- the API ----

// api calls a server's HTTP API with a bearer token.
type api struct {
	t     testing.TB
	base  string
	token string
	hc    *http.Client
}

// newHTTPClient returns an HTTP client of its own for the test, whose idle
// connections are closed when the test ends (goleak checks that nothing
// is left).
func newHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// adminAPI returns an API client for s with the admin token.
func adminAPI(t testing.TB, s *ferryServer) *api {
	return &api{t: t, base: s.URL, token: adminToken, hc: newHTTPClient(t)}
}

// on returns a client for another server with the same token and
// connection pool.
func (a *api) on(s *ferryServer) *api {
	c := *a
	c.base = s.URL
	return &c
}

// apiError is an unexpected answer.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// call sends a request and returns the status and body. body is sent as
// JSON unless it is nil.
func (a *api) call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, data, err
}

// do sends a request, fails the test unless the answer has status want,
// and decodes a JSON answer into out when out is not nil.
func (a *api) do(method, path string, body any, want int, out any) {
	a.t.Helper()
	if err := a.try(method, path, body, want, out); err != nil {
		a.t.Fatal(err)
	}
}

// try is do, returning the error instead of failing the test.
func (a *api) try(method, path string, body any, want int, out any) error {
	status, data, err := a.call(method, path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return &apiError{Method: method, Path: path, Status: status, Body: string(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding %q: %w", method, path, data, err)
		}
	}
	return nil
}

// text GETs path and returns the plain-text answer.
func (a *api) text(path string) string {
	a.t.Helper()
	status, data, err := a.call("GET", path, nil)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	if status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, status, data)
	}
	return string(data)
}

// agentToken creates an agent token.
func (a *api) agentToken(name string) string {
	a.t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	a.do("POST", "/api/agent-tokens", map[string]string{"name": name}, http.StatusCreated, &out)
	if out.Token == "" {
		a.t.Fatal("POST /api/agent-tokens answered no token")
	}
	return out.Token
}

// repoJSON is the part of the API's repo the tests read.
type repoJSON struct {
	Slug          string `json:"slug"`
	GitURL        string `json:"git_url"`
	Forge         string `json:"forge"`
	BuildCounter  int64  `json:"build_counter"`
	WebhookURL    string `json:"webhook_url"`
	WebhookSecret string `json:"webhook_secret"`
}

// createRepo adds a repo; fields are the request's JSON fields. The repo
// is trusted unless fields say otherwise: the tests' exec pipelines run on
// the host, which only trusted repos may (docs/security.md).
func (a *api) createRepo(fields map[string]any) *repoJSON {
	a.t.Helper()
	if _, ok := fields["trusted"]; !ok {
		fields = maps.Clone(fields)
		fields["trusted"] = true
	}
	var out repoJSON
	a.do("POST", "/api/repos", fields, http.StatusCreated, &out)
	return &out
}

// buildJSON is the API's build.
type buildJSON struct {
	ID          int64             `json:"id"`
	Number      int64             `json:"number"`
	Event       string            `json:"event"`
	Ref         string            `json:"ref"`
	Branch      string            `json:"branch"`
	Commit      string            `json:"commit"`
	Message     string            `json:"message"`
	Author      string            `json:"author"`
	AuthorEmail string            `json:"author_email"`
	Sender      string            `json:"sender"`
	PullRequest int64             `json:"pull_request"`
	Fork        bool              `json:"fork"`
	Params      map[string]string `json:"params"`
	Status      string            `json:"status"`
	Error       string            `json:"error"`
	Approval    string            `json:"approval"`
	Created     time.Time         `json:"created"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Pipelines   []*pipelineJSON   `json:"pipelines"`
}

type pipelineJSON struct {
	Number    int64       `json:"number"`
	Name      string      `json:"name"`
	Status    string      `json:"status"`
	Error     string      `json:"error"`
	DependsOn []string    `json:"depends_on"`
	Agent     string      `json:"agent"`
	Steps     []*stepJSON `json:"steps"`
	Job       *jobJSON    `json:"job"`
}

type stepJSON struct {
	Number   int64     `json:"number"`
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	ExitCode int       `json:"exit_code"`
	Error    string    `json:"error"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

type jobJSON struct {
	ID            int64  `json:"id"`
	Status        string `json:"status"`
	Attempts      int    `json:"attempts"`
	Canceled      bool   `json:"canceled"`
	Error         string `json:"error"`
	WaitingReason string `json:"waiting_reason"`
}

// pipeline returns the build's pipeline named name.
func (b *buildJSON) pipeline(t testing.TB, name string) *pipelineJSON {
	t.Helper()
	for _, p := range b.Pipelines {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("build %d has no pipeline %q", b.Number, name)
	return nil
}

// step returns the pipeline's step named name.
func (p *pipelineJSON) step(t testing.TB, name string) *stepJSON {
	t.Helper()
	for _, s := range p.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("pipeline %q has no step %q", p.Name, name)
	return nil
}

// done reports whether a build, pipeline, step or job status is final.
func done(status string) bool {
	switch status {
	case "success", "failure", "error", "killed", "skipped", "declined":
		return true
	}
	return false
}

// build GETs build n of repo slug.
func (a *api) build(slug string, n int64) *buildJSON {
	a.t.Helper()
	var b buildJSON
	a.do("GET", fmt.Sprintf("/api/repos/%s/builds/%d", slug, n), nil, http.StatusOK, &b)
	return &b
}

// builds lists the builds of repo slug with an optional query.
func (a *api) builds(slug, query string) []*buildJSON {
	a.t.Helper()
	var out []*buildJSON
	path := "/api/repos/" + slug + "/builds"
	if query != "" {
		path += "?" + query
	}
	a.do("GET", path, nil, http.StatusOK, &out)
	return out
}

// waitBuild polls build n until it is final and returns it. Each state
// seen on the way is passed to seen, if not nil.
func (a *api) waitBuild(slug string, n int64, timeout time.Duration, seen func(*buildJSON)) *buildJSON {
	a.t.Helper()
	var b *buildJSON
	eventually(a.t, timeout, 20*time.Millisecond, func() (bool, string) {
		b = a.build(slug, n)
		if seen != nil {
			seen(b)
		}
		return done(b.Status), fmt.Sprintf("build %d is still %s: %s", n, b.Status, describe(b))
	})
	return b
}

// describe summarises a build's pipelines, steps and jobs for messages.
func describe(b *buildJSON) string {
	var sb strings.Builder
	for _, p := range b.Pipelines {
		fmt.Fprintf(&sb, "[pipeline %s %s", p.Name, p.Status)
		if p.Error != "" {
			fmt.Fprintf(&sb, " (%s)", p.Error)
		}
		if p.Job != nil {
			fmt.Fprintf(&sb, " job=%s attempts=%d", p.Job.Status, p.Job.Attempts)
			if p.Job.WaitingReason != "" {
				fmt.Fprintf(&sb, " waiting=%q", p.Job.WaitingReason)
			}
		}
		for _, s := range p.Steps {
			fmt.Fprintf(&sb, " step %s=%s", s.Name, s.Status)
		}
		sb.WriteString("] ")
	}
	return sb.String()
}

// stepLog fetches the whole log of a step.
func (a *api) stepLog(slug string, build, pipeline, step int64) string {
	a.t.Helper()
	return a.text(fmt.Sprintf("/api/repos/%s/builds/%d/pipelines/%d/steps/%d/logs", slug, build, pipeline, step))
}

// manualBuild starts a build of commit sha on branch through the API.
func (a *api) manualBuild(slug, branch, sha string) *buildJSON {
	a.t.Helper()
	var b buildJSON
	a.do("POST", "/api/repos/"+slug+"/builds", map[string]string{"branch": branch, "sha": sha}, http.StatusCreated, &b)
	return &b
}

// ---- PostgreSQL ----

// postgresDatabase creates a database of its own for the test on the
// PostgreSQL server of FERRY_TEST_POSTGRES, drops it when the test ends
// (after the servers using it have stopped), and returns its DSN. It skips
// the test when the variable is unset, and fails it when CI=true.
func postgresDatabase(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("FERRY_TEST_POSTGRES")
	if dsn == "" {
		skipOrFail(t, "FERRY_TEST_POSTGRES is not set; set it to a superuser DSN such as "+
			"postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable to run the PostgreSQL tests")
	}
	name := "ferry_e2e_" + randomHex(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to FERRY_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("FERRY_TEST_POSTGRES is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// ---- misc ----

// killGroupFromFile kills the process group whose leader's pid a step
// wrote to path, if it did: the local backend runs each step in a process
// group of its own, which outlives an agent killed with SIGKILL.
func killGroupFromFile(t testing.TB, path string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Errorf("reading step pid: %v", err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Errorf("step pid file %s holds %q", path, data)
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// lines splits a log into its lines, without the empty string after the
// last newline.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// writeFile writes data to dir/name, creating directories.
func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// parallelDo runs f(i) for i in [0, n) on workers goroutines and returns
// the first error.
func parallelDo(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
