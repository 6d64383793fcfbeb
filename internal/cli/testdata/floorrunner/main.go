// Command floorrunner is the fork/exec floor of BenchmarkProcessFixedCost:
// the least a pipeline runner can be, a static Go program that starts one
// step, `sh -c COMMAND`, waits for it and exits with its status. It reads
// no config and no checkout.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floorrunner COMMAND")
		os.Exit(2)
	}
	cmd := exec.Command("sh", "-c", os.Args[1])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
