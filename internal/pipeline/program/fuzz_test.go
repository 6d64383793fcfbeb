package program

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/pipeline"
)

// FuzzStarlark checks that running any Starlark program never panics and
// ends, within its bounds, in YAML that pipeline.Parse reads (with or
// without problems) or in an *Error with a position.
func FuzzStarlark(f *testing.F) {
	for _, s := range []string{
		starProgram, starLib, "def main(ctx):\n    return {}\n", "def main(ctx):\n    return [1, None, 2.5]\n",
		"def main(ctx):\n    return {'kind': 'pipeline', 'steps': [{'name': 'a', 'image': 'b'}], 'x': (1, 2)}\n",
		"main = 1\n", "def main(ctx):\n    return {1: 2}\n", "load('x', 'y')\n", "def main(ctx):\n    return 'a\\nb'\n",
		"def main(ctx):\n    return [{'k': 'line1\\nline2', 'n': -1, 'b': True}]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, _, err := Convert(context.Background(), ".drone.star", []byte(src), Options{MaxSteps: 100_000, Timeout: 5 * time.Second, MaxOutput: 1 << 20})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("error without a position: %T %v", err, err)
			}
			return
		}
		_, _ = pipeline.Parse(".drone.star (generated YAML)", out)
	})
}

// FuzzJsonnetOutput checks the parent's side of a Jsonnet run on any text
// the child could send: the JSON result is turned into YAML or refused
// with a positioned error, and an interpreter's message is located.
func FuzzJsonnetOutput(f *testing.F) {
	for _, s := range []string{
		`{"kind":"pipeline","steps":[{"name":"a","image":"b"}]}`, `[{"kind":"pipeline"},{"kind":"secret"}]`, `"x"`, `null`, `3`, `[1,2]`,
		`{"a":"line1\nline2"}`, `RUNTIME ERROR: max stack frames exceeded.` + "\n\t.drone.jsonnet:1:14-20\tfunction <f>",
		".drone.jsonnet:4:1-2 Unexpected: end of file", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		o := &Options{}
		o.defaults()
		if out, err := jsonnetOutput(".drone.jsonnet", text, o); err == nil {
			_, _ = pipeline.Parse(".drone.jsonnet (generated YAML)", out)
		} else if pe := (*Error)(nil); !errors.As(err, &pe) {
			t.Fatalf("error is %T, want *Error", err)
		}
		e := locate(".drone.jsonnet", text)
		if e.Line < 1 || e.Column < 1 || e.File == "" {
			t.Fatalf("locate(%q) = %#v", text, e)
		}
	})
}

// FuzzWoodpecker checks that converting any Woodpecker file never panics
// and ends in YAML that pipeline.Parse reads, or in an *Error with a
// position.
func FuzzWoodpecker(f *testing.F) {
	for _, s := range []string{
		"steps:\n  - name: a\n    image: b\n    commands: [c]\n", "steps:\n  a:\n    image: b\n    when:\n      - event: push\n      - event: manual\n",
		"matrix:\n  GO: [1, 2]\nsteps: [{name: a, image: 'golang:${GO}'}]\n", "matrix:\n  include:\n    - {GO: 1}\nsteps: [{name: a, image: b}]\n",
		"pipeline:\n  a:\n    image: b\n    secrets: [x, {source: y, target: z}]\n    volumes: ['/a:/b', 'c:/d', bad]\n",
		"when: {event: push}\ndepends_on: [x]\nruns_on: [success, failure]\nlabels: {platform: linux/arm64, backend: local}\nsteps: [{name: a, commands: b}]\n",
		"steps: 3\n", "- a\n", "steps:\n  - *x\n", "x: &x {a: *x}\nsteps: [{name: a}]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, _, err := Convert(context.Background(), ".woodpecker.yml", []byte(src), Options{})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("error without a position: %T %v", err, err)
			}
			return
		}
		_, _ = pipeline.Parse(".woodpecker.yml (generated YAML)", out)
	})
}
