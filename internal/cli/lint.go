package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferryci/ferry/internal/pipeline"
)

// Lint runs `ferry lint`: it validates the config in dir (file, or
// .ferry.yml then .drone.yml), prints every problem as FILE:LINE:COL:
// message on stdout, and returns the exit code: 0 when the file is valid,
// 2 when it has errors.
func Lint(dir, file string, stdout, stderr io.Writer) int {
	return LintMax(dir, file, pipeline.DefaultMaxConfigSize, stdout, stderr)
}

// LintMax is Lint refusing a file larger than maxSize bytes before parsing
// it (pipeline.DefaultMaxConfigSize when maxSize is 0 or less).
func LintMax(dir, file string, maxSize int64, stdout, stderr io.Writer) int {
	if dir == "" {
		dir, _ = os.Getwd()
	}
	name, data, err := pipeline.LoadMax(dir, file, maxSize)
	if err != nil {
		fmt.Fprintf(stderr, "ferry lint: %v\n", err)
		return ExitInvalid
	}
	// Parsed as ferry exec and the server parse it: after ${VARIABLE}
	// substitution, which also resolves escapes.
	expanded, err := pipeline.ExpandForLint(data)
	if err != nil {
		fmt.Fprintf(stdout, "%s: %v\n", name, err)
		return ExitInvalid
	}
	_, err = pipeline.Parse(name, expanded)
	if err == nil {
		fmt.Fprintf(stderr, "%s: ok\n", name)
		return ExitOK
	}
	var list pipeline.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(stdout, e.Error())
		}
		return ExitInvalid
	}
	fmt.Fprintf(stdout, "%s: %v\n", name, err)
	return ExitInvalid
}
