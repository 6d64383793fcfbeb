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
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/store"
	"github.com/ferryci/ferry/internal/trigger"
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

	// The builds are created before the poller starts (in Serve), so that
	// the poller never builds the same commit a second time.
	var builds []*store.Build
	for _, l := range locals {
		b, err := buildLocalRepo(ctx, srv, l, o.PollInterval, o.Stdout)
		if err != nil {
			ln.Close()
			return 0, err
		}
		if b != nil {
			builds = append(builds, b)
		}
	}

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr <- srv.Serve(ctx, ln)
	}()

	token, err := srv.CreateAgentToken(ctx, "ferry-up")
	if err != nil {
		cancel()
		wg.Wait()
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
		cancel()
		wg.Wait()
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
		cancel()
		wg.Wait()
	}()
	results := make(chan store.Status, len(builds))
	for _, b := range builds {
		go func() { results <- followBuild(ctx, srv.Store(), b.ID, o.Stdout) }()
	}
	code := ExitOK
	for range builds {
		select {
		case st := <-results:
			if st != store.StatusSuccess {
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

// buildLocalRepo registers the checkout l (once) and builds its head as a
// push of its branch, unless that commit was built as such already (by an
// earlier `ferry up` or by the poller), in which case it returns that
// build. It returns nil when no pipeline matched. What it builds, and
// what it does not (uncommitted changes), is said on w.
func buildLocalRepo(ctx context.Context, srv *server.Server, l *localRepo, poll time.Duration, w io.Writer) (*store.Build, error) {
	branch := l.git.Branch
	if branch == "" {
		branch = "main" // a detached HEAD: build it as the default branch
	}
	ref := "refs/heads/" + branch
	slug := "local/" + strings.ToLower(filepath.Base(l.abs))
	st := srv.Store()
	// The checkout is the user's own code, built on the user's own
	// machine, as make would: it is trusted, so that its exec pipelines
	// run (docs/security.md).
	gitURL := "file://" + l.abs
	repo, err := st.Repos.GetBySlug(ctx, slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		repo = &store.Repo{Slug: slug, GitURL: gitURL, DefaultBranch: branch, PollInterval: poll, Active: true, Trusted: true}
		err = st.Repos.Create(ctx, repo)
	case err == nil && repo.GitURL == gitURL && !repo.Trusted:
		// Registered by an earlier ferry up, before repos were trusted.
		repo.Trusted = true
		err = st.Repos.Update(ctx, repo)
	}
	if err != nil {
		return nil, fmt.Errorf("registering %s: %w", l.dir, err)
	}
	if len(l.dirty) > 0 {
		fmt.Fprintf(w, "%s: uncommitted changes to %s are not built: ferry up builds commits; commit them, or use ferry exec to run the files on disk\n",
			l.dir, strings.Join(l.dirty, ", "))
	}
	prev, err := st.Builds.List(ctx, repo.ID, store.BuildFilter{Branch: branch, Event: store.EventPush, Limit: 20})
	if err != nil {
		return nil, fmt.Errorf("listing the builds of %s: %w", slug, err)
	}
	for _, b := range prev {
		if b.Commit == l.git.SHA {
			fmt.Fprintf(w, "%s: commit %.8s of %s was built already (build #%d, %s); not building it again (ferry build restart %s %d runs it again)\n",
				l.dir, b.Commit, branch, b.Number, b.Status, slug, b.Number)
			return b, nil
		}
	}
	b, err := srv.CreateBuild(ctx, repo, &trigger.Event{
		Kind: store.EventPush, Ref: ref, Branch: branch, SourceBranch: branch,
		SHA: l.git.SHA, Message: l.git.Message, AuthorName: l.git.AuthorName, AuthorEmail: l.git.AuthorEmail, Sender: "ferry up",
	})
	if err != nil {
		return nil, err
	}
	// The poller must not build this commit again: move the branch in its
	// baseline. A repo never polled has none, and its first poll records
	// what is there without building it.
	if refs, err := st.Repos.PollRefs(ctx, repo.ID); err == nil && refs != nil && refs[ref] != l.git.SHA {
		refs[ref] = l.git.SHA
		if err := st.Repos.SavePollRefs(ctx, repo.ID, refs); err != nil {
			return nil, fmt.Errorf("recording the build of %s: %w", slug, err)
		}
	}
	if b == nil {
		fmt.Fprintf(w, "%s: no pipeline of %s matches a push to %s; nothing to build at %.8s\n", l.dir, l.config, branch, l.git.SHA)
		return nil, nil
	}
	fmt.Fprintf(w, "%s: building commit %.8s of %s as a push (build #%d)\n", l.dir, b.Commit, branch, b.Number)
	return b, nil
}

// followBuild prints the build's log lines as "[pipeline/step] line" until
// the build is final, and returns its status.
func followBuild(ctx context.Context, st *store.Store, buildID int64, w io.Writer) store.Status {
	next := map[int64]int64{} // step id → next sequence number
	for {
		b, err := st.Builds.Get(ctx, buildID)
		if err != nil {
			return store.StatusError
		}
		done := b.Status.Done()
		pipes, err := st.Pipelines.List(ctx, buildID)
		if err != nil {
			return store.StatusError
		}
		for _, p := range pipes {
			for _, s := range p.Steps {
				for l, err := range st.Logs.Lines(ctx, s.ID, next[s.ID]) {
					if err != nil {
						break
					}
					fmt.Fprintf(w, "[%s/%s] %s\n", p.Name, s.Name, l.Text)
					next[s.ID] = l.Seq + 1
				}
			}
		}
		if done {
			buildErrors(w, pipes)
			buildSummary(w, pipes)
			fmt.Fprintf(w, "build #%d: %s\n", b.Number, b.Status)
			return b.Status
		}
		select {
		case <-ctx.Done():
			return store.StatusKilled
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// buildErrors prints why each step and pipeline in error failed (an image
// that could not be pulled, an agent lost), as ferry exec does: their logs
// may be empty, and the summary gives only the status.
func buildErrors(w io.Writer, pipes []*store.Pipeline) {
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
func buildSummary(w io.Writer, pipes []*store.Pipeline) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSTEP\tSTATUS\tEXIT\tDURATION")
	for _, p := range pipes {
		if len(p.Steps) == 0 {
			fmt.Fprintf(tw, "%s\t-\t%s\t%d\t-\n", p.Name, p.Status, p.ExitCode)
		}
		for _, s := range p.Steps {
			exit, dur := "-", "-"
			// A step in error with no exit code never ran its
			// command (its image could not be pulled, say).
			if !s.Started.IsZero() && (s.Status != store.StatusError || s.ExitCode != 0) {
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
