package pipeline

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of testdata/bad")

// parseFile parses a file of testdata under its base name.
func parseFile(t *testing.T, path string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(filepath.Base(path), data)
}

func mustParse(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := parseFile(t, path)
	if err != nil {
		t.Fatalf("Parse(%s) failed:\n%v", path, err)
	}
	return cfg
}

func TestGoodFilesParse(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := mustParse(t, f)
			if len(cfg.Pipelines) == 0 {
				t.Fatal("no pipelines parsed")
			}
			for _, p := range cfg.Pipelines {
				if p.Name == "" || p.Type == "" || p.Kind != "pipeline" {
					t.Errorf("pipeline at %v: name %q, type %q, kind %q; want all set", p.Pos, p.Name, p.Type, p.Kind)
				}
				if p.Pos.Line < 1 || p.Pos.Column < 1 {
					t.Errorf("pipeline %q has no position: %v", p.Name, p.Pos)
				}
			}
		})
	}
}

// TestBadFiles checks every testdata/bad file against its golden .err file:
// the exact "file:line:col: message" lines Parse must report.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("want at least 25 bad files, have %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := parseFile(t, f)
			if err == nil {
				t.Fatal("Parse accepted a bad file")
			}
			if cfg != nil {
				t.Error("Parse returned a config along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".yml")+".err", err.Error()+"\n")
			for _, e := range errs {
				if e.File != filepath.Base(f) || e.Line < 1 || e.Column < 1 || e.Msg == "" {
					t.Errorf("incomplete error %#v", e)
				}
			}
		})
	}
}

func TestGoServices(t *testing.T) {
	cfg := mustParse(t, "testdata/good/go-services.yml")
	if len(cfg.Pipelines) != 1 {
		t.Fatalf("got %d pipelines, want 1", len(cfg.Pipelines))
	}
	p := cfg.Pipelines[0]
	if p.Name != "default" || p.Type != "docker" || p.Pos != (Pos{2, 1}) {
		t.Errorf("pipeline: name %q type %q pos %v", p.Name, p.Type, p.Pos)
	}
	if p.Platform != (Platform{OS: "linux", Arch: "amd64"}) {
		t.Errorf("platform = %+v", p.Platform)
	}
	if p.Workspace.Path != "/go/src/github.com/example/app" || p.Clone.Depth != 50 {
		t.Errorf("workspace %+v clone %+v", p.Workspace, p.Clone)
	}
	if got := p.Environment["CGO_ENABLED"]; got != (Value{Raw: "0"}) {
		t.Errorf("CGO_ENABLED = %#v, want the string \"0\"", got)
	}
	if len(p.Services) != 2 || p.Services[0].Name != "database" || p.Services[1].Image != "redis:7" {
		t.Fatalf("services = %+v", p.Services)
	}
	if want := []string{"redis-server", "--appendonly", "no"}; !reflect.DeepEqual(p.Services[1].Command, want) {
		t.Errorf("cache command = %q, want %q", p.Services[1].Command, want)
	}
	names := []string{}
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	if want := []string{"deps", "vet", "test", "build"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("steps = %q, want %q", names, want)
	}
	test := p.Steps[2]
	wantEnv := map[string]Value{
		"DATABASE_URL":  {Raw: "postgres://test:test@database:5432/app_test?sslmode=disable"},
		"REDIS_ADDR":    {Raw: "cache:6379"},
		"GO_VERSION":    {Raw: "1.10"}, // as written, not the float 1.1
		"VERBOSE":       {Raw: "true"},
		"EMPTY":         {Raw: ""},
		"CODECOV_TOKEN": {Secret: "codecov_token"},
	}
	if !reflect.DeepEqual(test.Environment, wantEnv) {
		t.Errorf("test environment = %#v\nwant %#v", test.Environment, wantEnv)
	}
	if !reflect.DeepEqual(test.DependsOn, []string{"deps"}) || test.Pos != (Pos{49, 3}) {
		t.Errorf("test depends_on %q pos %v", test.DependsOn, test.Pos)
	}
	if want := []VolumeMount{{Name: "gopath", Path: "/go/pkg"}}; !reflect.DeepEqual(test.Volumes, want) {
		t.Errorf("test volumes = %+v", test.Volumes)
	}
	build := p.Steps[3]
	wantWhen := Conditions{
		Event:  Condition{Include: []string{"push", "tag"}},
		Branch: Condition{Include: []string{"main", "release/*"}, Exclude: []string{"release/old-*"}},
	}
	if !reflect.DeepEqual(build.When, wantWhen) {
		t.Errorf("build when = %+v\nwant %+v", build.When, wantWhen)
	}
	if len(p.Volumes) != 1 || p.Volumes[0].Name != "gopath" || p.Volumes[0].Temp == nil || p.Volumes[0].Host != nil {
		t.Errorf("volumes = %+v", p.Volumes)
	}
	if len(p.Trigger.Ref.Include) != 4 || p.Trigger.Ref.Include[1] != "refs/heads/release/**" {
		t.Errorf("trigger = %+v", p.Trigger)
	}
}

func TestPluginSettings(t *testing.T) {
	cfg := mustParse(t, "testdata/good/plugins.yml")
	p := cfg.Pipelines[0]
	publish := p.Steps[0]
	want := map[string]Value{
		"repo":       {Raw: "example/app"},
		"tags":       {Raw: []any{"latest", "1.2", "${DRONE_TAG##v}"}},
		"auto_tag":   {Raw: true},
		"build_args": {Raw: map[string]any{"GO_VERSION": 1.22}},
		"dockerfile": {Raw: "docker/Dockerfile"},
		"username":   {Secret: "docker_username"},
		"password":   {Secret: "docker_password"},
		"retries":    {Raw: 3},
		"purge":      {Raw: false}, // "no" is a boolean to Drone's YAML 1.1 reader
	}
	if !reflect.DeepEqual(publish.Settings, want) {
		t.Errorf("settings = %#v\nwant %#v", publish.Settings, want)
	}
	if !reflect.DeepEqual(publish.When.Event.Include, []string{"tag"}) {
		t.Errorf("publish when = %+v", publish.When)
	}
	notify := p.Steps[1]
	if tmpl, _ := notify.Settings["template"].Raw.(string); !strings.Contains(tmpl, "{{build.number}} failed") {
		t.Errorf("folded template = %q", tmpl)
	}
	if !notify.When.RunsOnFailure() || !notify.When.RunsOnSuccess() {
		t.Errorf("notify should run on success and failure: %+v", notify.When.Status)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	cfg := mustParse(t, "testdata/good/anchors.yml")
	steps := cfg.Pipelines[0].Steps
	if len(steps) != 3 {
		t.Fatalf("got %d steps", len(steps))
	}
	lint, test, build := steps[0], steps[1], steps[2]

	if lint.Image != "golang:1.22" || lint.Pull != "if-not-exists" {
		t.Errorf("lint did not get the merged defaults: image %q pull %q", lint.Image, lint.Pull)
	}
	if want := []string{"go version", "go env"}; !reflect.DeepEqual(lint.Commands, want) {
		t.Errorf("lint commands (an alias of a list) = %q", lint.Commands)
	}
	if want := (map[string]Value{"GOPROXY": {Raw: "https://proxy.golang.org"}, "CGO_ENABLED": {Raw: "0"}}); !reflect.DeepEqual(lint.Environment, want) {
		t.Errorf("lint environment = %#v", lint.Environment)
	}
	// A merge of two anchors, and a merge inside environment that the
	// step's own key overrides.
	if test.Image != "golang:1.22" || len(test.Volumes) != 1 || test.Volumes[0].Name != "cache" {
		t.Errorf("test: image %q volumes %+v", test.Image, test.Volumes)
	}
	if want := (map[string]Value{"GOPROXY": {Raw: "https://proxy.golang.org"}, "CGO_ENABLED": {Raw: "1"}}); !reflect.DeepEqual(test.Environment, want) {
		t.Errorf("test environment = %#v, want CGO_ENABLED overridden to 1", test.Environment)
	}
	// An explicit key wins over the merged one whatever the order.
	if build.Image != "golang:1.22-alpine" || build.Pull != "if-not-exists" {
		t.Errorf("build: image %q pull %q", build.Image, build.Pull)
	}
}

func TestMultiPipeline(t *testing.T) {
	cfg := mustParse(t, "testdata/good/multi-pipeline.yml")
	var names []string
	for _, p := range cfg.Pipelines {
		names = append(names, p.Name)
	}
	if want := []string{"linux-amd64", "linux-arm64", "release", "after"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("pipelines = %q, want %q", names, want)
	}
	arm, release, after := cfg.Pipelines[1], cfg.Pipelines[2], cfg.Pipelines[3]
	if arm.Platform.Arch != "arm64" || arm.Node["region"] != "eu-west" || arm.Pos.Line != 17 {
		t.Errorf("arm64 pipeline: platform %+v node %v pos %v", arm.Platform, arm.Node, arm.Pos)
	}
	if !reflect.DeepEqual(release.DependsOn, []string{"linux-amd64", "linux-arm64"}) ||
		release.Concurrency.Limit != 1 || !release.Clone.Disable ||
		!reflect.DeepEqual(release.PullSecrets, []string{"dockerconfig"}) {
		t.Errorf("release pipeline = %+v", release)
	}
	if !after.Trigger.RunsOnFailure() || after.Steps[0].When.RunsOnSuccess() {
		t.Errorf("after: trigger %+v step when %+v", after.Trigger, after.Steps[0].When)
	}
}

func TestExecPipeline(t *testing.T) {
	cfg := mustParse(t, "testdata/good/exec.yml")
	p := cfg.Pipelines[0]
	if p.Type != "exec" || p.Platform.OS != "darwin" {
		t.Fatalf("type %q platform %+v", p.Type, p.Platform)
	}
	build, test := p.Steps[0], p.Steps[1]
	if build.Shell != "/bin/zsh" || build.Image != "" {
		t.Errorf("build: shell %q image %q", build.Shell, build.Image)
	}
	if !reflect.DeepEqual(test.Commands, []string{"swift test"}) || !reflect.DeepEqual(test.DependsOn, []string{"build"}) {
		t.Errorf("single strings should become lists: commands %q depends_on %q", test.Commands, test.DependsOn)
	}
	if test.Failure != "ignore" || test.Environment["TOKEN"].Secret != "token" {
		t.Errorf("test: failure %q env %v", test.Failure, test.Environment)
	}
}

func TestSecretDocuments(t *testing.T) {
	cfg := mustParse(t, "testdata/good/secret-signature.yml")
	if len(cfg.Pipelines) != 1 || cfg.Pipelines[0].Name != "deploy" || cfg.Pipelines[0].Type != "docker" {
		t.Fatalf("pipelines = %+v", cfg.Pipelines)
	}
	want := []SecretDoc{
		{Pos: Pos{16, 1}, Name: "username", Path: "secret/data/docker", Key: "username"},
		{Pos: Pos{23, 1}, Name: "password", Path: "secret/data/docker", Key: "password"},
		{Pos: Pos{30, 1}, Name: "encrypted", Data: "EZ4rSERo8GSXqpfyZ3YtAUsTYxfHo1mN23WsRDsSWDQ="},
	}
	if len(cfg.Secrets) != len(want) {
		t.Fatalf("got %d secrets, want %d", len(cfg.Secrets), len(want))
	}
	for i := range want {
		if *cfg.Secrets[i] != want[i] {
			t.Errorf("secret %d = %+v, want %+v", i, *cfg.Secrets[i], want[i])
		}
	}
}

func TestResourceKeys(t *testing.T) {
	cfg := mustParse(t, "testdata/good/resources.yml")
	p := cfg.Pipelines[0]
	if p.Clone != (Clone{Depth: 1, Retries: 3, SkipVerify: true, Trace: true}) {
		t.Errorf("clone = %+v", p.Clone)
	}
	if p.Workspace != (Workspace{Base: "/drone", Path: "src/app"}) {
		t.Errorf("workspace = %+v", p.Workspace)
	}
	if v := p.Volumes[1]; v.Temp == nil || *v.Temp != (TempVolume{Medium: "memory", SizeLimit: 256 << 20}) {
		t.Errorf("scratch volume = %+v", v)
	}
	if v := p.Volumes[0]; v.Host == nil || v.Host.Path != "/var/run/docker.sock" {
		t.Errorf("docker volume = %+v", v)
	}
	dind, gpu := p.Steps[0], p.Steps[1]
	if !dind.Privileged || !dind.Detach {
		t.Errorf("dind: privileged %v detach %v", dind.Privileged, dind.Detach)
	}
	want := Step{
		Pos:          gpu.Pos,
		Name:         "gpu",
		Image:        "example/gpu-test",
		Pull:         "always",
		Entrypoint:   []string{"/bin/sh", "-c"},
		Command:      []string{"echo hello"},
		Failure:      "fail-fast",
		Volumes:      []VolumeMount{{Name: "scratch", Path: "/tmp/scratch"}},
		User:         "1000",
		WorkingDir:   "/drone/src/app/gpu",
		NetworkMode:  "host",
		ExtraHosts:   []string{"registry.local:10.0.0.5"},
		DNS:          []string{"1.1.1.1"},
		DNSSearch:    []string{"corp.example.com"},
		ShmSize:      1 << 30,
		MemLimit:     512 << 20,
		MemSwapLimit: -1,
		CPUPeriod:    100000,
		CPUQuota:     50000,
		CPUShares:    512,
		CPUSet:       "0-1",
		Devices:      []Device{{Name: "dri", Path: "/dev/dri"}},
		Timeout:      "1h30m",
	}
	if !reflect.DeepEqual(*gpu, want) {
		t.Errorf("gpu step =\n%+v\nwant\n%+v", *gpu, want)
	}
}

func TestOtherRunnerTypes(t *testing.T) {
	cfg := mustParse(t, "testdata/good/other-runners.yml")
	var types []string
	for _, p := range cfg.Pipelines {
		types = append(types, p.Type)
	}
	if want := []string{"kubernetes", "ssh", "digitalocean"}; !reflect.DeepEqual(types, want) {
		t.Errorf("types = %q, want %q", types, want)
	}
	// Their common keys are still decoded.
	if s := cfg.Pipelines[0].Steps[0]; s.Image != "golang:1.22" || len(s.Commands) != 1 {
		t.Errorf("kubernetes step = %+v", s)
	}
}

func TestMinimalFile(t *testing.T) {
	cfg := mustParse(t, "testdata/good/minimal.yml")
	p := cfg.Pipelines[0]
	if p.Kind != "pipeline" || p.Type != "docker" || p.Name != "default" {
		t.Errorf("defaults not applied: kind %q type %q name %q", p.Kind, p.Type, p.Name)
	}
	if !reflect.DeepEqual(p.Steps[0].DependsOn, []string{"clone"}) {
		t.Errorf("depends_on = %q; the implicit clone step is a valid dependency", p.Steps[0].DependsOn)
	}
}

func TestEmptyAndDocumentMarkers(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		pipelines int
	}{
		{"empty file", "", 0},
		{"only comments", "# nothing here\n\n# at all\n", 0},
		{"empty documents", "---\n---\n# comment\n---\n~\n", 0},
		{"leading marker", "---\nsteps: [{name: a, image: b}]\n", 1},
		{"marker with content", "--- {steps: [{name: a, image: b}]}\n--- {name: two, steps: [{name: a, image: b}]}\n", 2},
		{"document end", "steps: [{name: a, image: b}]\n...\n---\nname: two\nsteps: [{name: a, image: b}]\n...\n", 2},
		{"bare document after end", "steps: [{name: a, image: b}]\n...\nname: two\nsteps: [{name: a, image: b}]\n", 2},
		{"directive", "%YAML 1.1\n---\nsteps: [{name: a, image: b}]\n", 1},
		{"CRLF", "kind: pipeline\r\nsteps:\r\n- name: a\r\n  image: b\r\n---\r\nname: two\r\nsteps: [{name: a, image: b}]\r\n", 2},
		{"a marker-like line inside a block scalar is not a marker", "steps:\n- name: a\n  image: b\n  commands:\n  - |\n    echo ---\n    echo ...\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("f.yml", []byte(tc.src))
			if tc.pipelines == 0 {
				// ferry lint, ferry exec and the server agree: a file
				// without pipelines is an error.
				if err == nil || err.Error() != "f.yml:1:1: "+NoPipelines {
					t.Fatalf("Parse = %v, want the no-pipelines error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Pipelines) != tc.pipelines {
				t.Errorf("got %d pipelines, want %d", len(cfg.Pipelines), tc.pipelines)
			}
		})
	}
}

func TestLineNumbersAcrossDocuments(t *testing.T) {
	src := "# comment\n---\nkind: pipeline\nname: a\nsteps:\n- name: x\n  image: y\n---\nkind: pipeline\nname: b\nsteps:\n- name: x\n  image: y\n  depends_on: [nope]\n  pul: always\n"
	_, err := Parse("f.yml", []byte(src))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []struct {
		line, col int
		key       string
	}{{14, 16, "steps[0].depends_on[0]"}, {15, 3, "steps[0].pul"}}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if e := errs[i]; e.Line != w.line || e.Column != w.col || e.Key != w.key || e.File != "f.yml" {
			t.Errorf("error %d at %s:%d:%d key %q, want f.yml:%d:%d key %q (%s)", i, e.File, e.Line, e.Column, e.Key, w.line, w.col, w.key, e.Msg)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: ".drone.yml", Line: 3, Column: 7, Key: "steps[0].image", Msg: "bad"}
	if got := e.Error(); got != ".drone.yml:3:7: bad" {
		t.Errorf("Error() = %q", got)
	}
	e.File = ""
	if got := e.Error(); got != "3:7: bad" {
		t.Errorf("Error() without file = %q", got)
	}
	es := Errors{{File: "a", Line: 1, Column: 2, Msg: "x"}, {File: "a", Line: 3, Column: 4, Msg: "y"}}
	if got := es.Error(); got != "a:1:2: x\na:3:4: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

// TestAliasExpansionIsBounded feeds a "billion laughs" document: each level
// doubles the size through aliases. Parse must stop with an error instead
// of expanding it.
func TestAliasExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("kind: pipeline\nx0: &a0 [lol, lol]\n")
	for i := 1; i <= 40; i++ {
		b.WriteString("x")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(": &a")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(" [*a")
		b.WriteString(strconv.Itoa(i - 1))
		b.WriteString(", *a")
		b.WriteString(strconv.Itoa(i - 1))
		b.WriteString("]\n")
	}
	b.WriteString("steps:\n- name: a\n  image: b\n  settings:\n    boom: *a40\n")
	_, err := Parse("laughs.yml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "aliases") {
		t.Fatalf("want an error about aliases, got %v", err)
	}
}

// TestWarnFiles checks every testdata/warn file: Parse accepts it, as Drone
// does, and reports exactly the warnings of its golden .warn file.
func TestWarnFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/warn/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no warn files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := mustParse(t, f)
			if len(cfg.Warnings) == 0 {
				t.Fatal("Parse gave no warning")
			}
			checkGolden(t, strings.TrimSuffix(f, ".yml")+".warn", cfg.Warnings.Error()+"\n")
			for _, w := range cfg.Warnings {
				if !w.Warning || !strings.Contains(w.Error(), ": warning: ") {
					t.Errorf("not marked as a warning: %v", w)
				}
			}
		})
	}
}

// TestTolerantFormsRunAsDrone checks what Parse makes of the forms it only
// warns about: what Drone does with them.
func TestTolerantFormsRunAsDrone(t *testing.T) {
	cfg := mustParse(t, "testdata/warn/legacy-forms.yml")
	p := cfg.Pipelines[0]
	if len(p.Volumes) != 1 || p.Volumes[0].Name != "scratch" {
		t.Errorf("volumes = %+v; the volume with only a path is not created, as in Drone", p.Volumes)
	}
	build := p.Steps[0]
	if build.Pull != "" {
		t.Errorf("pull = %q; pull: default is the default policy", build.Pull)
	}
	if len(build.Volumes) != 1 || build.Volumes[0].Name != "scratch" {
		t.Errorf("mounts = %+v; the mount of a volume that is not created is skipped", build.Volumes)
	}
	if publish := p.Steps[1]; !publish.When.Event.IsEmpty() || !publish.When.Ref.IsEmpty() {
		t.Errorf("event/ref written under the step became conditions: %+v; Drone ignores them", publish.When)
	}
	if !p.Trigger.Branch.IsEmpty() {
		t.Errorf("trigger = %+v; when inside trigger is ignored", p.Trigger)
	}
	if len(p.Services) != 1 || p.Services[0].Name != "database" {
		t.Errorf("services = %+v", p.Services)
	}

	cfg = mustParse(t, "testdata/warn/missing-pipeline-dependency.yml")
	for _, p := range cfg.Pipelines {
		if len(p.DependsOn) != 0 {
			t.Errorf("pipeline %q depends on %q; dependencies on missing pipelines are dropped", p.Name, p.DependsOn)
		}
	}
}

// checkGolden compares got with the golden file, or rewrites the file with
// -update.
func checkGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("missing golden file (run with -update and review it): %v", err)
	}
	if got != string(want) {
		t.Errorf("problems differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// TestDuplicateKeysLastWins checks that a key written twice in one mapping
// is read as Drone's YAML decoder reads it: the later value replaces the
// earlier one (two pipelines written without "---" between them are one
// pipeline, the second), two maps are combined, and a key reused only to
// hold anchors is not reported.
func TestDuplicateKeysLastWins(t *testing.T) {
	cfg := mustParse(t, "testdata/compat/duplicate-keys.yml")
	if len(cfg.Pipelines) != 1 {
		t.Fatalf("want 1 pipeline, got %d", len(cfg.Pipelines))
	}
	p := cfg.Pipelines[0]
	if p.Name != "second" || len(p.Steps) != 1 || p.Steps[0].Name != "build" {
		t.Fatalf("want pipeline second with step build, got %q with %d steps", p.Name, len(p.Steps))
	}
	env := p.Steps[0].Environment
	if env["A"].Raw != "1" || env["B"].Raw != "2" {
		t.Errorf("the two environment maps are not combined: %+v", env)
	}
	if p.Node["type"] != "common" {
		t.Errorf("node = %v", p.Node)
	}
	var keys []string
	for _, w := range cfg.Warnings {
		keys = append(keys, w.Key)
	}
	if want := []string{"kind", "name", "node", "steps", "steps[0].environment"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("warnings on %q, want %q:\n%v", keys, want, cfg.Warnings)
	}
}
