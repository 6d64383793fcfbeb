package docker

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/ferryci/ferry/internal/backend"
	"github.com/ferryci/ferry/internal/testimage"
)

// TestOOMEvent checks the event-log fallback of oomKilled, which Engine
// 20.10 needs when its OOM notification arrives after the exit: the race is
// rare, so the lookup is tested on its own, with one container that runs out
// of memory and one that is killed by SIGKILL otherwise.
func TestOOMEvent(t *testing.T) {
	t.Parallel()
	cli := testimage.Client(t)
	ctx := t.Context()
	ref, err := testimage.Busybox(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	e := New(cli, Options{}).(*engine)

	run := func(script string, code int64) (string, time.Time) {
		t.Helper()
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: []string{"sh", "-c", script}},
			&container.HostConfig{Resources: container.Resources{Memory: 16 << 20}}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		})
		resC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-resC:
			if res.StatusCode != code {
				t.Fatalf("exit code %d, want %d", res.StatusCode, code)
			}
		case err := <-errC:
			t.Fatal(err)
		}
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		started, err := time.Parse(time.RFC3339Nano, info.State.StartedAt)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID, started
	}

	// The kernel kills dd for its 64 MiB buffer; the container lives on a
	// moment, so that the engine sees the cgroup's OOM before the exit.
	// (When the main process itself dies of the OOM at once, an engine
	// may log no event at all: oomKilled then reports a plain kill.)
	oomID, started := run("dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 2; exit 137", exitSIGKILL)
	waitOOM := time.Now().Add(time.Minute) // a guard against hanging, not a requirement
	for {
		oom, err := e.oomEvent(ctx, oomID, started)
		if err != nil {
			t.Fatal(err)
		}
		if oom {
			break
		}
		if time.Now().After(waitOOM) {
			t.Fatal("no oom event for a container that ran out of memory")
		}
		time.Sleep(50 * time.Millisecond)
	}

	killedID, started := run("sleep 10 & kill -9 $!; wait $!", exitSIGKILL)
	if oom, err := e.oomEvent(ctx, killedID, started); err != nil || oom {
		t.Errorf("oomEvent for a plain SIGKILL = %v, %v; want false", oom, err)
	}
	step := &backend.Step{Name: "killed", MemLimit: 16 << 20}
	if e.oomKilled(ctx, step, killedID) {
		t.Error("oomKilled for a plain SIGKILL")
	}
}
