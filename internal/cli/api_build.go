package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

// BuildListOptions are the flags of `ferry build ls`.
type BuildListOptions struct {
	Branch      string
	Event       string
	Status      string
	PullRequest int64
	// Limit is how many builds to list, newest first; more than the
	// server's page size (100) are fetched page by page.
	Limit int
}

// maxBuildPage is the largest page the server answers.
const maxBuildPage = 100

// BuildList runs `ferry build ls`: the repo's builds, newest first.
func (a *API) BuildList(ctx context.Context, slug string, o BuildListOptions) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if o.Limit < 1 {
		return usagef("--limit %d must be at least 1", o.Limit)
	}
	if o.PullRequest < 0 {
		return usagef("--pr %d must be a pull request number", o.PullRequest)
	}
	f := apiclient.BuildFilter{Branch: o.Branch, Event: o.Event, Status: apiclient.Status(o.Status), PullRequest: o.PullRequest}
	builds := []*apiclient.Build{}
	for len(builds) < o.Limit {
		f.Limit = min(o.Limit-len(builds), maxBuildPage)
		page, next, err := a.Client.Builds(ctx, slug, f)
		if err != nil {
			return fmt.Errorf("listing builds of %s: %w", slug, err)
		}
		builds = append(builds, page...)
		if next == 0 {
			break
		}
		f.Before = next
	}
	return printList(a, builds, "no builds of "+slug+" match", []string{"BUILD", "STATUS", "EVENT", "BRANCH", "COMMIT", "AUTHOR", "CREATED", "DURATION", "MESSAGE"}, func(b *apiclient.Build) []string {
		return []string{fmt.Sprint(b.Number), string(b.Status), buildEvent(b), orDash(b.Branch), shortSHA(b.Commit),
			orDash(b.Author), a.ago(b.Created), a.took(b.Started, b.Finished), firstLine(b.Message, 50)}
	})
}

// buildEvent names a build's event, with its pull request number.
func buildEvent(b *apiclient.Build) string {
	if b.PullRequest > 0 {
		return fmt.Sprintf("%s #%d", b.Event, b.PullRequest)
	}
	return b.Event
}

// BuildStartOptions are the flags of `ferry build start`.
type BuildStartOptions struct {
	Branch string
	Ref    string
	SHA    string
	// Params are K=V pairs, given to the steps as environment variables.
	Params []string
}

// BuildStart runs `ferry build start`: it starts a build by hand and
// prints it.
func (a *API) BuildStart(ctx context.Context, slug string, o BuildStartOptions) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if o.Branch != "" && o.Ref != "" {
		return usagef("give --branch or --ref, not both")
	}
	req := &apiclient.BuildRequest{Branch: o.Branch, Ref: o.Ref, SHA: o.SHA}
	for _, p := range o.Params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return usagef("--param %q must be K=V", p)
		}
		if req.Params == nil {
			req.Params = map[string]string{}
		}
		req.Params[k] = v
	}
	b, err := a.Client.StartBuild(ctx, slug, req)
	if err != nil {
		return fmt.Errorf("starting a build of %s: %w", slug, err)
	}
	if a.JSON {
		return a.printJSON(b)
	}
	fmt.Fprintf(a.Stdout, "started build #%d of %s at %s (%s)\n", b.Number, b.Repo, shortSHA(b.Commit), b.Ref)
	a.printPipelines(b)
	return nil
}

// BuildInfo runs `ferry build info`: a build with its pipelines, steps,
// statuses and why waiting jobs wait.
func (a *API) BuildInfo(ctx context.Context, slug string, number int64) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	b, err := a.Client.Build(ctx, slug, number)
	if err != nil {
		return fmt.Errorf("getting build %d of %s: %w", number, slug, err)
	}
	if a.JSON {
		return a.printJSON(b)
	}
	a.printBuild(b)
	return nil
}

// printBuild prints a build's fields and its pipelines.
func (a *API) printBuild(b *apiclient.Build) {
	fmt.Fprintf(a.Stdout, "build #%d of %s: %s\n", b.Number, b.Repo, b.Status)
	w := a.table()
	ev := buildEvent(b)
	if b.Cron != "" {
		ev += " (cron " + b.Cron + ")"
	}
	row(w, "  event:", ev+", by "+orDash(b.Sender))
	row(w, "  ref:", orDash(b.Ref))
	row(w, "  commit:", orDash(b.Commit))
	if b.Message != "" {
		row(w, "  message:", firstLine(b.Message, 72))
	}
	author := b.Author
	if b.AuthorEmail != "" {
		author += " <" + b.AuthorEmail + ">"
	}
	row(w, "  author:", orDash(author))
	if b.Parent != 0 {
		row(w, "  restart of:", fmt.Sprintf("#%d", b.Parent))
	}
	if len(b.Params) > 0 {
		row(w, "  params:", pairs(b.Params, " "))
	}
	if b.Approval != "" {
		row(w, "  approval:", b.Approval+by(b.ApprovedBy))
	}
	row(w, "  created:", a.stamp(b.Created))
	if !b.Started.IsZero() {
		row(w, "  started:", a.stamp(b.Started))
	}
	if !b.Finished.IsZero() {
		row(w, "  finished:", a.stamp(b.Finished))
	}
	row(w, "  duration:", a.took(b.Started, b.Finished))
	if b.Error != "" {
		row(w, "  error:", b.Error)
	}
	for i, warning := range b.Warnings {
		label := ""
		if i == 0 {
			label = "  warnings:"
		}
		row(w, label, warning)
	}
	_ = w.Flush()
	a.printPipelines(b)
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

// printPipelines prints a build's pipelines and steps as a table whose
// first column is "P" for a pipeline and "P.S" for its step: the numbers
// `ferry logs` takes.
func (a *API) printPipelines(b *apiclient.Build) {
	if len(b.Pipelines) == 0 {
		return
	}
	fmt.Fprintln(a.Stdout)
	w := a.table()
	row(w, "#", "NAME", "STATUS", "EXIT", "DURATION", "NOTE")
	for _, p := range b.Pipelines {
		row(w, fmt.Sprint(p.Number), p.Name, string(p.Status), "", a.took(p.Started, p.Finished), pipelineNote(p))
		for _, s := range p.Steps {
			exit := ""
			if s.Status.Done() && s.Status != apiclient.StatusSkipped {
				exit = fmt.Sprint(s.ExitCode)
			}
			row(w, fmt.Sprintf("%d.%d", p.Number, s.Number), "  "+s.Name, string(s.Status), exit,
				a.took(s.Started, s.Finished), s.Error)
		}
	}
	_ = w.Flush()
}

// pipelineNote explains a pipeline's state: why it waits, where it runs,
// or its error.
func pipelineNote(p *apiclient.Pipeline) string {
	var notes []string
	if p.Job != nil && p.Job.WaitingReason != "" {
		notes = append(notes, p.Job.WaitingReason)
	}
	if p.Error != "" {
		notes = append(notes, p.Error)
	}
	if p.Agent != "" && !p.Status.Done() {
		notes = append(notes, "on "+p.Agent)
	}
	return strings.Join(notes, "; ")
}

// BuildCancel runs `ferry build cancel`.
func (a *API) BuildCancel(ctx context.Context, slug string, number int64) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	b, err := a.Client.CancelBuild(ctx, slug, number)
	if err != nil {
		return fmt.Errorf("cancelling build %d of %s: %w", number, slug, err)
	}
	if a.JSON {
		return a.printJSON(b)
	}
	// Queued jobs end at once; a running one when its agent learns of the
	// cancellation, at its next lease extension.
	if b.Status.Done() {
		fmt.Fprintf(a.Stdout, "build #%d of %s: cancelled (%s)\n", b.Number, b.Repo, b.Status)
		return nil
	}
	stopping := 0
	for _, p := range b.Pipelines {
		if p.Job != nil && !p.Job.Status.Done() {
			stopping++
		}
	}
	if stopping == 0 {
		// Its jobs ended already; the build's own state follows.
		fmt.Fprintf(a.Stdout, "build #%d of %s: cancelling; its pipelines have stopped (ferry build wait %s %d waits for the end)\n",
			b.Number, b.Repo, b.Repo, b.Number)
		return nil
	}
	fmt.Fprintf(a.Stdout, "build #%d of %s: cancelling; the agents are stopping %d running pipeline(s) (ferry build wait %s %d waits for the end)\n",
		b.Number, b.Repo, stopping, b.Repo, b.Number)
	return nil
}

// BuildApprove runs `ferry build approve`.
func (a *API) BuildApprove(ctx context.Context, slug string, number int64) error {
	return a.buildAction(ctx, slug, number, "approving", a.Client.ApproveBuild)
}

// BuildDecline runs `ferry build decline`.
func (a *API) BuildDecline(ctx context.Context, slug string, number int64) error {
	return a.buildAction(ctx, slug, number, "declining", a.Client.DeclineBuild)
}

// buildAction calls one of the build actions and prints the build's new
// state.
func (a *API) buildAction(ctx context.Context, slug string, number int64, doing string,
	call func(context.Context, string, int64) (*apiclient.Build, error)) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	b, err := call(ctx, slug, number)
	if err != nil {
		return fmt.Errorf("%s build %d of %s: %w", doing, number, slug, err)
	}
	if a.JSON {
		return a.printJSON(b)
	}
	fmt.Fprintf(a.Stdout, "build #%d of %s: %s\n", b.Number, b.Repo, b.Status)
	return nil
}

// BuildRestart runs `ferry build restart`: it starts a new build of a
// finished build's commit and config, and prints it.
func (a *API) BuildRestart(ctx context.Context, slug string, number int64, failedOnly bool) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	b, err := a.Client.RestartBuild(ctx, slug, number, failedOnly)
	if err != nil {
		return fmt.Errorf("restarting build %d of %s: %w", number, slug, err)
	}
	if a.JSON {
		return a.printJSON(b)
	}
	fmt.Fprintf(a.Stdout, "restarted build #%d of %s as #%d\n", number, b.Repo, b.Number)
	a.printPipelines(b)
	return nil
}

// BuildWaitOptions are the flags of `ferry build wait`.
type BuildWaitOptions struct {
	// Interval is how often the build is looked at.
	Interval time.Duration
	// Timeout gives up after this long; zero waits for ever.
	Timeout time.Duration
}

// DefaultWaitInterval is how often `ferry build wait` polls by default.
const DefaultWaitInterval = 2 * time.Second

// waitMaxFailures is how many polls in a row may fail (the server is
// unreachable or answers 5xx) before `build wait` gives up.
const waitMaxFailures = 5

// BuildWait runs `ferry build wait`: it polls the build until it is final
// and prints it. It returns nil when the build succeeded, and an
// *ExitError with ExitFailed otherwise, so that scripts can branch on the
// exit code. Temporary failures to reach the server are retried.
func (a *API) BuildWait(ctx context.Context, slug string, number int64, o BuildWaitOptions) error {
	if err := CheckSlug(slug); err != nil {
		return err
	}
	if o.Interval <= 0 {
		o.Interval = DefaultWaitInterval
	}
	if o.Timeout < 0 {
		return usagef("--timeout %s must not be negative", o.Timeout)
	}
	b, err := a.waitFinal(ctx, slug, number, o)
	if err != nil {
		return err
	}
	return a.waited(b)
}

// waitFinal polls the build every o.Interval until it is final and
// returns it, retrying temporary failures to reach the server; with
// o.Timeout it gives up after that long.
func (a *API) waitFinal(ctx context.Context, slug string, number int64, o BuildWaitOptions) (*apiclient.Build, error) {
	var deadline <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	failures := 0
	for {
		b, err := a.Client.Build(ctx, slug, number)
		switch {
		case err == nil:
			failures = 0
			if b.Status.Done() {
				return b, nil
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !temporary(err):
			return nil, fmt.Errorf("getting build %d of %s: %w", number, slug, err)
		default:
			failures++
			if failures >= waitMaxFailures {
				return nil, fmt.Errorf("getting build %d of %s: giving up after %d failures: %w", number, slug, failures, err)
			}
			fmt.Fprintf(a.Stderr, "ferry: getting build %d of %s: %v (retrying)\n", number, slug, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("build %d of %s is not finished after %s", number, slug, o.Timeout)
		case <-tick.C:
		}
	}
}

// waited prints a final build and turns its status into the result of
// BuildWait.
func (a *API) waited(b *apiclient.Build) error {
	if a.JSON {
		if err := a.printJSON(b); err != nil {
			return err
		}
	} else {
		a.printBuild(b)
	}
	if b.Status != apiclient.StatusSuccess {
		return &ExitError{Code: ExitFailed}
	}
	return nil
}

// temporary reports whether a request that failed with err may succeed
// when repeated: the server was unreachable, or answered 5xx or 429.
func temporary(err error) bool {
	var ae *apiclient.Error
	if !errors.As(err, &ae) {
		var ue *UsageError
		return !errors.As(err, &ue)
	}
	return ae.StatusCode >= 500 || ae.StatusCode == http.StatusTooManyRequests
}
