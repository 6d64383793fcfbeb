// Package cli implements ferry's subcommands. cmd/ferry only wires them.
package cli

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/joho/godotenv"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/registry"
	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/pipeline/program"
	"github.com/ferryci/ferry/internal/runtime"
)

// Exit codes of ferry exec and ferry lint.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitInvalid = 2
)

// ExecOptions are the flags of `ferry exec`.
type ExecOptions struct {
	// File is the config file; empty means .ferry.yml, then .drone.yml.
	File string
	// Dir is the workspace, the current directory by default.
	Dir string
	// Backend forces "docker" or "local" for every pipeline.
	Backend    string
	Pipelines  []string
	Secrets    []string
	SecretFile string
	Env        []string
	Event      string
	Branch     string
	Ref        string
	Commit     string
	Target     string
	// Cron names the cron job that fired, for when.cron; it implies
	// event cron.
	Cron    string
	Timeout time.Duration
	JSON    bool
	Trusted bool
	// MaxConfigSize refuses a larger config file before parsing it;
	// 0 means pipeline.DefaultMaxConfigSize.
	MaxConfigSize int64

	Stdout io.Writer
	Stderr io.Writer
	Logger *slog.Logger
}

// usageError is bad input on the command line or in the config: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Exec runs `ferry exec` and returns the process exit code.
func Exec(ctx context.Context, o ExecOptions) int {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	code, err := execute(ctx, o)
	if err != nil {
		fmt.Fprintf(o.Stderr, "ferry exec: %v\n", err)
		var ue *usageError
		var pe pipeline.Errors
		if errors.As(err, &ue) || errors.As(err, &pe) {
			return ExitInvalid
		}
		return ExitFailed
	}
	return code
}

// runProgram runs a .drone.star or .drone.jsonnet file with the build's
// context, or converts a Woodpecker config, and returns the YAML it
// generates under the name its messages use, with the conversion's
// warnings; Drone YAML files are returned as they are. Files the program
// loads or imports are read from dir.
func runProgram(ctx context.Context, dir, name string, data []byte, meta *compiler.Metadata, trusted bool) (string, []byte, []string, error) {
	if program.Kind(name) == "" {
		return name, data, nil, nil
	}
	// The program's own name is relative to the repository's root: it
	// loads and imports files relative to it.
	if filepath.IsAbs(name) {
		if rel, err := filepath.Rel(dir, name); err == nil && !strings.HasPrefix(rel, "..") {
			name = filepath.ToSlash(rel)
		}
	}
	out, warnings, err := program.Convert(ctx, name, data, program.Options{
		Input: program.FromMetadata(meta, nil, name, trusted),
		Read: func(p string) ([]byte, error) {
			return os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		},
		List: func(p string) ([]string, error) {
			entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(p)))
			names := make([]string, 0, len(entries))
			for _, e := range entries {
				if !e.IsDir() {
					names = append(names, e.Name())
				}
			}
			return names, err
		},
	})
	if err != nil {
		return name, nil, nil, err
	}
	return program.GeneratedName(name), out, warnings, nil
}

// plan is one selected pipeline, compiled.
type plan struct {
	p       *pipeline.Pipeline
	spec    *backend.Spec
	backend string
}

func execute(ctx context.Context, o ExecOptions) (int, error) {
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return 0, err
		}
	}
	dir, _ = filepath.Abs(dir)
	if o.Backend != "" && o.Backend != "docker" && o.Backend != "local" {
		return 0, invalidf("--backend %q is not valid; use docker or local", o.Backend)
	}
	if o.Event != "" {
		// An unknown event matches no trigger: everything would be
		// skipped, and the run would look like a success.
		if err := pipeline.CheckEvent(o.Event); err != nil {
			return 0, invalidf("--event: %v", err)
		}
	}
	name, data, err := pipeline.LoadMax(dir, o.File, o.MaxConfigSize)
	if err != nil {
		return 0, invalidf("%v", err)
	}
	secrets, err := loadSecrets(o.Secrets, o.SecretFile)
	if err != nil {
		return 0, err
	}
	extraEnv, err := parsePairs("--env", o.Env)
	if err != nil {
		return 0, err
	}
	meta := metadata(ctx, dir, o)
	var convWarnings []string
	if name, data, convWarnings, err = runProgram(ctx, dir, name, data, meta, o.Trusted); err != nil {
		return 0, invalidf("%v", err)
	}
	for _, w := range convWarnings {
		fmt.Fprintln(o.Stderr, w)
	}

	env := compiler.Environ(meta)
	for k, v := range extraEnv {
		env[k] = v
	}
	expanded, err := pipeline.Expand(data, env)
	if err != nil {
		return 0, invalidf("%s: %v", name, err)
	}
	cfg, err := pipeline.Parse(name, expanded)
	if err != nil {
		return 0, err
	}
	// Warnings are what Drone tolerates; the pipelines run as Drone runs
	// them, and the user hears about them first.
	for _, w := range cfg.Warnings {
		fmt.Fprintln(o.Stderr, w.Error())
	}

	selected, err := selectPipelines(cfg, o.Pipelines)
	if err != nil {
		return 0, err
	}

	runID := newRunID()
	var plans []*plan
	var skipped, unsupported []*pipeline.Pipeline
	for i, p := range cfg.Pipelines {
		if !selected[p.Name] {
			continue
		}
		if len(o.Pipelines) == 0 && !compiler.Match(p, meta) {
			skipped = append(skipped, p)
			continue
		}
		kind := o.Backend
		if kind == "" {
			var ok bool
			if kind, ok = backend.ForType(p.Type); !ok {
				fmt.Fprintf(o.Stderr, "ferry exec: skipping pipeline %q: type %q is not supported; run it with --backend docker or --backend local\n", p.Name, p.Type)
				skipped = append(skipped, p)
				unsupported = append(unsupported, p)
				continue
			}
		}
		res, err := compiler.Compile(p, compiler.Options{
			Metadata: meta,
			Backend:  kind,
			RunID:    fmt.Sprintf("%s-%d", runID, i+1),
			Number:   i + 1,
			HostDir:  dir,
			Env:      extraEnv,
			Secrets:  secrets,
			Trusted:  o.Trusted,
			// Host execution is the user's own choice here; the rest
			// needs --trusted.
			LocalUntrusted: true,
			TrustHint:      compiler.ExecTrustHint,
			Labels:         map[string]string{"ferry.pipeline": p.Name},
		})
		if err != nil {
			return 0, invalidf("%s: %v", name, err)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(o.Stderr, "ferry exec: warning: %s\n", w)
		}
		plans = append(plans, &plan{p: p, spec: res.Spec, backend: kind})
	}
	if len(plans) == 0 && len(unsupported) > 0 {
		// Nothing ran because of a type ferry does not run, most often a
		// typo ("type: exce"): that is not a success.
		names := make([]string, len(unsupported))
		for i, p := range unsupported {
			names[i] = fmt.Sprintf("%q (type %q)", p.Name, p.Type)
		}
		return 0, invalidf("%s: nothing ran: ferry does not run pipeline %s; ferry runs types docker and exec", name, strings.Join(names, ", "))
	}

	backends, closeBackends, err := openBackends(ctx, plans, o.Logger)
	if err != nil {
		return 0, err
	}
	defer closeBackends()

	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}

	out := newBufferedOutput(o.Stdout)
	var rep runtime.Reporter
	var jr *jsonReporter
	if o.JSON {
		jr = newJSONReporter(out)
		rep = jr
	} else {
		rep = &textReporter{out: out, multi: len(plans) > 1}
	}

	var resultsMu sync.Mutex
	results := make(map[string]*runtime.Result, len(plans))
	stages := make([]*runtime.Stage, 0, len(plans))
	for _, pl := range plans {
		runner := runtime.New(backends[pl.backend], runtime.WithReporter(rep), runtime.WithLogger(o.Logger))
		onSuccess, onFailure := pl.p.Trigger.RunsOnSuccess(), pl.p.Trigger.RunsOnFailure()
		stages = append(stages, &runtime.Stage{
			Name:      pl.p.Name,
			DependsOn: pl.p.DependsOn,
			OnSuccess: onSuccess,
			OnFailure: onFailure,
			Run: func(ctx context.Context) runtime.Status {
				res := runner.Run(ctx, pl.spec)
				resultsMu.Lock()
				results[pl.p.Name] = res
				resultsMu.Unlock()
				return res.Status
			},
		})
	}
	// In --json mode every pipeline of the selection ends with a
	// pipeline_finished event, also one that never ran because its trigger
	// did not match or its dependencies ended the wrong way.
	var onSkip func(*runtime.Stage)
	if jr != nil {
		for _, p := range skipped {
			jr.emit(Event{Type: "pipeline_finished", Pipeline: p.Name, Status: string(runtime.StatusSkipped)})
		}
		onSkip = func(s *runtime.Stage) {
			jr.emit(Event{Type: "pipeline_finished", Pipeline: s.Name, Status: string(runtime.StatusSkipped)})
		}
	}
	statuses := runtime.RunStages(ctx, stages, onSkip)

	ordered := make([]*runtime.Result, 0, len(plans)+len(skipped))
	code := ExitOK
	for _, p := range cfg.Pipelines {
		if res, ok := results[p.Name]; ok {
			ordered = append(ordered, res)
			if res.Status.Failed() {
				code = ExitFailed
			}
			continue
		}
		if st, ok := statuses[p.Name]; ok || slices.Contains(skipped, p) {
			if !ok {
				st = runtime.StatusSkipped
			}
			ordered = append(ordered, &runtime.Result{Name: p.Name, Status: st})
		}
	}
	if ctx.Err() != nil {
		code = ExitFailed
	}
	if jr != nil {
		jr.emit(Event{Type: "build_finished", Status: buildStatus(ctx, code), ExitCode: &code})
		out.Close()
	} else {
		out.Close()
		fmt.Fprintln(o.Stdout)
		summary(o.Stdout, ordered)
	}
	return code, nil
}

func buildStatus(ctx context.Context, code int) string {
	switch {
	case ctx.Err() != nil:
		return string(runtime.StatusKilled)
	case code != 0:
		return string(runtime.StatusFailure)
	}
	return string(runtime.StatusSuccess)
}

// selectPipelines returns the names of the pipelines to consider.
func selectPipelines(cfg *pipeline.Config, names []string) (map[string]bool, error) {
	all := make(map[string]bool, len(cfg.Pipelines))
	valid := make([]string, 0, len(cfg.Pipelines))
	for _, p := range cfg.Pipelines {
		all[p.Name] = true
		valid = append(valid, p.Name)
	}
	if len(names) == 0 {
		return all, nil
	}
	sel := make(map[string]bool, len(names))
	for _, n := range names {
		if !all[n] {
			return nil, invalidf("--pipeline %q: no such pipeline in %s; valid names are: %s", n, cfg.File, strings.Join(valid, ", "))
		}
		sel[n] = true
	}
	return sel, nil
}

// openBackends connects the backends the plans need.
func openBackends(ctx context.Context, plans []*plan, logger *slog.Logger) (map[string]backend.Backend, func(), error) {
	out := map[string]backend.Backend{}
	closers := []func(){}
	for _, pl := range plans {
		if out[pl.backend] != nil {
			continue
		}
		be, closeBe, err := registry.Open(ctx, pl.backend, registry.Options{Logger: logger,
			DockerHint: "use --backend local to run on the host"})
		if err != nil {
			for _, c := range closers {
				c()
			}
			return nil, nil, err
		}
		out[pl.backend] = be
		closers = append(closers, closeBe)
	}
	return out, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// metadata builds the trigger context from the flags and the checkout.
func metadata(ctx context.Context, dir string, o ExecOptions) *compiler.Metadata {
	var g gitInfo
	if o.Commit == "" || o.Branch == "" {
		// Only ask git about the commit when the flags leave something to
		// learn: it costs two processes.
		g = readGit(ctx, dir)
	} else {
		// The flags name the commit, but the repository (DRONE_REPO, the
		// repo condition) still comes from the checkout's remote.
		g.RemoteURL = readRemote(ctx, dir)
	}
	m := &compiler.Metadata{}
	ns, name := repoSlug(g.RemoteURL, dir)
	m.Repo = compiler.Repo{Slug: ns + "/" + name, Namespace: ns, Name: name, HTTPURL: g.RemoteURL, SCM: "git", Visibility: "private", Private: true}
	m.Commit = compiler.Commit{
		SHA:         cmp.Or(o.Commit, g.SHA),
		Branch:      cmp.Or(o.Branch, g.Branch),
		Message:     g.Message,
		Author:      g.AuthorName,
		AuthorName:  g.AuthorName,
		AuthorEmail: g.AuthorEmail,
	}
	m.Commit.Ref = o.Ref
	event := o.Event
	switch {
	case m.Commit.Ref != "":
	case event == "tag" && g.Tag != "":
		m.Commit.Ref = "refs/tags/" + g.Tag
	case m.Commit.Branch != "":
		m.Commit.Ref = "refs/heads/" + m.Commit.Branch
	}
	if event == "" && o.Cron != "" {
		event = "cron"
	}
	if event == "" {
		event = "push"
		if strings.HasPrefix(m.Commit.Ref, "refs/tags/") {
			event = "tag"
		}
	}
	if m.Commit.Branch == "" {
		if b, ok := strings.CutPrefix(m.Commit.Ref, "refs/heads/"); ok {
			m.Commit.Branch = b
		}
	}
	m.Commit.SourceBranch = m.Commit.Branch
	m.Repo.Branch = m.Commit.Branch
	now := time.Now()
	m.Build = compiler.Build{Number: 1, Event: event, Target: o.Target, Cron: o.Cron, Created: now, Started: now, Trigger: "@exec"}
	if host, err := os.Hostname(); err == nil {
		m.Build.Instance = host
	}
	m.System = compiler.System{Proto: "http", Host: "localhost", Version: Version}
	return m
}

// loadSecrets merges --secret-file (dotenv) and --secret flags; flags win.
func loadSecrets(flags []string, file string) (map[string]string, error) {
	out := map[string]string{}
	if file != "" {
		m, err := godotenv.Read(file)
		if err != nil {
			return nil, invalidf("--secret-file %s: %v", file, err)
		}
		for k, v := range m {
			out[k] = v
		}
	}
	m, err := parsePairs("--secret", flags)
	if err != nil {
		return nil, err
	}
	for k, v := range m {
		out[k] = v
	}
	return out, nil
}

// parsePairs parses NAME=VALUE flags.
func parsePairs(flag string, pairs []string) (map[string]string, error) {
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, invalidf("%s %q: expected NAME=VALUE", flag, p)
		}
		out[k] = v
	}
	return out, nil
}

func newRunID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "ferry-" + hex.EncodeToString(b)
}
