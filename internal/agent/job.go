package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/rpc"
	"github.com/ferryci/ferry/internal/runtime"
)

// Why a job's run was cancelled; the text becomes the job's error.
var (
	errCancelled    = errors.New("cancelled")
	errAgentStopped = errors.New("agent stopped")
	errLeaseLost    = errors.New("lease lost: the server gave the job up or to another agent")
	errTokenRefused = errors.New("the server refused the agent token")
)

// shutdownGrace is how long a job that a hard shutdown killed still has to
// deliver its last reports (the killed steps and Complete).
const shutdownGrace = 10 * time.Second

// extendTimeout bounds one Extend call.
const extendTimeout = 10 * time.Second

// Labels the agent adds to the backend resources of a job.
const (
	labelJob      = "ferry.job"
	labelBuild    = "ferry.build"
	labelPipeline = "ferry.pipeline"
)

// runJob runs one leased job to its end and reports it. It returns when
// the Complete report was acknowledged, or the job was given up. ctx is the
// agent's: when it ends, the job is killed.
func (a *Agent) runJob(ctx context.Context, l *lane, job *rpc.Job) {
	log := a.log.With("agent", l.name, "job", job.ID, "build", job.BuildID, "pipeline", job.Pipeline)
	log.Info("job leased")
	started := time.Now()

	// The run ends when the server cancels the job, the lease is lost,
	// or the agent is stopped hard.
	runCtx, cancelRun := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRun(nil)
	// Reports outlive the run, so that a killed job is still reported;
	// after a hard stop they get shutdownGrace.
	sendCtx, stopSending := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopSending(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			cancelRun(errAgentStopped)
		case <-done:
			return
		}
		select {
		case <-time.After(shutdownGrace):
			stopSending(errAgentStopped)
		case <-done:
		}
	}()

	// lose gives the job up: the run is killed and nothing more is
	// reported. It does nothing once the Complete report was delivered
	// (a heartbeat in flight may meet the then finished lease).
	var loseMu sync.Mutex
	var lostErr error
	reported := false
	lose := func(err error) {
		loseMu.Lock()
		if reported || lostErr != nil {
			loseMu.Unlock()
			return
		}
		lostErr = err
		loseMu.Unlock()
		log.Warn("giving the job up", "reason", err)
		cancelRun(err)
		stopSending(err)
	}

	ob := newOutbox(a.client, job, log)
	if a.cfg.reportLinger > 0 {
		ob.linger = a.cfg.reportLinger
	}
	sent := make(chan error, 1)
	go func() {
		err := ob.run(sendCtx)
		switch {
		case errors.Is(err, rpc.ErrLeaseLost):
			lose(errLeaseLost)
		case errors.Is(err, rpc.ErrUnauthorized):
			lose(errTokenRefused)
		}
		sent <- err
	}()

	// Once the run has ended, a lease the heartbeat finds gone may just
	// be the job completed by a Complete whose answer was lost: the
	// heartbeat then stops, and the outbox learns from its own answers
	// whether the lease is really lost.
	var runEnded atomic.Bool
	hbStop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeat(sendCtx, log, job, hbStop, func() { cancelRun(errCancelled) }, func(err error) {
			if !runEnded.Load() {
				lose(err)
			}
		})
	}()

	status, errText := a.execute(runCtx, log, job, reporter{ob})
	runEnded.Store(true)
	ob.finish(status, errText)
	err := <-sent
	loseMu.Lock()
	reported = err == nil
	loseMu.Unlock()
	close(hbStop)
	<-hbDone

	switch {
	case lostErr != nil:
		log.Warn("job given up", "reason", lostErr, "duration", time.Since(started).Round(time.Millisecond))
	case err != nil:
		log.Error("job finished but its result could not be reported", "status", status, "err", err)
	default:
		log.Info("job finished", "status", status, "duration", time.Since(started).Round(time.Millisecond))
	}
}

// heartbeat extends the job's lease every interval until stop is closed:
// Cancel=true calls cancel, a lost lease or refused token calls lose, and
// any other failure is retried at the next beat, since the lease's TTL
// covers a short outage.
func (a *Agent) heartbeat(ctx context.Context, log *slog.Logger, job *rpc.Job, stop <-chan struct{}, cancel func(), lose func(error)) {
	interval := a.cfg.Heartbeat
	if job.LeaseTTL > 0 {
		interval = min(interval, job.LeaseTTL/3)
	}
	interval = max(interval, 10*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	failing, cancelled := false, false
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, done := context.WithTimeout(ctx, extendTimeout)
		res, err := a.client.Extend(rctx, job.ID, &rpc.ExtendRequest{LeaseToken: job.LeaseToken})
		done()
		switch {
		case err == nil:
			if failing {
				failing = false
				log.Info("lease extended again")
			}
			if res.Cancel && !cancelled {
				cancelled = true
				log.Info("job cancelled by the server")
				cancel()
			}
		case errors.Is(err, rpc.ErrLeaseLost):
			lose(errLeaseLost)
			return
		case errors.Is(err, rpc.ErrUnauthorized):
			lose(errTokenRefused)
			return
		case ctx.Err() != nil:
			return
		default:
			if !failing {
				failing = true
				log.Warn("extending the lease failed; retrying", "err", err)
			}
		}
	}
}

// execute checks the source out, compiles the job's pipeline and runs it,
// reporting through rep. It returns the job's final status and error text.
func (a *Agent) execute(ctx context.Context, log *slog.Logger, job *rpc.Job, rep reporter) (string, string) {
	fail := func(format string, args ...any) (string, string) {
		msg := fmt.Sprintf(format, args...)
		if ctx.Err() != nil {
			return string(runtime.StatusKilled), context.Cause(ctx).Error()
		}
		log.Warn("job failed before its steps ran", "err", msg)
		return string(runtime.StatusError), msg
	}

	cfg, err := pipeline.Parse(job.ConfigFile, []byte(job.Config))
	if err != nil {
		return fail("%v", err)
	}
	var p *pipeline.Pipeline
	for _, c := range cfg.Pipelines {
		if c.Name == job.Pipeline {
			p = c
			break
		}
	}
	if p == nil {
		return fail("%s: no pipeline named %q", job.ConfigFile, job.Pipeline)
	}
	kind, err := backendFor(p.Type)
	if err != nil {
		return fail("pipeline %q: %v", p.Name, err)
	}
	be := a.backends[kind]
	if be == nil {
		return fail("pipeline %q needs the %s backend, which this agent does not offer", p.Name, kind)
	}

	// The job's checkout is the work dir itself: steps see an empty
	// directory, and the next job gets it only once it is empty again.
	src, err := a.dirs.get()
	if err != nil {
		return fail("creating work dir: %v", err)
	}
	defer func() {
		if err := a.dirs.put(src); err != nil {
			log.Warn("removing the job's work dir", "dir", src, "err", err)
		}
	}()

	timeout := job.Timeout
	if timeout <= 0 {
		timeout = a.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Once the run is being stopped, output must not block: a blocked
	// writer would keep the killed step from ending.
	defer context.AfterFunc(ctx, rep.o.unblock)()

	meta := job.Metadata
	meta.Build.Instance = a.hostname
	res, err := compiler.Compile(p, compiler.Options{
		Metadata: &meta,
		Backend:  kind,
		RunID:    runID(job.ID),
		Number:   job.Number,
		HostDir:  src,
		Env:      job.Env,
		Secrets:  job.Secrets,
		Trusted:  job.Trusted,
		Labels: map[string]string{
			labelJob:      strconv.FormatInt(job.ID, 10),
			labelBuild:    strconv.FormatInt(job.BuildID, 10),
			labelPipeline: p.Name,
		},
	})
	if err != nil {
		return fail("%s: %v", job.ConfigFile, err)
	}
	for _, w := range res.Warnings {
		log.Warn("pipeline warning", "warning", w)
	}

	if !job.Clone.Disable {
		if err := clone(ctx, src, job.Clone); err != nil {
			for _, s := range append(res.Spec.Services, res.Spec.Steps...) {
				rep.o.step(rpc.StepUpdate{Step: s.Name, Status: string(runtime.StatusSkipped)})
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return string(runtime.StatusKilled), "pipeline timed out"
			}
			return fail("%v", err)
		}
	}

	runner := runtime.New(be, runtime.WithReporter(rep), runtime.WithLogger(log), runtime.WithMaxLine(maxBatchBytes-lineOverhead))
	result := runner.Run(ctx, res.Spec)
	return string(result.Status), result.Error
}

// backendFor returns the backend a pipeline type runs on.
func backendFor(typ string) (string, error) {
	if name, ok := backend.ForType(typ); ok {
		return name, nil
	}
	return "", fmt.Errorf("pipeline type %q is not supported", typ)
}

// runID names one attempt of a job: backends name and label resources with
// it, so it must differ between attempts that may overlap (a job re-queued
// while its first agent still cleans up).
func runID(jobID int64) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("ferry-job%d-%s", jobID, hex.EncodeToString(b))
}
