package registry

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/backend"
)

// TestOpen opens every backend by name, the Docker one against the real
// Engine, and refuses an unknown name with the valid ones.
func TestOpen(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "docker,local" {
		t.Fatalf("Names() = %s, want docker,local", got)
	}
	if _, _, err := Open(context.Background(), "kubernetes", Options{}); err == nil ||
		!strings.Contains(err.Error(), `backend "kubernetes" is not one of docker, local`) {
		t.Errorf("Open(kubernetes) = %v, want an error naming docker and local", err)
	}
	for _, name := range Names() {
		be, closeBe, err := Open(context.Background(), name, Options{TempDir: t.TempDir(), StateDir: t.TempDir()})
		if err != nil && name == backend.Docker {
			if os.Getenv("CI") == "true" {
				t.Fatalf("Open(docker): %v", err)
			}
			t.Logf("skipping docker: %v (with CI=true this fails)", err)
			continue
		}
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		if be.Name() != name {
			t.Errorf("Open(%s) built the %s backend", name, be.Name())
		}
		closeBe()
	}
}

// TestForType checks the one table of which backend runs a pipeline type.
func TestForType(t *testing.T) {
	for typ, want := range map[string]string{"": "docker", "docker": "docker", "kubernetes": "docker", "exec": "local", "ssh": ""} {
		got, ok := backend.ForType(typ)
		if got != want || ok != (want != "") {
			t.Errorf("ForType(%q) = %q, %v; want %q", typ, got, ok, want)
		}
	}
}
