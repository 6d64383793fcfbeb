package runtime_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/backend/docker"
	"github.com/ferryci/ferry/internal/backend/local"
	"github.com/ferryci/ferry/internal/runtime"
	"github.com/ferryci/ferry/internal/testimage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Reporter that keeps every event.
type recorder struct {
	runtime.NopReporter
	mu     sync.Mutex
	events []string
	logs   map[string][]string
}

func (r *recorder) StepStarted(_ *backend.Spec, s *backend.Step) {
	r.mu.Lock()
	r.events = append(r.events, "start "+s.Name)
	r.mu.Unlock()
}

func (r *recorder) StepLog(_ *backend.Spec, s *backend.Step, line []byte) {
	r.mu.Lock()
	if r.logs == nil {
		r.logs = map[string][]string{}
	}
	r.logs[s.Name] = append(r.logs[s.Name], string(line))
	r.mu.Unlock()
}

func (r *recorder) StepFinished(_ *backend.Spec, s *backend.Step, res *runtime.StepResult) {
	r.mu.Lock()
	r.events = append(r.events, "end "+s.Name+" "+string(res.Status))
	r.mu.Unlock()
}

func step(name string, deps []string, commands ...string) *backend.Step {
	return &backend.Step{ID: name, Name: name, Commands: commands, DependsOn: deps, RunPolicy: backend.RunOnSuccess}
}

func run(t *testing.T, ctx context.Context, steps ...*backend.Step) (*runtime.Result, *recorder) {
	t.Helper()
	dir := t.TempDir()
	spec := &backend.Spec{ID: "rt-" + strings.ReplaceAll(t.Name(), "/", "-"), Name: "p", Workspace: backend.Workspace{Base: dir, HostDir: dir}}
	for _, s := range steps {
		if s.Service {
			spec.Services = append(spec.Services, s)
		} else {
			spec.Steps = append(spec.Steps, s)
		}
	}
	rec := &recorder{}
	res := runtime.New(local.New(local.Options{}), runtime.WithReporter(rec)).Run(ctx, spec)
	return res, rec
}

func statuses(res *runtime.Result) map[string]runtime.Status {
	out := map[string]runtime.Status{}
	for _, s := range res.Steps {
		out[s.Name] = s.Status
	}
	return out
}

func TestSerialOrderAndFailurePolicies(t *testing.T) {
	notify := step("notify", []string{"b"}, `echo "status=$DRONE_BUILD_STATUS failed=$DRONE_FAILED_STEPS"`)
	notify.RunPolicy = backend.RunOnFailure
	always := step("always", []string{"notify"}, "echo always")
	always.RunPolicy = backend.RunAlways
	res, rec := run(t, context.Background(),
		step("a", []string{}, "echo a"),
		step("b", []string{"a"}, "echo b; exit 3"),
		step("c", []string{"b"}, "echo never"),
		notify, always,
	)
	if res.Status != runtime.StatusFailure {
		t.Fatalf("pipeline status = %s, want failure", res.Status)
	}
	want := map[string]runtime.Status{"a": "success", "b": "failure", "c": "skipped", "notify": "success", "always": "success"}
	for k, v := range want {
		if statuses(res)[k] != v {
			t.Errorf("step %s = %s, want %s", k, statuses(res)[k], v)
		}
	}
	if got := rec.logs["notify"]; len(got) == 0 || got[len(got)-1] != "status=failure failed=b" {
		t.Errorf("notify saw %q", got)
	}
	if res.Steps[1].ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.Steps[1].ExitCode)
	}
	if strings.Join(rec.events[:2], ",") != "start a,end a success" {
		t.Errorf("events = %v", rec.events)
	}
}

func TestDAGRunsIndependentStepsInParallel(t *testing.T) {
	// Each waits for the other's marker: this only ends if both run at once.
	barrier := func(me, other string) string {
		return "touch " + me + "; i=0; while [ ! -f " + other + " ]; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.05; done"
	}
	res, _ := run(t, context.Background(),
		step("x", []string{}, barrier("x.ok", "y.ok")),
		step("y", []string{}, barrier("y.ok", "x.ok")),
		step("z", []string{"x", "y"}, "true"),
	)
	if res.Status != runtime.StatusSuccess {
		t.Fatalf("status = %s (%v), want success", res.Status, statuses(res))
	}
}

func TestCancelKillsRunningSteps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	s := step("sleepy", []string{}, "sleep 3600")
	next := step("next", []string{"sleepy"}, "true")
	onFail := step("on-failure", []string{"next"}, "true")
	onFail.RunPolicy = backend.RunOnFailure
	go func() { time.Sleep(300 * time.Millisecond); close(started) }()
	begin := time.Now()
	res, _ := run(t, ctx, s, next, onFail)
	// A guard, not a requirement: without the kill the step would run for
	// an hour.
	if d := time.Since(begin); d > 2*time.Minute {
		t.Fatalf("cancel took %s: the step ran on", d)
	}
	if res.Status != runtime.StatusKilled {
		t.Fatalf("status = %s, want killed", res.Status)
	}
	got := statuses(res)
	if got["sleepy"] != runtime.StatusKilled || got["next"] != runtime.StatusSkipped || got["on-failure"] != runtime.StatusSkipped {
		t.Fatalf("statuses = %v", got)
	}
}

func TestStepTimeoutFailsPipeline(t *testing.T) {
	s := step("slow", []string{}, "sleep 30")
	s.Timeout = 300 * time.Millisecond
	after := step("after", []string{"slow"}, "echo cleanup")
	after.RunPolicy = backend.RunOnFailure
	res, _ := run(t, context.Background(), s, after)
	if res.Status != runtime.StatusFailure {
		t.Fatalf("status = %s, want failure", res.Status)
	}
	if res.Steps[0].Status != runtime.StatusKilled || !strings.Contains(res.Steps[0].Error, "timed out") {
		t.Fatalf("slow = %s %q", res.Steps[0].Status, res.Steps[0].Error)
	}
	if res.Steps[1].Status != runtime.StatusSuccess {
		t.Fatalf("on-failure step = %s, want success", res.Steps[1].Status)
	}
}

// slowStart is the local backend behind an engine that takes longer to
// start a step than the step's timeout, as a busy Docker Engine may.
type slowStart struct {
	backend.Backend
	delay time.Duration
	// alive records, per step, whether the step's context was still alive
	// after the delay, when the step's process was about to start.
	mu    sync.Mutex
	alive map[string]bool
}

func (b *slowStart) Run(ctx context.Context, spec *backend.Spec, s *backend.Step, out io.Writer) (*backend.State, error) {
	time.Sleep(b.delay)
	b.mu.Lock()
	b.alive[s.Name] = ctx.Err() == nil
	b.mu.Unlock()
	return b.Backend.Run(ctx, spec, s, out)
}

// TestStepTimeoutCountsFromStart checks that a step's timeout starts when
// its process starts: an engine slower than the timeout does not kill the
// step before it ran, and the timeout still kills it once it runs.
func TestStepTimeoutCountsFromStart(t *testing.T) {
	dir := t.TempDir()
	s := step("slow", []string{}, "echo started", "sleep 30")
	s.Timeout = 100 * time.Millisecond
	spec := &backend.Spec{ID: "rt-timeout-start", Name: "p", Workspace: backend.Workspace{Base: dir, HostDir: dir}, Steps: []*backend.Step{s}}
	b := &slowStart{Backend: local.New(local.Options{}), delay: 3 * s.Timeout, alive: map[string]bool{}}
	res := runtime.New(b).Run(context.Background(), spec)
	if !b.alive["slow"] {
		t.Error("the step's context ended before its process started")
	}
	if st := res.Steps[0]; st.Status != runtime.StatusKilled || !strings.Contains(st.Error, "timed out") {
		t.Errorf("step = %s %q, want killed by its timeout", st.Status, st.Error)
	}
}

func TestDetachedStepStoppedAtEnd(t *testing.T) {
	bg := step("bg", []string{}, "echo started; sleep 60")
	bg.Detach = true
	res, rec := run(t, context.Background(), bg, step("fg", []string{"bg"}, "sleep 0.2"))
	if res.Status != runtime.StatusSuccess {
		t.Fatalf("status = %s, want success", res.Status)
	}
	if got := statuses(res)["bg"]; got != runtime.StatusSuccess {
		t.Fatalf("detached step = %s, want success", got)
	}
	if len(rec.logs["bg"]) == 0 {
		t.Fatal("detached step's output was not reported")
	}
}

func TestFailFastStopsSiblings(t *testing.T) {
	ff := step("ff", []string{}, "sleep 0.2; exit 1")
	ff.FailFast = true
	res, _ := run(t, context.Background(), ff, step("long", []string{}, "sleep 30"))
	got := statuses(res)
	if got["ff"] != runtime.StatusFailure || got["long"] != runtime.StatusKilled || res.Status != runtime.StatusFailure {
		t.Fatalf("statuses = %v, pipeline %s", got, res.Status)
	}
}

func TestIgnoredFailureKeepsPipelineGreen(t *testing.T) {
	s := step("flaky", []string{}, "exit 1")
	s.IgnoreFailure = true
	res, _ := run(t, context.Background(), s, step("next", []string{"flaky"}, "true"))
	if res.Status != runtime.StatusSuccess || statuses(res)["next"] != runtime.StatusSuccess {
		t.Fatalf("pipeline %s, steps %v", res.Status, statuses(res))
	}
}

func TestSecretsMaskedInReportedLines(t *testing.T) {
	s := step("leak", []string{}, `echo "token is $TOKEN"`, `printf 'hu%s\n' "nter2-secret"`)
	s.Env = map[string]string{"TOKEN": "hunter2-secret"}
	s.Secrets = []string{"hunter2-secret"}
	_, rec := run(t, context.Background(), s)
	for _, l := range rec.logs["leak"] {
		if strings.Contains(l, "hunter2") {
			t.Fatalf("secret leaked in %q", l)
		}
	}
	if !strings.Contains(strings.Join(rec.logs["leak"], "\n"), "token is ********") {
		t.Fatalf("logs = %q", rec.logs["leak"])
	}
}

func TestRunStagesSkipsDependentsOfFailures(t *testing.T) {
	var mu sync.Mutex
	var ran []string
	mk := func(name string, deps []string, st runtime.Status, onFailure bool) *runtime.Stage {
		return &runtime.Stage{Name: name, DependsOn: deps, OnSuccess: !onFailure, OnFailure: onFailure, Run: func(context.Context) runtime.Status {
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			return st
		}}
	}
	got := runtime.RunStages(context.Background(), []*runtime.Stage{
		mk("build", nil, runtime.StatusFailure, false),
		mk("deploy", []string{"build"}, runtime.StatusSuccess, false),
		mk("notify", []string{"build"}, runtime.StatusSuccess, true),
		mk("other", nil, runtime.StatusSuccess, false),
	}, nil)
	want := map[string]runtime.Status{"build": "failure", "deploy": "skipped", "notify": "success", "other": "success"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
}

// TestImagePullFailureFailsTheStep runs a docker pipeline whose image
// cannot be pulled (its registry refuses connections): the step that
// needs it is failed with the image and the registry's answer, not
// skipped, and the pipeline is an error.
func TestImagePullFailureFailsTheStep(t *testing.T) {
	cli := testimage.Client(t)
	dir := t.TempDir()
	const img = "127.0.0.1:1/ferry-test/absent:1"
	spec := &backend.Spec{ID: "rt-pull-" + strconv.Itoa(os.Getpid()), Name: "p",
		Labels:    map[string]string{"ferry.test": "runtime"},
		Workspace: backend.Workspace{Base: "/drone", Path: "src", HostDir: dir},
		Steps: []*backend.Step{
			{ID: "a", Name: "a", Image: img, Commands: []string{"true"}, RunPolicy: backend.RunOnSuccess},
			{ID: "b", Name: "b", Image: img, Commands: []string{"true"}, RunPolicy: backend.RunOnSuccess},
		}}
	rec := &recorder{}
	res := runtime.New(docker.New(cli, docker.Options{}), runtime.WithReporter(rec)).Run(t.Context(), spec)
	want := "image " + img + " could not be pulled: "
	if res.Status != runtime.StatusError || !strings.Contains(res.Error, want) || !strings.Contains(res.Error, "connection refused") {
		t.Errorf("pipeline %s (%q), want error naming the image and the registry's answer", res.Status, res.Error)
	}
	if a := res.Steps[0]; a.Status != runtime.StatusError || !strings.HasPrefix(a.Error, want) {
		t.Errorf("step a: %s (%q), want error %q…", a.Status, a.Error, want)
	}
	if b := res.Steps[1]; b.Status != runtime.StatusSkipped {
		t.Errorf("step b: %s, want skipped after a failed", b.Status)
	}
}

// TestExitCode78EndsThePipelineEarly: as in Drone, a step that exits 78
// passes and ends its pipeline early, passing: every step that has not
// started is skipped, whatever its run policy.
func TestExitCode78EndsThePipelineEarly(t *testing.T) {
	always := step("always", []string{"c"}, "echo always")
	always.RunPolicy = backend.RunAlways
	res, _ := run(t, context.Background(),
		step("a", []string{}, "echo a"),
		step("b", []string{"a"}, "echo nothing to do; exit 78"),
		step("c", []string{"b"}, "echo never"),
		always,
	)
	if res.Status != runtime.StatusSuccess {
		t.Fatalf("pipeline status = %s, want success", res.Status)
	}
	want := map[string]runtime.Status{"a": "success", "b": "success", "c": "skipped", "always": "skipped"}
	for k, v := range want {
		if statuses(res)[k] != v {
			t.Errorf("step %s = %s, want %s", k, statuses(res)[k], v)
		}
	}
	if res.Steps[1].ExitCode != 78 {
		t.Errorf("exit code = %d, want 78", res.Steps[1].ExitCode)
	}
}

// cancelOnRun cancels the pipeline as a step's Run begins, before the
// backend starts its process: a cancel that lands between the runtime's
// decision to run a step and the step's start.
type cancelOnRun struct {
	backend.Backend
	cancel context.CancelFunc
}

func (c cancelOnRun) Run(ctx context.Context, spec *backend.Spec, s *backend.Step, out io.Writer) (*backend.State, error) {
	c.cancel()
	<-ctx.Done()
	return c.Backend.Run(ctx, spec, s, out)
}

// A step stopped before its process started is killed with exit code
// 137, as every killed step is, never 0.
func TestKilledBeforeStartExits137(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	spec := &backend.Spec{ID: "rt-killed-before-start", Name: "p", Workspace: backend.Workspace{Base: dir, HostDir: dir},
		Steps: []*backend.Step{step("never", []string{}, "echo never")}}
	res := runtime.New(cancelOnRun{local.New(local.Options{}), cancel}).Run(ctx, spec)
	st := res.Steps[0]
	if st.Status != runtime.StatusKilled || st.ExitCode != runtime.ExitKilled {
		t.Fatalf("step %s exit %d (%s), want killed with exit %d", st.Status, st.ExitCode, st.Error, runtime.ExitKilled)
	}
}
