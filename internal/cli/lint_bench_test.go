package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// largeConfig writes a .drone.yml of about size bytes: many pipelines of
// the shape real generated files have (services, steps with settings,
// secrets, conditions, dependencies), as the largest real files (about
// 940 KB) are.
func largeConfig(tb testing.TB, size int) string {
	tb.Helper()
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `---
kind: pipeline
type: docker
name: pipeline-%[1]d
platform: {os: linux, arch: amd64}
trigger:
  branch: [main, "release/*"]
  event: [push, pull_request, tag]
depends_on: [%[2]s]
services:
- name: database
  image: postgres:16
  environment: {POSTGRES_PASSWORD: secret}
steps:
`, i, prevPipeline(i))
		for j := range 8 {
			fmt.Fprintf(&b, `- name: step-%[1]d
  image: golang:1.22
  pull: if-not-exists
  environment:
    GOFLAGS: -mod=vendor
    TOKEN: {from_secret: token}
  commands:
  - go build ./...
  - go test -run 'Test%[1]d' ./...
  depends_on: [%[2]s]
  when:
    event: {exclude: [pull_request]}
    branch: [main]
- name: publish-%[1]d
  image: plugins/docker
  settings:
    repo: example/app
    tags: [latest, "${DRONE_COMMIT_SHA:0:8}"]
    password: {from_secret: docker_password}
  depends_on: [step-%[1]d]
`, j, prevStep(j))
		}
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".drone.yml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func prevPipeline(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("pipeline-%d", i-1)
}

func prevStep(j int) string {
	if j == 0 {
		return "clone"
	}
	return fmt.Sprintf("step-%d", j-1)
}

// BenchmarkLint1MB is `ferry lint` on a 1 MB file of many pipelines, in
// process (the binary adds its start-up, see docs/benchmarks.md).
func BenchmarkLint1MB(b *testing.B) {
	dir := largeConfig(b, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if code := Lint(dir, "", false, io.Discard, io.Discard); code != ExitOK {
			b.Fatalf("lint exited %d", code)
		}
	}
	// CPU time, all threads: on a busy machine it varies less than the
	// wall time, which waits for a core.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
