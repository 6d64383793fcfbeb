package pipeline

import (
	"strings"
	"testing"
)

// TestValidateBuiltConfig validates a Config made in code: there are no
// recorded positions, so errors point at the Pos of the enclosing values.
func TestValidateBuiltConfig(t *testing.T) {
	cfg := &Config{
		File: "built",
		Pipelines: []*Pipeline{{
			Pos:  Pos{1, 1},
			Name: "p",
			Type: "docker",
			Volumes: []*Volume{
				{Pos: Pos{2, 3}, Name: "cache", Temp: &TempVolume{}},
			},
			Steps: []*Step{
				{Pos: Pos{5, 3}, Name: "a", Image: "alpine", DependsOn: []string{"b"}, Failure: "fast"},
				{Pos: Pos{9, 3}, Name: "b", Image: "alpine", DependsOn: []string{"a"}, Pull: "Always"},
				{Pos: Pos{12, 3}, Name: "c", Commands: []string{"make"},
					Volumes: []VolumeMount{{Name: "cache", Path: "/cache"}},
					When:    Conditions{Event: Condition{Include: []string{"push"}}}},
			},
		}},
	}
	errs := Validate(cfg)
	want := []string{
		`built:9:3: warning: unknown pull policy "Always", so the default applies (pull when the image is missing); did you mean "always"? valid values are: always, if-not-exists, never`,
		`built:9:3: dependency cycle between steps: a -> b -> a`,
		`built:12:3: step "c" has commands but no image; docker pipelines need an image for every step`,
	}
	if got := errs.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Validate =\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

func TestValidateAcceptsParsedGoodFiles(t *testing.T) {
	cfg := mustParse(t, "testdata/good/go-services.yml")
	if errs := Validate(cfg); errs != nil {
		t.Errorf("Validate of a parsed good file: %v", errs)
	}
	// Breaking it afterwards is caught, at the recorded position.
	test := cfg.Pipelines[0].Steps[2]
	test.DependsOn = append(test.DependsOn, "nope")
	errs := Validate(cfg)
	if len(errs) != 1 || errs[0].Line != test.Pos.Line || !strings.Contains(errs[0].Msg, `depends on "nope"`) {
		t.Errorf("Validate after change = %v", errs)
	}
}

func TestClosest(t *testing.T) {
	valid := []string{"image", "commands", "command", "depends_on", "environment", "pull"}
	for _, tc := range []struct{ in, want string }{
		{"imagee", "image"},
		{"Image", "image"},
		{"comands", "commands"},
		{"depends-on", "depends_on"},
		{"depends", "depends_on"},
		{"enviroment", "environment"}, //nolint:misspell // the typo is the input under test
		{"pul", "pull"},
		{"xyz", ""},
		{"settings", ""},
	} {
		if got := closest(tc.in, valid); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
