// Package runtime runs a compiled pipeline (a backend.Spec) on a Backend:
// it walks the step graph, starts steps as their dependencies finish,
// decides which steps run after a failure, enforces timeouts and
// cancellation, and fans each step's masked log lines out to a Reporter.
package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/logs"
)

// Status is the state of a step or pipeline.
type Status string

// The statuses, as Drone names them.
const (
	StatusPending Status = "pending"
	StatusRunning Status = "running"
	StatusSuccess Status = "success"
	StatusFailure Status = "failure"
	StatusKilled  Status = "killed"
	StatusSkipped Status = "skipped"
	StatusError   Status = "error"
)

// Failed reports whether s counts as a failure.
func (s Status) Failed() bool {
	return s == StatusFailure || s == StatusKilled || s == StatusError
}

// StepResult is how one step (or service) ended.
type StepResult struct {
	Name     string
	Service  bool
	Detached bool
	Status   Status
	ExitCode int
	// Error explains an error, kill or timeout status.
	Error    string
	Started  time.Time
	Finished time.Time
}

// Duration is how long the step ran; zero if it never started.
func (r *StepResult) Duration() time.Duration {
	if r.Started.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// Result is how a pipeline ended.
type Result struct {
	Name     string
	Status   Status
	Error    string
	Started  time.Time
	Finished time.Time
	// Steps holds services first, then steps, in declaration order.
	Steps []*StepResult
}

// Reporter receives a run's events. Its methods are called concurrently
// from the goroutines running steps and must not block for long: a slow
// reporter slows the step whose output it is handling.
type Reporter interface {
	PipelineStarted(spec *backend.Spec)
	StepStarted(spec *backend.Spec, step *backend.Step)
	// StepLog receives one masked output line without its newline. The
	// slice is only valid during the call.
	StepLog(spec *backend.Spec, step *backend.Step, line []byte)
	StepFinished(spec *backend.Spec, step *backend.Step, res *StepResult)
	PipelineFinished(spec *backend.Spec, res *Result)
}

// NopReporter discards every event.
type NopReporter struct{}

// PipelineStarted implements Reporter.
func (NopReporter) PipelineStarted(*backend.Spec) {}

// StepStarted implements Reporter.
func (NopReporter) StepStarted(*backend.Spec, *backend.Step) {}

// StepLog implements Reporter.
func (NopReporter) StepLog(*backend.Spec, *backend.Step, []byte) {}

// StepFinished implements Reporter.
func (NopReporter) StepFinished(*backend.Spec, *backend.Step, *StepResult) {}

// PipelineFinished implements Reporter.
func (NopReporter) PipelineFinished(*backend.Spec, *Result) {}

var _ Reporter = NopReporter{}

// Runner runs pipelines on one backend.
type Runner struct {
	backend  backend.Backend
	reporter Reporter
	logger   *slog.Logger
	maxLine  int
	// destroyTimeout bounds the teardown after a run.
	destroyTimeout time.Duration
}

// Option configures a Runner.
type Option func(*Runner)

// WithReporter sets the event receiver.
func WithReporter(r Reporter) Option { return func(rn *Runner) { rn.reporter = r } }

// WithLogger sets the logger for ferry's own diagnostics.
func WithLogger(l *slog.Logger) Option { return func(rn *Runner) { rn.logger = l } }

// WithMaxLine sets the longest log line passed to the reporter; a longer
// line is cut to that length, ending with logs.TruncatedMarker, and the
// rest of it is discarded (see logs.NewTruncatingLineWriter). The default
// is 1 MiB.
func WithMaxLine(n int) Option { return func(rn *Runner) { rn.maxLine = n } }

// New returns a Runner for b.
func New(b backend.Backend, opts ...Option) *Runner {
	r := &Runner{backend: b, reporter: NopReporter{}, logger: slog.New(slog.DiscardHandler), maxLine: 1 << 20, destroyTimeout: 30 * time.Second}
	for _, o := range opts {
		o(r)
	}
	return r
}

// run is the state of one pipeline run.
type run struct {
	r    *Runner
	spec *backend.Spec

	mu     sync.Mutex
	failed bool
	// earlyExit is set when a step exited with ExitEarly: the steps
	// that have not started are skipped.
	earlyExit bool
	failedBy  []string
	results   map[*backend.Step]*StepResult
	bg        sync.WaitGroup // services and detached steps
	// cancelSteps stops the running foreground steps (fail-fast).
	cancelSteps context.CancelCauseFunc
	// ending is set when the pipeline finished normally and is stopping
	// its services and detached steps.
	ending bool
}

// Run runs spec to completion and returns its result. Cancelling ctx kills
// every running step; the pipeline then ends as killed. Run always tears
// down what the backend created, whatever happens.
func (r *Runner) Run(ctx context.Context, spec *backend.Spec) *Result {
	res := &Result{Name: spec.Name, Status: StatusRunning, Started: time.Now()}
	rn := &run{r: r, spec: spec, results: map[*backend.Step]*StepResult{}}
	for _, s := range spec.Services {
		sr := &StepResult{Name: s.Name, Service: true, Detached: true, Status: StatusPending}
		rn.results[s] = sr
		res.Steps = append(res.Steps, sr)
	}
	for _, s := range spec.Steps {
		sr := &StepResult{Name: s.Name, Detached: s.Detach, Status: StatusPending}
		rn.results[s] = sr
		res.Steps = append(res.Steps, sr)
	}
	r.reporter.PipelineStarted(spec)

	// Background steps live until the pipeline ends, or until ctx is cancelled.
	bgCtx, bgCancel := context.WithCancel(ctx)

	defer func() {
		rn.mu.Lock()
		rn.ending = ctx.Err() == nil
		rn.mu.Unlock()
		bgCancel()
		// Let the services and detached steps see the cancellation and
		// stop before the backend tears everything down: a backend's Run
		// returns promptly once its context is cancelled, and a teardown
		// racing with it finds containers that are being removed and
		// networks still in use. The wait is bounded, so that a step that
		// does not stop cannot hold up the teardown.
		waitBounded(&rn.bg, bgStopWait)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.destroyTimeout)
		if err := r.backend.Destroy(dctx, spec); err != nil {
			r.logger.Error("tearing down pipeline", "pipeline", spec.Name, "err", err)
			if res.Error == "" {
				res.Error = "teardown: " + err.Error()
			}
		}
		cancel()
		rn.bg.Wait()
		res.Finished = time.Now()
		r.reporter.PipelineFinished(spec, res)
	}()

	if err := r.backend.Setup(ctx, spec); err != nil {
		res.Status, res.Error = StatusError, "setup: "+err.Error()
		var imgErr *backend.ImageError
		if ctx.Err() != nil {
			res.Status = StatusKilled
			res.Error = cancelReason(ctx)
		} else if errors.As(err, &imgErr) {
			// The step that needs the image failed, rather than being
			// skipped with the reason only on the pipeline.
			res.Error = "setup: " + imgErr.Error()
			rn.failImage(imgErr)
		}
		rn.skipRemaining()
		return res
	}
	for _, s := range spec.Services {
		rn.startBackground(bgCtx, s)
	}
	rn.runSteps(ctx, bgCtx)

	switch {
	case ctx.Err() != nil:
		res.Status, res.Error = StatusKilled, cancelReason(ctx)
	case rn.failed:
		res.Status = StatusFailure
	default:
		res.Status = StatusSuccess
	}
	return res
}

// ExitEarly is the exit code with which a step ends its pipeline early
// and passing, as in Drone: the steps that have not started yet are
// skipped.
const ExitEarly = 78

// ExitKilled is the exit code of a killed step (128 + SIGKILL, as a shell
// and Docker report it), also when it was stopped before its process
// started or its process exited 0 on the way out: a killed step never
// shows 0.
const ExitKilled = 137

// errStepTimeout is the cause of a step's context when its timeout ends.
var errStepTimeout = errors.New("step timed out")

// bgStopWait bounds how long a finished pipeline waits for its services
// and detached steps to stop before it tears down the backend's resources.
const bgStopWait = 10 * time.Second

// waitBounded waits for wg, or for d to pass.
func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func cancelReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "pipeline timed out"
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c.Error()
	}
	return "cancelled"
}

// runSteps walks the graph until every step has finished or been skipped.
func (rn *run) runSteps(ctx, bgCtx context.Context) {
	steps := rn.spec.Steps
	done := make(map[string]bool, len(steps))
	started := make(map[*backend.Step]bool, len(steps))
	finished := make(chan *backend.Step, len(steps))
	remaining := len(steps)
	running := 0
	// Foreground steps run under stepsCtx, which a failing fail-fast step
	// cancels; steps that start later still follow their run policy.
	stepsCtx, cancelSteps := context.WithCancelCause(ctx)
	defer cancelSteps(nil)
	rn.mu.Lock()
	rn.cancelSteps = cancelSteps
	rn.mu.Unlock()

	for remaining > 0 {
		progress := false
		for _, s := range steps {
			if started[s] || !depsDone(s, done) {
				continue
			}
			started[s] = true
			progress = true
			if !rn.shouldRun(ctx, s) {
				rn.skip(s)
				done[s.Name] = true
				remaining--
				continue
			}
			if s.Detach {
				rn.startBackground(bgCtx, s)
				done[s.Name] = true
				remaining--
				continue
			}
			running++
			go func() {
				rn.runStep(stepsCtx, s)
				finished <- s
			}()
		}
		if progress {
			continue
		}
		if running == 0 {
			// Nothing runs and nothing can start: the graph names a step
			// that does not exist. The linter rejects this; be safe anyway.
			for _, s := range steps {
				if !started[s] {
					rn.skip(s)
				}
			}
			return
		}
		s := <-finished
		running--
		done[s.Name] = true
		remaining--
	}
}

func depsDone(s *backend.Step, done map[string]bool) bool {
	for _, d := range s.DependsOn {
		if !done[d] {
			return false
		}
	}
	return true
}

func (rn *run) shouldRun(ctx context.Context, s *backend.Step) bool {
	if ctx.Err() != nil {
		return false
	}
	rn.mu.Lock()
	failed, early := rn.failed, rn.earlyExit
	rn.mu.Unlock()
	if early {
		return false
	}
	switch s.RunPolicy {
	case backend.RunNever:
		return false
	case backend.RunAlways:
		return true
	case backend.RunOnFailure:
		return failed
	default:
		return !failed
	}
}

func (rn *run) skip(s *backend.Step) {
	rn.mu.Lock()
	sr := rn.results[s]
	sr.Status = StatusSkipped
	rn.mu.Unlock()
	rn.r.reporter.StepFinished(rn.spec, s, sr)
}

// failImage marks the first step (or else service) that uses the image
// of err as failed with err, before anything ran.
func (rn *run) failImage(err *backend.ImageError) {
	for _, s := range append(append([]*backend.Step{}, rn.spec.Steps...), rn.spec.Services...) {
		if s.Image != err.Image {
			continue
		}
		rn.mu.Lock()
		sr := rn.results[s]
		sr.Status, sr.Error = StatusError, err.Error()
		rn.failed = true
		rn.failedBy = append(rn.failedBy, s.Name)
		rn.mu.Unlock()
		rn.r.reporter.StepFinished(rn.spec, s, sr)
		return
	}
}

func (rn *run) skipRemaining() {
	for _, s := range append(append([]*backend.Step{}, rn.spec.Services...), rn.spec.Steps...) {
		if rn.results[s].Status == StatusPending {
			rn.skip(s)
		}
	}
}

func (rn *run) startBackground(bgCtx context.Context, s *backend.Step) {
	rn.bg.Add(1)
	go func() {
		defer rn.bg.Done()
		rn.runStep(bgCtx, s)
	}()
}

// runStep runs one step and records its result.
func (rn *run) runStep(ctx context.Context, s *backend.Step) {
	r := rn.r
	sr := rn.results[s]
	step := rn.withStatusEnv(s)

	// A step's timeout counts from the moment its process runs
	// (backend.Started), not from when the backend was asked to create
	// it: on a busy machine the engine may take longer to create a
	// container than a short timeout allows, and the step would be killed
	// before it ran. The pipeline's timeout bounds the whole.
	stepCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runCtx := stepCtx
	if s.Timeout > 0 {
		var mu sync.Mutex
		var timer *time.Timer
		runCtx = backend.WithStarted(stepCtx, func() {
			mu.Lock()
			defer mu.Unlock()
			if timer == nil {
				timer = time.AfterFunc(s.Timeout, func() { cancel(errStepTimeout) })
			}
		})
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
		}()
	}

	rn.mu.Lock()
	sr.Status = StatusRunning
	sr.Started = time.Now()
	rn.mu.Unlock()
	r.reporter.StepStarted(rn.spec, s)

	w := logs.NewTruncatingLineWriter(logs.NewMasker(s.Secrets), r.maxLine, func(line []byte) {
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		r.reporter.StepLog(rn.spec, s, line)
	})
	state, err := r.backend.Run(runCtx, rn.spec, step, w)
	_ = w.Close()

	rn.mu.Lock()
	sr.Finished = time.Now()
	switch {
	case s.Detach && rn.ending && (err != nil || state.Killed):
		// A background step stopped because the pipeline ended did its job.
		sr.Status, sr.ExitCode = StatusSuccess, 0
	case err != nil && ctx.Err() != nil:
		sr.Status, sr.ExitCode, sr.Error = StatusKilled, ExitKilled, cancelReason(ctx)
	case err != nil:
		sr.Status, sr.Error = StatusError, err.Error()
	case state.Killed && errors.Is(context.Cause(stepCtx), errStepTimeout) && ctx.Err() == nil:
		sr.Status, sr.ExitCode, sr.Error = StatusKilled, cmp.Or(state.ExitCode, ExitKilled), fmt.Sprintf("step timed out after %s", s.Timeout)
	case state.Killed || ctx.Err() != nil:
		sr.Status, sr.ExitCode, sr.Error = StatusKilled, cmp.Or(state.ExitCode, ExitKilled), cancelReason(ctx)
	case state.OOMKilled:
		sr.Status, sr.ExitCode, sr.Error = StatusFailure, state.ExitCode, "out of memory"
	case state.ExitCode == ExitEarly && !s.Detach:
		// Drone's early exit: the step passes and every step that has
		// not started yet is skipped; the pipeline passes.
		sr.Status, sr.ExitCode = StatusSuccess, state.ExitCode
		rn.earlyExit = true
	case state.ExitCode != 0:
		sr.Status, sr.ExitCode = StatusFailure, state.ExitCode
		sr.Error = fmt.Sprintf("exit code %d", state.ExitCode)
	default:
		sr.Status = StatusSuccess
	}
	if sr.Status.Failed() && !s.IgnoreFailure && !s.Detach {
		rn.failed = true
		rn.failedBy = append(rn.failedBy, s.Name)
		if s.FailFast && rn.cancelSteps != nil {
			rn.cancelSteps(fmt.Errorf("stopped: step %q failed (fail-fast)", s.Name))
		}
	}
	rn.mu.Unlock()
	r.reporter.StepFinished(rn.spec, s, sr)
}

// withStatusEnv returns a copy of s whose environment reports the pipeline's
// state at the moment the step starts, as Drone does for notification steps.
func (rn *run) withStatusEnv(s *backend.Step) *backend.Step {
	rn.mu.Lock()
	failed := rn.failed
	failedBy := strings.Join(rn.failedBy, ",")
	rn.mu.Unlock()
	if !failed {
		return s
	}
	cp := *s
	cp.Env = make(map[string]string, len(s.Env)+9)
	maps.Copy(cp.Env, s.Env)
	for _, k := range []string{"DRONE_BUILD_STATUS", "DRONE_STAGE_STATUS", "FERRY_BUILD_STATUS", "FERRY_STAGE_STATUS", "CI_BUILD_STATUS", "CI_PIPELINE_STATUS", "CI_STEP_STATUS"} {
		cp.Env[k] = "failure"
	}
	cp.Env["DRONE_FAILED_STEPS"] = failedBy
	cp.Env["FERRY_FAILED_STEPS"] = failedBy
	return &cp
}
