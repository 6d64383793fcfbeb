package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/pipeline/program"
)

// Lint runs `ferry lint`: it validates the config in dir (file, or the
// first config file pipeline.Load finds), prints every problem as
// FILE:LINE:COL: message on stdout, and returns the exit code. Warnings
// (what Drone tolerates: unknown keys, legacy forms) print as
// FILE:LINE:COL: warning: message and leave the exit code 0; errors give 2.
// With strict, warnings count as errors: they print without the "warning:"
// and the exit code is 2.
func Lint(dir, file string, strict bool, stdout, stderr io.Writer) int {
	return LintMax(dir, file, strict, pipeline.DefaultMaxConfigSize, stdout, stderr)
}

// LintMax is Lint refusing a file larger than maxSize bytes before parsing
// it (pipeline.DefaultMaxConfigSize when maxSize is 0 or less).
func LintMax(dir, file string, strict bool, maxSize int64, stdout, stderr io.Writer) int {
	if dir == "" {
		dir, _ = os.Getwd()
	}
	// Lint is short-lived and parsing a large file allocates a lot in
	// small pieces: collecting garbage less often saves a third of its
	// time on a 1 MB file (docs/benchmarks.md) for a few MB of memory.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	name, data, err := pipeline.LoadMax(dir, file, maxSize)
	if err != nil {
		fmt.Fprintf(stderr, "ferry lint: %v\n", err)
		return ExitInvalid
	}
	// convWarnings are a Woodpecker conversion's: what it leaves out.
	var convWarnings []string
	file = name
	if program.Kind(name) != "" {
		// A program is linted by running it for a push of the checkout's
		// branch, the most common build.
		ctx := context.Background()
		if name, data, convWarnings, err = runProgram(ctx, dir, name, data, metadata(ctx, dir, ExecOptions{}), false); err != nil {
			fmt.Fprintln(stdout, err.Error())
			return ExitInvalid
		}
	}
	// Parsed as ferry exec and the server parse it: after ${VARIABLE}
	// substitution, which also resolves escapes.
	expanded, err := pipeline.ExpandForLint(data)
	if err != nil {
		fmt.Fprintf(stdout, "%s: %v\n", name, err)
		return ExitInvalid
	}
	cfg, err := pipeline.Parse(name, expanded)
	var list pipeline.Errors
	switch {
	case err == nil:
		list = cfg.Warnings
	case errors.As(err, &list):
	default:
		fmt.Fprintf(stdout, "%s: %v\n", name, err)
		return ExitInvalid
	}
	failed := err != nil
	for _, w := range convWarnings {
		if strict {
			w = strings.Replace(w, ": warning: ", ": ", 1)
			failed = true
		}
		fmt.Fprintln(stdout, w)
	}
	for _, e := range list {
		if strict && e.Warning {
			strictErr := *e
			strictErr.Warning = false
			e = &strictErr
			failed = true
		}
		fmt.Fprintln(stdout, e.Error())
	}
	if len(list) > 0 && name != file {
		fmt.Fprintf(stderr, "ferry lint: the line numbers of %s are those of the generated YAML; ferry lint --print shows it\n", name)
	}
	if failed {
		return ExitInvalid
	}
	if n := len(list) + len(convWarnings); n > 0 {
		fmt.Fprintf(stderr, "%s: valid, with %d warning(s) (--strict makes warnings errors)\n", file, n)
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: ok\n", file)
	return ExitOK
}

// PrintGenerated runs `ferry lint --print`: it writes the YAML a
// .drone.star, .drone.jsonnet or Woodpecker config generates (for a push
// of the checkout's branch), the YAML that the "(generated YAML)" line
// numbers of lint's messages refer to; a YAML file is written as it is.
// It returns 0, or 2 when the config cannot be read or run.
func PrintGenerated(dir, file string, stdout, stderr io.Writer) int {
	if dir == "" {
		dir, _ = os.Getwd()
	}
	name, data, err := pipeline.Load(dir, file)
	if err != nil {
		fmt.Fprintf(stderr, "ferry lint: %v\n", err)
		return ExitInvalid
	}
	ctx := context.Background()
	if program.Kind(name) != "" {
		if _, data, _, err = runProgram(ctx, dir, name, data, metadata(ctx, dir, ExecOptions{}), false); err != nil {
			fmt.Fprintln(stderr, err.Error())
			return ExitInvalid
		}
	}
	_, _ = stdout.Write(data)
	return ExitOK
}
