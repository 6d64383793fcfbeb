package pipeline_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/pipeline"
)

var updateCompat = flag.Bool("update-compat", false, "rewrite the .golden files of testdata/compat")

// pushToMain is a push to the default branch, the build every compat file
// must compile for.
func pushToMain() *compiler.Metadata {
	return &compiler.Metadata{
		Repo:   compiler.Repo{Slug: "example/app", Namespace: "example", Name: "app", Branch: "main", HTTPURL: "https://git.example.com/example/app.git"},
		Build:  compiler.Build{Number: 7, Event: "push"},
		Commit: compiler.Commit{SHA: "0123456789abcdef0123456789abcdef01234567", Ref: "refs/heads/main", Branch: "main", SourceBranch: "main", Author: "ada"},
		System: compiler.System{Proto: "https", Host: "ci.example.com"},
	}
}

// verdict reads the "# verdict: ok|error" line that starts every compat
// file: what Drone does with the file.
func verdict(t *testing.T, data []byte) string {
	t.Helper()
	line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
	v, ok := strings.CutPrefix(string(line), "# verdict: ")
	if !ok || (v != "ok" && v != "error") {
		t.Fatalf("the file must start with \"# verdict: ok\" or \"# verdict: error\", got %q", line)
	}
	return v
}

// TestCompatFiles judges each construct found in real .drone.yml files
// (docs/compatibility.md) as Drone judges it: the files Drone runs parse,
// with the warnings of their golden file, and every pipeline in them
// compiles for a push to the default branch; the files Drone refuses fail
// with the errors of their golden file.
func TestCompatFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/compat/*.yml")
	if err != nil || len(files) < 10 {
		t.Fatalf("want at least 10 compat files, have %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := verdict(t, data)
			meta := pushToMain()
			expanded, err := pipeline.Expand(data, compiler.Environ(meta))
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			name := filepath.Base(f)
			cfg, err := pipeline.Parse(name, expanded)
			var got string
			switch {
			case want == "ok" && err != nil:
				t.Fatalf("Drone runs this file; Parse refused it:\n%v", err)
			case want == "error" && err == nil:
				t.Fatalf("Drone refuses this file; Parse accepted it")
			case err != nil:
				var list pipeline.Errors
				if !errors.As(err, &list) {
					t.Fatalf("error is %T, want pipeline.Errors", err)
				}
				got = err.Error() + "\n"
			default:
				if len(cfg.Warnings) > 0 {
					got = cfg.Warnings.Error() + "\n"
				}
				compileAll(t, cfg, meta)
			}
			golden := strings.TrimSuffix(f, ".yml") + ".golden"
			if *updateCompat {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantOut, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden file (run with -update-compat and review it): %v", err)
			}
			if got != string(wantOut) {
				t.Errorf("problems differ from %s\ngot:\n%s\nwant:\n%s", golden, got, wantOut)
			}
		})
	}
}

// compileAll compiles every pipeline of cfg that ferry runs, on the backend
// ferry would pick for it.
func compileAll(t *testing.T, cfg *pipeline.Config, meta *compiler.Metadata) {
	t.Helper()
	for i, p := range cfg.Pipelines {
		var kind string
		switch p.Type {
		case pipeline.TypeDocker, "kubernetes":
			kind = "docker"
		case pipeline.TypeExec:
			kind = "local"
		default:
			continue // not run by ferry: reported as unsupported when selected
		}
		_, err := compiler.Compile(p, compiler.Options{
			Metadata: meta, Backend: kind, RunID: "compat", Number: i + 1, HostDir: t.TempDir(),
			Secrets: map[string]string{"token": "t", "docker_username": "u", "docker_password": "p"},
			Trusted: true,
		})
		if err != nil {
			t.Errorf("pipeline %q does not compile: %v", p.Name, err)
		}
	}
}
