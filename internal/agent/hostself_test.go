package agent

import (
	"context"
	"strings"
	"testing"
)

// TestHostStepsAsSelfNeedConsent: an agent that is not root would run
// host steps as its own user, who can read its token and files, so the
// local backend opens only when the operator names that user with
// --exec-user (issue 7, "host execution that can't reach ferry's own
// secrets"). An agent running as root is unaffected: its steps run as
// nobody.
func TestHostStepsAsSelfNeedConsent(t *testing.T) {
	newAgent := func(execUser string) *Agent {
		a, err := New(Config{Server: "http://127.0.0.1:1", Token: "t", Backend: BackendLocal, WorkDir: t.TempDir(), ExecUser: execUser}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newAgent("")
	a.euid = 4242 // as if the agent ran as a user other than root
	a.execUser = nil
	if closeAll, err := a.openBackends(context.Background()); err == nil {
		closeAll()
		t.Fatal("a non-root agent opened the local backend without --exec-user")
	} else if !strings.Contains(err.Error(), "accept it with --exec-user") {
		t.Fatalf("the refusal does not say how to accept: %v", err)
	}

	// Naming a user is consent: an agent running as nobody with
	// --exec-user nobody (its own user resolves to nil).
	a = newAgent("nobody")
	a.euid = 65534
	a.execUser = nil
	closeAll, err := a.openBackends(context.Background())
	if err != nil {
		t.Fatalf("with --exec-user the local backend does not open: %v", err)
	}
	closeAll()
}
