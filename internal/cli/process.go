package cli

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// ExecMemoryHeadroom is how much the Go runtime's memory may grow during a
// run of ferry exec beyond what it holds when the run starts, before the
// garbage collector works to keep it there. See LimitExecMemory.
const ExecMemoryHeadroom = 4 << 20

// LimitExecMemory sets the Go runtime's soft memory limit to the memory the
// runtime holds now plus ExecMemoryHeadroom, and returns the limit in
// effect. It changes nothing when GOMEMLIMIT is set, or when the runtime
// does not report its memory.
//
// The limit is relative because most of what the runtime holds at start-up
// belongs to the binary, not to the run: the heap the package initialisers
// of every linked library leave behind, the memory profiler's bucket table,
// the collector's metadata. That grows with every library linked into the
// one ferry binary, while a run of exec itself allocates little (text log
// lines are copied, not allocated). A fixed limit set close to that
// baseline makes the collector run over and over for nothing, and each
// cycle maps more pages (stack maps, mark bits) than it frees.
func LimitExecMemory() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	used, ok := runtimeMemory()
	if !ok {
		return debug.SetMemoryLimit(-1)
	}
	limit := used + ExecMemoryHeadroom
	debug.SetMemoryLimit(limit)
	return limit
}

// runtimeMemory returns the memory that the Go runtime counts against its
// memory limit: all it has mapped, less the heap it has given back.
func runtimeMemory() (int64, bool) {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64()), true
}
