package program

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/compiler"
	"github.com/ferryci/ferry/internal/pipeline"
)

var updateWoodpecker = flag.Bool("update-woodpecker", false, "rewrite testdata/woodpecker/*/warnings.golden")

// TestWoodpeckerCompatFiles converts the Woodpecker testdata (our own
// files reproducing the constructs of real ones, docs/compatibility.md):
// each is valid for Woodpecker, so each converts, with the warnings of its
// golden file, into YAML that parses without errors, and every pipeline
// compiles for a push to the default branch.
func TestWoodpeckerCompatFiles(t *testing.T) {
	dirs, err := filepath.Glob("testdata/woodpecker/*")
	if err != nil || len(dirs) < 3 {
		t.Fatalf("no Woodpecker testdata: %v", err)
	}
	pipelines := map[string]int{"legacy": 1, "matrix": 6, "modern": 3}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			name, src := ".woodpecker", []byte(nil)
			if data, err := os.ReadFile(filepath.Join(dir, ".woodpecker.yml")); err == nil {
				name, src = ".woodpecker.yml", data
			}
			opts := Options{
				Input: pushMain,
				Read: func(p string) ([]byte, error) {
					return os.ReadFile(filepath.Join(dir, strings.TrimPrefix(p, ".woodpecker/")))
				},
				List: func(string) ([]string, error) {
					entries, err := os.ReadDir(dir)
					var names []string
					for _, e := range entries {
						names = append(names, e.Name())
					}
					return names, err
				},
			}
			out, warnings, err := Convert(context.Background(), name, src, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(warnings, "\n") + "\n"
			golden := filepath.Join(dir, "warnings.golden")
			if *updateWoodpecker {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if want, err := os.ReadFile(golden); err != nil || string(want) != got {
				t.Errorf("warnings differ from %s (%v)\ngot:\n%s\nwant:\n%s", golden, err, got, want)
			}
			meta := &compiler.Metadata{
				Repo:   compiler.Repo{Slug: "example/app", Namespace: "example", Name: "app", Branch: "main"},
				Build:  compiler.Build{Number: 1, Event: "push"},
				Commit: compiler.Commit{SHA: "0123456789abcdef0123456789abcdef01234567", Ref: "refs/heads/main", Branch: "main"},
			}
			expanded, err := pipeline.Expand(out, compiler.Environ(meta))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := pipeline.Parse(GeneratedName(name), expanded)
			if err != nil {
				t.Fatalf("the generated YAML does not parse:\n%v\n%s", err, expanded)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("the generated YAML has warnings:\n%v\n%s", cfg.Warnings, expanded)
			}
			if n := len(cfg.Pipelines); n != pipelines[filepath.Base(dir)] {
				t.Errorf("%d pipelines, want %d", n, pipelines[filepath.Base(dir)])
			}
			for i, p := range cfg.Pipelines {
				kind := "docker"
				if p.Type == pipeline.TypeExec {
					kind = "local"
				}
				if _, err := compiler.Compile(p, compiler.Options{Metadata: meta, Backend: kind, RunID: "w", Number: i + 1,
					HostDir: t.TempDir(), Trusted: true, Secrets: map[string]string{"token": "t"}}); err != nil {
					t.Errorf("pipeline %q does not compile: %v", p.Name, err)
				}
			}
		})
	}
}
