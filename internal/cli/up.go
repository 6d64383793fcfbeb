package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	// Repos are local git checkouts to register and build.
	Repos []string
	// PollInterval is how often the registered repos are polled.
	PollInterval time.Duration
	// Once exits when the initial builds are final, with their status.
	Once bool
	// ExecUser is who host steps run as (agent.Config.ExecUser).
	ExecUser string

	Stdout io.Writer
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	code, err := up(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry up: %v\n", err)
		return ExitFailed
	}
	return code
}

func up(ctx context.Context, o UpOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Host steps run in the agent's work dir: never inside the data dir,
	// which holds the secret key and the database.
	workDir := filepath.Join(os.TempDir(), "ferry-agent")
	if inside(workDir, o.Server.DataDir) {
		return 0, fmt.Errorf("the agent's work dir %s is inside the data dir %s; choose a --data-dir elsewhere (or another TMPDIR)", workDir, o.Server.DataDir)
	}
	srv, err := server.New(ctx, o.Server, o.Logger.With("component", "server"))
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
	// The agent is in this process: its token is never on a command line.
	ag, err := agent.New(agent.Config{Server: url, Token: token, Name: "ferry-up", Backend: upBackends(ctx), ExecUser: o.ExecUser, WorkDir: workDir},
		o.Logger.With("component", "agent"))
	if err != nil {
		cancel()
		wg.Wait()
		return 0, err
	}
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgent()
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if err := ag.Run(agentCtx); err != nil && !errors.Is(err, context.Canceled) {
			o.Logger.Error("agent stopped", "err", err)
		}
	}()
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
	fmt.Fprintf(o.Stdout, "ferry is up at %s (data in %s)\n", url, o.Server.DataDir)

	var builds []*store.Build
	for _, dir := range o.Repos {
		b, err := buildLocalRepo(ctx, srv, dir, o.PollInterval)
		if err != nil {
			return 0, err
		}
		if b != nil {
			builds = append(builds, b)
			fmt.Fprintf(o.Stdout, "building %s at %.8s (build #%d)\n", dir, b.Commit, b.Number)
		}
	}

	results := make(chan store.Status, len(builds))
	for _, b := range builds {
		go func() { results <- followBuild(ctx, srv.Store(), b.ID, o.Stdout) }()
	}
	code := ExitOK
	for range builds {
		if st := <-results; st != store.StatusSuccess {
			code = ExitFailed
		}
	}
	if o.Once {
		return code, nil
	}
	if len(builds) > 0 {
		fmt.Fprintln(o.Stdout, "watching for new commits; press Ctrl-C to stop")
	}
	select {
	case <-ctx.Done():
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

// buildLocalRepo registers the git checkout in dir (once) and starts a
// build of its current branch. It returns nil when no pipeline matched.
func buildLocalRepo(ctx context.Context, srv *server.Server, dir string, poll time.Duration) (*store.Build, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	g := readGit(ctx, abs)
	if g.SHA == "" {
		return nil, fmt.Errorf("%s is not a git checkout with a commit", dir)
	}
	branch := g.Branch
	if branch == "" {
		branch = "main"
	}
	slug := "local/" + strings.ToLower(filepath.Base(abs))
	st := srv.Store()
	// The checkout is the user's own code, built on the user's own
	// machine, as make would: it is trusted, so that its exec pipelines
	// run (docs/security.md).
	gitURL := "file://" + abs
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
		return nil, fmt.Errorf("registering %s: %w", dir, err)
	}
	return srv.CreateBuild(ctx, repo, &trigger.Event{
		Kind: store.EventCustom, Ref: "refs/heads/" + branch, Branch: branch, SourceBranch: branch,
		SHA: g.SHA, Message: g.Message, AuthorName: g.AuthorName, AuthorEmail: g.AuthorEmail, Sender: "ferry up",
	})
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
			for _, p := range pipes {
				for _, s := range p.Steps {
					fmt.Fprintf(w, "  %-12s %-20s %s\n", p.Name, s.Name, s.Status)
				}
			}
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

// HasPipeline reports whether dir is a git checkout holding a pipeline file.
func HasPipeline(dir string) bool {
	if _, _, err := pipeline.Load(dir, ""); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, ".git"))
	return err == nil
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
