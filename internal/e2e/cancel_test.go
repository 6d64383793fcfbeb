package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/ferryci/ferry/internal/testimage"

	"github.com/ferryci/ferry/internal/gittest"
)

// cancelLimit bounds the wait for a cancelled build's step to stop. It is
// a guard, not a requirement: the step would run forever, so a step that
// stops within it was stopped, however busy the machine; the time it took
// is logged (on an idle machine, well under a second).
const cancelLimit = 2 * time.Minute

// TestCancelDockerStep is acceptance test 6: cancelling a build through
// the API stops its running Docker step, and leaves no container, network
// or volume of the job behind in the Engine.
func TestCancelDockerStep(t *testing.T) {
	cli := testimage.Client(t)
	ctx := context.Background()
	image, err := testimage.Busybox(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	// The step ignores SIGTERM, as many real programs do, so stopping it
	// needs the kill that follows.
	pipeline := fmt.Sprintf(`kind: pipeline
type: docker
name: default
clone:
  disable: true
services:
- name: cache
  image: %[1]s
  commands:
  - sleep 300
steps:
- name: forever
  image: %[1]s
  commands:
  - trap "" TERM
  - echo started
  - sleep 300
`, image)
	repo := gittest.NewWithOrigin(t, t.TempDir(), "longrun", map[string]string{".drone.yml": pipeline})
	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/longrun"
	c.createRepo(map[string]any{"git_url": repo.URL(), "slug": slug, "poll_interval": "0s"})
	startAgent(t, srv.URL, c.agentToken("docker-agent"), agentOptions{Name: "docker-agent", Backend: "docker"})

	b := c.manualBuild(slug, "main", repo.Git("rev-parse", "HEAD"))
	var jobID int64
	eventually(t, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
		b = c.build(slug, b.Number)
		p := b.Pipelines[0]
		step := p.step(t, "forever")
		if step.Status != "running" {
			return false, "step not running yet: " + describe(b)
		}
		jobID = p.Job.ID
		log := c.stepLog(slug, b.Number, p.Number, step.Number)
		return strings.Contains(log, "started"), "step log so far: " + log
	})

	// The job's containers run, found by the labels the agent gives them.
	jobFilter := filters.NewArgs(filters.Arg("label", fmt.Sprintf("ferry.job=%d", jobID)))
	running := listContainers(t, cli, jobFilter)
	if len(running) != 2 {
		t.Fatalf("the Engine runs %d containers labelled ferry.job=%d, want 2 (service and step): %v", len(running), jobID, running)
	}

	var cancelled buildJSON
	c.do("POST", fmt.Sprintf("/api/repos/%s/builds/%d/cancel", slug, b.Number), nil, http.StatusOK, &cancelled)
	start := time.Now()
	var step *stepJSON
	eventually(t, cancelLimit, 20*time.Millisecond, func() (bool, string) {
		b = c.build(slug, b.Number)
		step = b.Pipelines[0].step(t, "forever")
		return done(step.Status), "step still " + step.Status + ": " + describe(b)
	})
	stopped := time.Since(start)
	t.Logf("the step stopped %s after the cancel request", stopped.Round(time.Millisecond))
	if step.Status != "killed" {
		t.Errorf("cancelled step is %s, want killed", step.Status)
	}
	// By the time the agent reports the job complete, it has removed the
	// job's resources.
	b = c.waitBuild(slug, b.Number, cancelLimit-stopped, nil)
	if b.Status != "killed" || b.Pipelines[0].Job.Status != "killed" {
		t.Errorf("build %s, job %s; want both killed: %s", b.Status, b.Pipelines[0].Job.Status, describe(b))
	}
	if left := listContainers(t, cli, jobFilter); len(left) > 0 {
		t.Errorf("containers of job %d left behind: %v", jobID, left)
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: jobFilter})
	if err != nil {
		t.Fatal(err)
	}
	vols, err := cli.VolumeList(ctx, volume.ListOptions{Filters: jobFilter})
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) > 0 || len(vols.Volumes) > 0 {
		t.Errorf("job %d left %d networks and %d volumes behind", jobID, len(nets), len(vols.Volumes))
	}
	t.Logf("the build ended %s after the cancel request", time.Since(start).Round(time.Millisecond))
}

// listContainers lists the containers, running or not, that match f, as
// "name (state)".
func listContainers(t testing.TB, cli *client.Client, f filters.Args) []string {
	t.Helper()
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s (%s)", strings.Join(c.Names, ","), c.State))
	}
	return out
}
