package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The local-backend benchmarks of docs/benchmarks.md. Each measures ferry
// and its baseline in the same run and reports the difference and the
// ratio as custom metrics, so the numbers are comparable across machines.

func writePipeline(b *testing.B, steps int, command string) string {
	b.Helper()
	dir := b.TempDir()
	var y strings.Builder
	y.WriteString("kind: pipeline\ntype: exec\nname: bench\nsteps:\n")
	for i := range steps {
		fmt.Fprintf(&y, "- name: s%d\n  commands: [%q]\n", i, command)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ferry.yml"), []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func execOnce(b *testing.B, dir string, secrets []string) {
	b.Helper()
	code := Exec(context.Background(), ExecOptions{
		Dir: dir, Backend: "local", Commit: "0123456789abcdef0123456789abcdef01234567", Branch: "main",
		Secrets: secrets, Stdout: io.Discard, Stderr: io.Discard,
	})
	if code != 0 {
		b.Fatalf("exec exited %d", code)
	}
}

// timeRaw is the baseline: fork/exec of `sh -c command`, n times.
func timeRaw(b *testing.B, n int, command string) time.Duration {
	b.Helper()
	start := time.Now()
	for range n {
		cmd := exec.Command("sh", "-c", command)
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkLocalFixedCost is the cost of a whole one-step pipeline (parse,
// compile, run, report) beyond the fork/exec of its one command.
func BenchmarkLocalFixedCost(b *testing.B) {
	dir := writePipeline(b, 1, "true")
	execOnce(b, dir, nil) // warm up
	raw := timeRaw(b, b.N, "true")
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		execOnce(b, dir, nil)
	}
	total := time.Since(start)
	b.StopTimer()
	per, rawPer := total/time.Duration(b.N), raw/time.Duration(b.N)
	b.ReportMetric(float64(per-rawPer)/1e6, "fixed-ms")
	b.ReportMetric(float64(rawPer)/1e6, "raw-ms")
	b.ReportMetric(float64(per)/float64(rawPer), "x-raw")
}

// BenchmarkLocalExtraStep is the cost of each step beyond the first,
// against the fork/exec of `sh -c` with the same command. Each iteration
// runs the baseline and both pipelines back to back, so that a change in
// the machine's load affects all three alike.
func BenchmarkLocalExtraStep(b *testing.B) {
	const steps = 21
	one := writePipeline(b, 1, "true")
	many := writePipeline(b, steps, "true")
	execOnce(b, many, nil)
	b.ResetTimer()
	var tOne, tMany, raw time.Duration
	for range b.N {
		raw += timeRaw(b, steps-1, "true")
		s := time.Now()
		execOnce(b, one, nil)
		tOne += time.Since(s)
		s = time.Now()
		execOnce(b, many, nil)
		tMany += time.Since(s)
	}
	b.StopTimer()
	perStep := (tMany - tOne) / time.Duration(b.N*(steps-1))
	rawPer := raw / time.Duration(b.N*(steps-1))
	b.ReportMetric(float64(perStep)/1e6, "step-ms")
	b.ReportMetric(float64(rawPer)/1e6, "raw-ms")
	b.ReportMetric(float64(perStep)/float64(rawPer), "x-raw")
}

// BenchmarkLocalLogLines is ferry's cost per output line, with masking on,
// for a step printing 200,000 lines, beyond the command itself.
func BenchmarkLocalLogLines(b *testing.B) {
	const lines = 200000
	cmd := fmt.Sprintf("seq %d | sed 's/$/ some log text with a secret-value-1234 inside/'", lines)
	dir := writePipeline(b, 1, cmd)
	secrets := []string{"token=secret-value-1234", "other=another-secret-5678"}
	execOnce(b, dir, secrets)
	raw := timeRaw(b, b.N, cmd)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		execOnce(b, dir, secrets)
	}
	total := time.Since(start)
	b.StopTimer()
	extra := (total - raw) / time.Duration(b.N)
	b.ReportMetric(float64(extra)/float64(time.Microsecond)/lines, "µs/line")
	b.ReportMetric(float64(total)/float64(raw), "x-raw")
}

// BenchmarkProcessPeakRSS runs the ferry binary on the 200,000-line pipeline
// and reports its peak resident set size and its peak anonymous memory
// (see testdata/peakrss): the largest of the runs, and their median, since
// the machine's load moves single runs.
//
// The binary is built the way `make build` builds the one that ships:
// statically, without cgo. A cgo build (the go command's default when a C
// compiler is installed) also maps the dynamic loader and libc and starts
// its threads through them, which adds about 1.8 MiB.
//
// ferry runs under testdata/peakrss, a small program that reports its
// child's peak: a child of this test binary would report at least the test
// binary's own peak instead (see there why).
func BenchmarkProcessPeakRSS(b *testing.B) {
	tmp := b.TempDir()
	bin, peakrss := filepath.Join(tmp, "ferry"), filepath.Join(tmp, "peakrss")
	for pkg, out := range map[string]string{"github.com/ferryci/ferry/cmd/ferry": bin, "./testdata/peakrss": peakrss} {
		build := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	dir := writePipeline(b, 1, "seq 200000 | sed 's/$/ some log text with a secret-value-1234 inside/'")
	peaks := make([]int, 0, b.N)
	anons := make([]int, 0, b.N)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(peakrss, bin, "exec", "--backend", "local", "--commit", "0123456789abcdef", "--branch", "main", "--secret", "token=secret-value-1234")
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		var kib, anon int
		if _, err := fmt.Sscan(string(out), &kib, &anon); err != nil {
			b.Fatalf("peakrss printed %q: %v", out, err)
		}
		peaks = append(peaks, kib)
		anons = append(anons, anon)
	}
	b.StopTimer()
	slices.Sort(peaks)
	slices.Sort(anons)
	b.ReportMetric(float64(peaks[len(peaks)-1])/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(peaks[len(peaks)/2])/1024, "median-peak-RSS-MiB")
	b.ReportMetric(float64(anons[len(anons)-1])/1024, "peak-anon-MiB")
	b.ReportMetric(float64(anons[len(anons)/2])/1024, "median-peak-anon-MiB")
}

// buildStatic builds pkg into dir the way `make build` builds ferry:
// static, without cgo (see BenchmarkProcessPeakRSS).
func buildStatic(b *testing.B, dir, pkg string) string {
	b.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// oneStepCheckout is a git checkout, packed as a fresh clone is, holding
// a one-step local pipeline that runs `true`.
func oneStepCheckout(b *testing.B) string {
	b.Helper()
	dir := writePipeline(b, 1, "true")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"remote", "add", "origin", "https://git.example.com/acme/widgets.git"},
		{"add", "-A"},
		{"-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-q", "-m", "one step"},
		{"gc", "-q"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// BenchmarkProcessFixedCost runs the ferry binary, as a user does, on a
// one-step pipeline (`true`) in a git checkout, with nothing given on the
// command line that ferry could otherwise read from the checkout, and
// compares it with the fork/exec floor: testdata/floorrunner, a static Go
// program that only starts `sh -c true` and waits for it, the least a
// runner written in Go can do. Each iteration runs both back to back.
// x-floor is ferry's run against the floor's (target at most 2.5);
// fixed-ms is what ferry adds: a larger binary to start and initialise,
// reading the checkout and the config, compiling, reporting.
func BenchmarkProcessFixedCost(b *testing.B) {
	tmp := b.TempDir()
	bin := buildStatic(b, tmp, "github.com/ferryci/ferry/cmd/ferry")
	floorBin := buildStatic(b, tmp, "./testdata/floorrunner")
	dir := oneStepCheckout(b)
	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(start)
	}
	run(bin, "exec", "--backend", "local") // warm up the page cache
	run(floorBin, "true")
	b.ResetTimer()
	var ferry, floor time.Duration
	for range b.N {
		floor += run(floorBin, "true")
		ferry += run(bin, "exec", "--backend", "local")
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric(float64(ferry/n)/1e6, "run-ms")
	b.ReportMetric(float64(floor/n)/1e6, "floor-ms")
	b.ReportMetric(float64((ferry-floor)/n)/1e6, "fixed-ms")
	b.ReportMetric(float64(ferry)/float64(floor), "x-floor")
}

// BenchmarkProcessesBeforeFirstStep counts, with strace, the programs
// that a run of `ferry exec` on a one-step pipeline in a git checkout
// executes besides ferry itself and the step's shell. The target is zero:
// ferry reads the checkout's git files itself (TestExecStartsNoProcessBeforeTheStep
// checks the same for git without strace).
func BenchmarkProcessesBeforeFirstStep(b *testing.B) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		b.Skip("strace is not installed")
	}
	bin := buildStatic(b, b.TempDir(), "github.com/ferryci/ferry/cmd/ferry")
	dir := oneStepCheckout(b)
	trace := filepath.Join(b.TempDir(), "trace")
	var execs []string
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace, bin, "exec", "--backend", "local")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("strace ferry exec: %v\n%s", err, out)
		}
		data, err := os.ReadFile(trace)
		if err != nil {
			b.Fatal(err)
		}
		execs = execs[:0]
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, "execve(") && !strings.Contains(line, "= -1 ") {
				execs = append(execs, strings.TrimSpace(line))
			}
		}
	}
	b.StopTimer()
	// ferry itself and the step's `sh -c`.
	others := len(execs) - 2
	if others != 0 {
		b.Logf("programs executed:\n%s", strings.Join(execs, "\n"))
	}
	b.ReportMetric(float64(others), "other-execs")
}
