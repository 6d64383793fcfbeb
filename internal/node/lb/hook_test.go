package lb_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/node/lb"
)

func TestHookDriverRunsItsCommands(t *testing.T) {
	var ran []string
	run := func(ctx context.Context, script string) error {
		ran = append(ran, script)
		return exec.CommandContext(ctx, "/bin/sh", "-c", script).Run()
	}
	d, err := lb.New(lb.Config{Driver: "hook", Drain: "true", Ready: "exit 4"}, run)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "lb ready hook: exit status 4") {
		t.Fatalf("ready: %v", err)
	}
	if strings.Join(ran, ",") != "true,exit 4" {
		t.Fatalf("ran %q", ran)
	}
	if _, err := lb.New(lb.Config{Driver: "hook", Drain: "x"}, run); err == nil || !strings.Contains(err.Error(), "needs both drain and ready") {
		t.Fatalf("a hook driver without ready: %v", err)
	}
}
