package hostcmd

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRunHasACleanEnvironmentAndRunsAsTheUser(t *testing.T) {
	t.Setenv("FERRY_NODE_SECRET", "must-not-leak")
	name := ""
	if os.Geteuid() == 0 {
		name = "nobody"
	}
	as, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), Cmd{Script: "id -u; env | sort", Dir: "/", Env: map[string]string{"A": "1"}, As: as})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if name == "nobody" && lines[0] != "65534" {
		t.Fatalf("ran as uid %s, want nobody's 65534", lines[0])
	}
	env := strings.Join(lines[1:], " ")
	if strings.Contains(env, "must-not-leak") || !strings.Contains(env, "A=1") || !strings.Contains(env, "PATH="+DefaultPath) {
		t.Fatalf("environment: %s", env)
	}
}

func TestRunReportsTheExitAndTheOutputTail(t *testing.T) {
	_, err := Run(context.Background(), Cmd{Script: "echo first; echo oops >&2; exit 3", Dir: "/"})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), `"echo first; echo oops >&2; exit 3": exit status 3: first`) || !strings.Contains(e.Output, "oops") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunKillsTheWholeGroupWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The background sleep keeps the output pipe open: unless the whole
	// group is killed, Run waits for it (WaitDelay would then fail it).
	start := time.Now()
	_, err := Run(ctx, Cmd{Script: "sleep 60 & sleep 60", Dir: "/"})
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Run returned after %s", d)
	}
}

func TestLookupRefusesAnUnknownUser(t *testing.T) {
	if _, err := Lookup("no-such-user-ferry"); err == nil || !strings.Contains(err.Error(), `user "no-such-user-ferry"`) {
		t.Fatalf("err = %v", err)
	}
}
