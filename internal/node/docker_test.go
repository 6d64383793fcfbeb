package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/testimage"
)

// The docker run mode starts the new release's container, waits for it to
// be healthy, and only then stops the old one; a restarted node adopts the
// running container instead of starting another.
func TestDockerModeStartsTheNewContainerBeforeStoppingTheOld(t *testing.T) {
	cli := testimage.Client(t)
	ctx := t.Context()
	_, file, _, _ := runtime.Caller(0)
	img, err := testimage.GoBinary(ctx, cli, "ferry-test/webapp:latest", filepath.Join(filepath.Dir(file), "..", "testimage", "webapp"))
	if err != nil {
		t.Fatal(err)
	}
	srv := newArtifactServer(t)
	v1, v2 := tgz(t, entry{name: "version", body: "v1"}), tgz(t, entry{name: "version", body: "v2"})
	srv.publish("/web.tar.gz", v1)
	dir := sharedDir(t)
	root := filepath.Join(dir, "root")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
user: %q
services:
  web:
    watch: {url: %q, check_interval: 50ms}
    run: {mode: docker, image: %s, stop_timeout: 5s}
    health: {type: http, url: "http://{container_ip}:8080/health", interval: 50ms, healthy_threshold: 2}
`, root, hookUser(), srv.URL+"/web.tar.gz", img))
	owner := filepath.Join(root, "web")
	label := filters.NewArgs(filters.Arg("label", labelService+"="+owner))
	t.Cleanup(func() {
		cs, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: label})
		for _, c := range cs {
			_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	running := func() []container.Summary {
		cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: label})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	get := func(c container.Summary) string {
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range info.NetworkSettings.Networks {
			res, err := http.Get("http://" + n.IPAddress + ":8080/")
			if err != nil {
				return err.Error()
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return string(b)
		}
		return "no network"
	}

	// The Engine's events for this service's containers, in order.
	ectx, cancel := context.WithCancel(ctx)
	msgs, _ := cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", labelService+"="+owner))})
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				seen = append(seen, string(m.Action)+" "+m.Actor.Attributes[labelRelease])
				mu.Unlock()
			case <-ectx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	n := startNode(t, cfg)
	waitCurrent(t, root, "web", releaseID(v1))
	cs := running()
	if len(cs) != 1 || get(cs[0]) != "v1" {
		t.Fatalf("after v1: %d containers running", len(cs))
	}
	first := cs[0].ID

	srv.publish("/web.tar.gz", v2)
	waitCurrent(t, root, "web", releaseID(v2))
	cs = running()
	if len(cs) != 1 || cs[0].ID == first || get(cs[0]) != "v2" {
		t.Fatalf("after v2: %d containers running", len(cs))
	}
	id1, id2 := releaseID(v1), releaseID(v2)
	waitFor(t, "the old container's destroy event", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, "destroy "+id1), fmt.Sprint(seen)
	})
	mu.Lock()
	startNew, stopOld := slices.Index(seen, "start "+id2), slices.Index(seen, "kill "+id1)
	if stopOld < 0 {
		stopOld = slices.Index(seen, "die "+id1)
	}
	order := fmt.Sprint(seen)
	mu.Unlock()
	if startNew < 0 || stopOld < 0 || startNew > stopOld {
		t.Fatalf("the old container was stopped before the new one started: %s", order)
	}

	// A restarted node adopts the running container.
	n.stop()
	startNode(t, cfg)
	srv.publish("/web.tar.gz", v2) // a checksum read, nothing new
	before := srv.gets("/web.tar.gz.sha256")
	waitFor(t, "two checksum reads", func() (bool, string) { return srv.gets("/web.tar.gz.sha256") >= before+2, "" })
	if cs2 := running(); len(cs2) != 1 || cs2[0].ID != cs[0].ID {
		t.Fatalf("after a restart: %d containers, want the same one", len(cs2))
	}
}

// An image release (connected mode) runs its image by digest in the docker
// mode; the release is kept like an artifact.
func TestDockerModeRunsAnImageRelease(t *testing.T) {
	if hookUser() == "" {
		t.Skip("the node's user must be nobody, which needs the test to run as root")
	}
	cli := testimage.Client(t)
	ctx := t.Context()
	_, file, _, _ := runtime.Caller(0)
	ref, err := testimage.GoBinary(ctx, cli, "ferry-test/webapp:latest", filepath.Join(filepath.Dir(file), "..", "testimage", "webapp"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	ps := newProtoServer(t, "tok")
	dir := sharedDir(t)
	root := filepath.Join(dir, "root")
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, "tok")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
user: nobody
server: {url: %q, token_file: %q, poll_wait: 2s}
services:
  web:
    run: {mode: docker}
    health: {type: http, url: "http://{container_ip}:8080/health", interval: 50ms}
`, root, ps.URL, tokenFile))
	owner := filepath.Join(root, "web")
	label := filters.NewArgs(filters.Arg("label", labelService+"="+owner))
	t.Cleanup(func() {
		cs, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: label})
		for _, c := range cs {
			_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	startNode(t, cfg)
	ps.setDesired("web", nodeproto.Release{ID: "i1", Image: &nodeproto.Image{Ref: "ferry-test/webapp", Digest: info.ID}})
	st := ps.waitRunning(t, "web", "i1")
	if !slices.Equal(st.Kept, []string{"i1"}) {
		t.Fatalf("reported %+v", st)
	}
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: label})
	if err != nil || len(cs) != 1 || cs[0].ImageID != info.ID || cs[0].Labels[labelRelease] != "i1" {
		t.Fatalf("containers: %+v, %v", cs, err)
	}
}
