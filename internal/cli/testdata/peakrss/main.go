// Command peakrss runs a command, with its output discarded, and prints the
// command's peak resident set size and its largest anonymous resident
// memory, both in KiB, on one line. BenchmarkProcessPeakRSS runs ferry
// through it.
//
// The peak resident set is the kernel's high-water mark (ru_maxrss): exact.
// It counts every page the process had mapped at its peak, including the
// pages of the executable file that the kernel maps from the page cache,
// which are shared with every other process running the same binary. The
// anonymous memory (RssAnon: heap, stacks, the runtime's own structures,
// the binary's written data) is what the process really takes from the
// machine; Linux keeps no high-water mark of it, so it is sampled from
// /proc/PID/status every half millisecond while the command runs and the
// largest sample is reported: a lower bound of its peak, close to it for a
// run as long as this benchmark's.
//
// A Go program cannot measure the peak of a child it starts itself: os/exec
// starts the child in the parent's address space (clone with CLONE_VM and
// CLONE_VFORK) until it execs, and Linux then keeps that address space's
// high-water mark as the child's, so ru_maxrss is at least the parent's
// own peak. For a test binary that links ferry's server, that is more than
// ferry exec's. This program is small, so its own peak stays below the
// command's.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peakrss COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "peakrss: %v\n", err)
		os.Exit(1)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	anon := 0
	tick := time.NewTicker(500 * time.Microsecond)
	var err error
loop:
	for {
		if kib := rssAnon(status); kib > anon {
			anon = kib
		}
		select {
		case err = <-done:
			break loop
		case <-tick.C:
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "peakrss: %v\n", err)
		os.Exit(1)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "peakrss: no resource usage")
		os.Exit(1)
	}
	fmt.Println(ru.Maxrss, anon) // KiB on Linux
}

// rssAnon reads the RssAnon line of a /proc/PID/status file, in KiB; 0
// when the process is gone or has not exec'd yet.
func rssAnon(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(data, []byte("RssAnon:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, _ := strconv.Atoi(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))))
	return n
}
