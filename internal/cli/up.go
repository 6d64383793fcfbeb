package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/agent"
	"github.com/ferryci/ferry/internal/apiclient"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/server"
)

// UpOptions are the flags of `ferry up`.
type UpOptions struct {
	// Server is the server's configuration; up fills in what is unset.
	Server server.Config
	// Repos are local git checkouts to register and build; none means the
	// current directory.
	Repos []string
	// PollInterval is how often the registered repos are polled.
	PollInterval time.Duration
	// Once exits when the initial builds are final, with their status.
	Once bool
	// ExecUser is who host steps run as (agent.Config.ExecUser).
	ExecUser string

	Stdout io.Writer
	// Stderr receives the reason when up cannot start; default os.Stderr.
	Stderr io.Writer
	Logger *slog.Logger
}

// Up runs `ferry up`: the server and one agent in this process, on the
// embedded SQLite store by default. Every repo in o.Repos is registered
// (once) with polling, and a build of its current branch starts at once;
// its log is printed as it runs. It returns the exit code.
func Up(ctx context.Context, o UpOptions) int {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if len(o.Repos) == 0 {
		o.Repos = []string{"."}
	}
	locals := make([]*localRepo, 0, len(o.Repos))
	for _, dir := range o.Repos {
		l, err := inspectLocalRepo(ctx, dir)
		if err != nil {
			fmt.Fprintf(o.Stderr, "ferry up: %v\n", err)
			return ExitInvalid
		}
		locals = append(locals, l)
	}
	if o.Server.DataDir == "" {
		dir, err := DefaultUpDataDir(locals[0].abs)
		if err != nil {
			fmt.Fprintf(o.Stderr, "ferry up: %v\n", err)
			return ExitInvalid
		}
		o.Server.DataDir = dir
	}
	code, err := up(ctx, o, locals)
	if err != nil {
		fmt.Fprintf(o.Stderr, "ferry up: %v\n", err)
		return ExitFailed
	}
	return code
}

func up(ctx context.Context, o UpOptions, locals []*localRepo) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Host steps run in the agent's work dir: never inside the data dir,
	// which holds the secret key and the database.
	workDir := filepath.Join(os.TempDir(), "ferry-agent")
	if inside(workDir, o.Server.DataDir) {
		return 0, fmt.Errorf("the agent's work dir %s is inside the data dir %s; choose a --data-dir elsewhere (or another TMPDIR)", workDir, o.Server.DataDir)
	}
	// The agent empties its work dir when it stops; a work dir this run
	// made goes too, so that a clean run leaves nothing in TMPDIR. Runs
	// last (deferred first): after the agent has stopped. os.Remove keeps
	// a dir that is not empty: the records of steps a crash left running,
	// which the next start reads, or another agent's jobs.
	if _, err := os.Stat(workDir); errors.Is(err, fs.ErrNotExist) {
		defer os.Remove(workDir)
	}
	// The admin token of a first start is printed last, below the builds,
	// where a person sees it; not as a log line among the others.
	var adminToken string
	o.Server.OnAdminToken = func(tok string) { adminToken = tok }
	srv, err := server.Open(ctx, o.Server, o.Logger.With("component", "server"))
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", o.Server.Addr)
	if err != nil {
		return 0, fmt.Errorf("listening on %s: %w", o.Server.Addr, err)
	}
	url := "http://" + ln.Addr().String()
	if h, p, err := net.SplitHostPort(ln.Addr().String()); err == nil && (h == "::" || h == "0.0.0.0") {
		url = "http://localhost:" + p
	}

	fmt.Fprintf(o.Stdout, "ferry is up at %s (data in %s)\n", url, o.Server.DataDir)

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr <- srv.Serve(ctx, ln)
	}()
	// Runs last (deferred first): after the agent has stopped.
	defer func() {
		cancel()
		wg.Wait()
	}()

	// up is a client of the server's API, as the CLI is, with an admin
	// token of its own, revoked when it stops.
	apiToken, apiTokenID, err := srv.MintAdminToken(ctx, "ferry up", time.Now().Add(upTokenLife))
	if err != nil {
		return 0, fmt.Errorf("creating ferry up's API token: %w", err)
	}
	c, err := apiclient.New(url, apiToken, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := c.RevokeToken(context.WithoutCancel(ctx), apiTokenID); err != nil {
			o.Logger.Warn("revoking ferry up's API token", "err", err)
		}
	}()
	a := &API{Client: c, Stdout: o.Stdout, Stderr: o.Stderr}

	// A push reported through the API is built once: the server does not
	// poll the repo meanwhile, and moves its poll baseline to the commit.
	type started struct {
		slug  string
		build *apiclient.Build
	}
	var builds []started
	for _, l := range locals {
		slug, b, err := buildLocalRepo(ctx, c, l, o.PollInterval, o.Stdout)
		if err != nil {
			return 0, err
		}
		if b != nil {
			builds = append(builds, started{slug, b})
		}
	}

	token, err := srv.CreateAgentToken(ctx, "ferry-up")
	if err != nil {
		return 0, fmt.Errorf("creating the in-process agent's token: %w", err)
	}
	// ferry up builds the user's own checkout: when it does not run as
	// root, its host steps run as that user, as make or a shell would
	// (docs/security.md); a plain agent must be told so with --exec-user.
	execUser := o.ExecUser
	if execUser == "" && os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil {
			execUser = u.Username
		}
	}
	// The agent is in this process: its token is never on a command line.
	ag, err := agent.New(agent.Config{Server: url, Token: token, Name: "ferry-up", Backend: upBackends(ctx), ExecUser: execUser, WorkDir: workDir},
		o.Logger.With("component", "agent"))
	if err != nil {
		return 0, err
	}
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgent()
	agentDone := make(chan struct{})
	var agentErr error // set before agentDone closes
	go func() {
		defer close(agentDone)
		if err := ag.Run(agentCtx); err != nil && !errors.Is(err, context.Canceled) {
			agentErr = err
		}
	}()
	// An agent that stops by itself (it cannot use its work dir, say)
	// would leave the builds waiting for ever: stop with its reason.
	agentFailed := func() error {
		cancel()
		return fmt.Errorf("the agent stopped: %w", agentErr)
	}
	// On the way out: let running jobs finish, unless interrupted again.
	defer func() {
		ag.Drain()
		select {
		case <-agentDone:
		case <-time.After(30 * time.Second):
			stopAgent()
			<-agentDone
		}
	}()
	out := &lockedWriter{w: o.Stdout}
	results := make(chan apiclient.Status, len(builds))
	for _, b := range builds {
		go func() { results <- followBuild(ctx, a, b.slug, b.build.Number, out) }()
	}
	code := ExitOK
	for range builds {
		select {
		case st := <-results:
			if st != apiclient.StatusSuccess {
				code = ExitFailed
			}
		case <-agentDone:
			if agentErr != nil {
				return 0, agentFailed()
			}
		}
	}
	if o.Once {
		printAdminToken(o.Stdout, adminToken, url, o.Server.DataDir)
		return code, nil
	}
	fmt.Fprintln(o.Stdout, "watching for new commits; press Ctrl-C to stop")
	printAdminToken(o.Stdout, adminToken, url, o.Server.DataDir)
	select {
	case <-ctx.Done():
	case <-agentDone:
		if agentErr != nil {
			return 0, agentFailed()
		}
	case err := <-serveErr:
		if err != nil {
			return 0, err
		}
	}
	return code, nil
}

// upBackends offers docker and local when the Docker Engine answers, local
// alone otherwise.
func upBackends(ctx context.Context) string {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return agent.BackendLocal
	}
	defer cli.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return agent.BackendLocal
	}
	return agent.BackendDocker + "," + agent.BackendLocal
}

// localRepo is a git checkout that `ferry up` builds, as inspected before
// the server starts.
type localRepo struct {
	dir, abs string
	git      gitInfo
	// config is the pipeline file's name; dirty names the pipeline files
	// whose working copy differs from the commit (edited, added, deleted).
	config string
	dirty  []string
}

// inspectLocalRepo checks that dir is a git checkout with a commit and a
// pipeline file, and notes uncommitted changes to its pipeline files. Its
// errors say what to do instead.
func inspectLocalRepo(ctx context.Context, dir string) (*localRepo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory; --repo takes a git checkout", dir)
	}
	top, err := exec.CommandContext(ctx, "git", "-C", abs, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, fmt.Errorf("%s is not a git repository: ferry up builds the commits of a git checkout; "+
			"run it in one or pass --repo DIR (ferry exec runs a pipeline file without git)", dir)
	}
	if t := strings.TrimSpace(string(top)); t != "" {
		// A subdirectory builds the checkout it is in. git resolves
		// symbolic links; keep the path as given when it is the top.
		if r, err := filepath.EvalSymlinks(abs); err != nil || r != t {
			abs = t
		}
	}
	l := &localRepo{dir: dir, abs: abs, git: readGit(ctx, abs)}
	if l.git.SHA == "" {
		return nil, fmt.Errorf("%s is a git repository without a commit; commit its pipeline file first", dir)
	}
	name, _, err := pipeline.Load(abs, "")
	if err != nil {
		return nil, fmt.Errorf("%s has no pipeline file (%s); add one and commit it", dir, strings.Join(pipeline.DefaultFiles(), ", "))
	}
	l.config = filepath.Base(name)
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", abs, "status", "--porcelain", "--"}, pipeline.DefaultFiles()...)...).Output()
	if err == nil {
		for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
			if len(line) > 3 {
				l.dirty = append(l.dirty, line[3:])
			}
		}
	}
	return l, nil
}

// DefaultUpDataDir returns where `ferry up` keeps its state for the
// checkout at abs when --data-dir is not given: outside the work tree, in
// the user's state directory ($XDG_STATE_HOME, or ~/.local/state), under
// the checkout's name and a hash of its path, so that two checkouts of the
// same name do not share a database.
func DefaultUpDataDir(abs string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) { // the XDG spec says to ignore a relative path
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding a directory for ferry's state: %w; pass --data-dir", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "ferry", fmt.Sprintf("%s-%x", filepath.Base(abs), sum[:4])), nil
}

// printAdminToken prints the admin token of a first start, and how to get
// another one later.
func printAdminToken(w io.Writer, tok, url, dataDir string) {
	if tok == "" {
		return
	}
	fmt.Fprintf(w, "\nadmin API token (shown once; keep it): %s\n", tok)
	fmt.Fprintf(w, "  for the CLI: export FERRY_SERVER=%s FERRY_TOKEN=%s\n", url, tok)
	fmt.Fprintf(w, "  to make another: ferry server admin-token --data-dir %s\n", shellQuote(dataDir))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// upTokenLife bounds the life of ferry up's API token, should ferry up
// stop without revoking it.
const upTokenLife = 7 * 24 * time.Hour

// buildLocalRepo registers the checkout l (once) and reports its head to
// the server as a push of its branch, which builds it unless that commit
// was built as such already (by an earlier `ferry up` or by the poller):
// then it returns that build. It returns the repo's slug, and a nil build
// when no pipeline matched. What it builds, and what it does not
// (uncommitted changes), is said on w.
func buildLocalRepo(ctx context.Context, c *apiclient.Client, l *localRepo, poll time.Duration, w io.Writer) (string, *apiclient.Build, error) {
	branch := l.git.Branch
	if branch == "" {
		branch = "main" // a detached HEAD: build it as the default branch
	}
	slug := "local/" + strings.ToLower(filepath.Base(l.abs))
	// The checkout is the user's own code, built on the user's own
	// machine, as make would: it is trusted, so that its exec pipelines
	// run (docs/security.md).
	gitURL := "file://" + l.abs
	trusted := true
	repo, err := c.Repo(ctx, slug)
	switch {
	case apiclient.IsStatus(err, http.StatusNotFound):
		interval := apiclient.Duration(poll)
		_, err = c.CreateRepo(ctx, &apiclient.RepoRequest{Slug: &slug, GitURL: &gitURL, DefaultBranch: &branch,
			PollInterval: &interval, Trusted: &trusted})
	case err == nil && repo.GitURL == gitURL && !repo.Trusted:
		// Registered by an earlier ferry up, before repos were trusted.
		_, err = c.UpdateRepo(ctx, slug, &apiclient.RepoRequest{Trusted: &trusted})
	}
	if err != nil {
		return "", nil, fmt.Errorf("registering %s: %w", l.dir, err)
	}
	if len(l.dirty) > 0 {
		fmt.Fprintf(w, "%s: uncommitted changes to %s are not built: ferry up builds commits; commit them, or use ferry exec to run the files on disk\n",
			l.dir, strings.Join(l.dirty, ", "))
	}
	b, created, err := c.PushBuild(ctx, slug, branch, l.git.SHA)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && ae.Field == "":
		fmt.Fprintf(w, "%s: no pipeline of %s matches a push to %s; nothing to build at %.8s\n", l.dir, l.config, branch, l.git.SHA)
		return slug, nil, nil
	case err != nil:
		return "", nil, fmt.Errorf("building %s: %w", l.dir, err)
	case !created && !b.Status.Done():
		// The poller saw the commit first (ferry up was down when it
		// was made), and builds it.
		fmt.Fprintf(w, "%s: commit %.8s of %s is being built already as a push (build #%d); following it\n",
			l.dir, b.Commit, branch, b.Number)
	case !created:
		fmt.Fprintf(w, "%s: commit %.8s of %s was built already (build #%d, %s); not building it again (ferry build restart %s %d runs it again)\n",
			l.dir, b.Commit, branch, b.Number, b.Status, slug, b.Number)
	default:
		fmt.Fprintf(w, "%s: building commit %.8s of %s as a push (build #%d)\n", l.dir, b.Commit, branch, b.Number)
	}
	return slug, b, nil
}

// lockedWriter serializes the writes of several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// followPoll is how often followBuild looks at a build whose steps have
// all ended, for the build's own end.
const followPoll = 200 * time.Millisecond

// followBuild prints the build's log lines as "[pipeline/step] line",
// following each step's log stream (apiclient.FollowLog), until the build
// is final; then it prints why steps failed, a summary, and the build's
// status, which it returns.
func followBuild(ctx context.Context, a *API, slug string, number int64, w io.Writer) apiclient.Status {
	type stepKey struct{ pipeline, step int64 }
	var mu sync.Mutex
	next := map[stepKey]int64{}    // the sequence number after the last line printed
	followed := map[stepKey]bool{} // the step's stream ended
	for {
		b, err := a.waitBuild(ctx, slug, number)
		if err != nil {
			fmt.Fprintf(w, "ferry up: %v\n", err)
			return apiclient.StatusError
		}
		done := b.Status.Done()
		var wg sync.WaitGroup
		for _, p := range b.Pipelines {
			for _, st := range p.Steps {
				k := stepKey{p.Number, st.Number}
				mu.Lock()
				skip := followed[k] && st.Status.Done() && !done
				from := next[k]
				mu.Unlock()
				if skip {
					continue
				}
				wg.Go(func() {
					// A step that is run again (its agent was lost)
					// logs on after its last line.
					_, err := a.Client.FollowLog(ctx, slug, number, p.Number, st.Number, from, func(l apiclient.LogLine) error {
						mu.Lock()
						next[k] = l.Seq + 1
						mu.Unlock()
						_, err := fmt.Fprintf(w, "[%s/%s] %s\n", p.Name, st.Name, l.Text)
						return err
					})
					mu.Lock()
					followed[k] = err == nil
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		if done {
			buildErrors(w, b.Pipelines)
			buildSummary(w, b.Pipelines)
			fmt.Fprintf(w, "build #%d: %s\n", b.Number, b.Status)
			return b.Status
		}
		select {
		case <-ctx.Done():
			return apiclient.StatusKilled
		case <-time.After(followPoll):
		}
	}
}

// waitBuild gets a build, retrying temporary failures to reach the server
// as `ferry build wait` does.
func (a *API) waitBuild(ctx context.Context, slug string, number int64) (*apiclient.Build, error) {
	for failures := 1; ; failures++ {
		b, err := a.Client.Build(ctx, slug, number)
		if err == nil || ctx.Err() != nil || !temporary(err) || failures >= waitMaxFailures {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(followPoll):
		}
	}
}

// buildErrors prints why each step and pipeline in error failed (an image
// that could not be pulled, an agent lost), as ferry exec does: their logs
// may be empty, and the summary gives only the status.
func buildErrors(w io.Writer, pipes []*apiclient.Pipeline) {
	for _, p := range pipes {
		stepSaid := false
		for _, s := range p.Steps {
			if s.Error != "" {
				fmt.Fprintf(w, "[%s/%s] error: %s\n", p.Name, s.Name, s.Error)
				stepSaid = stepSaid || strings.Contains(p.Error, s.Error)
			}
		}
		if p.Error != "" && !stepSaid {
			fmt.Fprintf(w, "--- pipeline %s: %s (%s)\n", p.Name, p.Status, p.Error)
		}
	}
}

// buildSummary prints one row per step of a finished build, with the
// columns of `ferry exec`'s summary.
func buildSummary(w io.Writer, pipes []*apiclient.Pipeline) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSTEP\tSTATUS\tEXIT\tDURATION")
	for _, p := range pipes {
		if len(p.Steps) == 0 {
			fmt.Fprintf(tw, "%s\t-\t%s\t%s\t-\n", p.Name, p.Status, "-")
		}
		for _, s := range p.Steps {
			exit, dur := "-", "-"
			// A step in error with no exit code never ran its
			// command (its image could not be pulled, say).
			if !s.Started.IsZero() && (s.Status != apiclient.StatusError || s.ExitCode != 0) {
				exit = fmt.Sprint(s.ExitCode)
			}
			if !s.Started.IsZero() && !s.Finished.IsZero() {
				dur = s.Finished.Sub(s.Started).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, s.Name, s.Status, exit, dur)
		}
	}
	_ = tw.Flush()
}

// inside reports whether path is dir or lies under it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
