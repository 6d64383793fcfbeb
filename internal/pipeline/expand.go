package pipeline

import (
	"fmt"
	"strings"

	"github.com/drone/envsubst"
)

// Expand substitutes ${VARIABLES} in a raw pipeline file before it is
// parsed, as Drone does, with Drone's own library. Only the braced form is
// substituted; a bare $VAR is left for the shell. The bash-like operators
// work: ${VAR=default}, ${VAR:-default}, ${VAR##prefix}, ${VAR%suffix},
// ${VAR/from/to}, ${VAR:0:8}, ${VAR^^}, ${VAR,,}, ${#VAR} and so on. "$$"
// escapes a dollar sign: "$${HOME}" becomes "${HOME}" and "$$" becomes
// "$", so write "$$$$" for the shell's "$$".
//
// Variables missing from env expand to "". A value that contains a
// newline is substituted as a double-quoted YAML string (Go's %q form),
// as Drone does, so that it stays one scalar instead of breaking the
// document apart. Other values are inserted as they are: as in Drone, a
// value with YAML syntax in it (": ", "#", a leading "[") can change the
// document's structure, and Parse then reports the result.
//
// Also as in Drone, the substitution reads a backslash before a backslash
// or a slash as an escape: "\\" becomes "\" and "\/" becomes "/", in the
// whole file. A double-quoted YAML string "\\d" therefore reaches the
// parser as "\d", an invalid escape; ferry lint expands the file the same
// way (see ExpandForLint), so it reports that error too.
func Expand(data []byte, env map[string]string) ([]byte, error) {
	return expand(data, func(name string) string { return env[name] })
}

// ExpandForLint expands data as Expand does, with every variable standing
// for itself ("${NAME}"), so that a linter sees the file as the parser
// will after any substitution: escapes resolved, "$$" turned into "$".
func ExpandForLint(data []byte) ([]byte, error) {
	return expand(data, func(name string) string { return "${" + name + "}" })
}

// expand substitutes with the values lookup returns.
func expand(data []byte, lookup func(name string) string) ([]byte, error) {
	out, err := envsubst.Eval(string(data), func(name string) string {
		v := lookup(name)
		if strings.Contains(v, "\n") {
			v = fmt.Sprintf("%q", v)
		}
		return v
	})
	if err != nil {
		return nil, fmt.Errorf("substituting variables: %w", err)
	}
	return []byte(out), nil
}
