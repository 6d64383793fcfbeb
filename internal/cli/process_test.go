package cli

import (
	"runtime/debug"
	"testing"
)

func TestLimitExecMemoryIsRelative(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	t.Setenv("GOMEMLIMIT", "")

	limit := LimitExecMemory()
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Fatalf("limit in effect %d, LimitExecMemory returned %d", got, limit)
	}
	used, ok := runtimeMemory()
	if !ok {
		t.Fatal("the runtime reports no memory classes")
	}
	// The runtime's memory moves a little between the two readings.
	if limit < used+ExecMemoryHeadroom-(1<<20) || limit > used+ExecMemoryHeadroom+(1<<20) {
		t.Errorf("limit %d MiB, want the runtime's %d MiB plus %d MiB", limit>>20, used>>20, ExecMemoryHeadroom>>20)
	}
}

func TestLimitExecMemoryKeepsGOMEMLIMIT(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	t.Setenv("GOMEMLIMIT", "123MiB")
	debug.SetMemoryLimit(123 << 20) // what the runtime read from GOMEMLIMIT at start

	if got := LimitExecMemory(); got != 123<<20 {
		t.Errorf("LimitExecMemory() = %d, want the limit from GOMEMLIMIT, %d", got, 123<<20)
	}
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("limit changed to %d with GOMEMLIMIT set", got)
	}
}
