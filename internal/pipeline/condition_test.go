package pipeline

import "testing"

func TestConditionMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Condition
		v    string
		want bool
	}{
		{"empty matches everything", Condition{}, "anything", true},
		{"empty matches empty", Condition{}, "", true},
		{"include exact", Condition{Include: []string{"main"}}, "main", true},
		{"include miss", Condition{Include: []string{"main"}}, "dev", false},
		{"include glob", Condition{Include: []string{"feature/*"}}, "feature/x", true},
		{"star stops at slash", Condition{Include: []string{"feature/*"}}, "feature/x/y", false},
		{"double star crosses slashes", Condition{Include: []string{"refs/heads/**"}}, "refs/heads/a/b/c", true},
		{"double star in the middle", Condition{Include: []string{"src/**/*.go"}}, "src/a/b/main.go", true},
		{"question mark", Condition{Include: []string{"v?"}}, "v1", true},
		{"class", Condition{Include: []string{"release-[0-9]*"}}, "release-2024", true},
		{"alternatives", Condition{Include: []string{"{main,master}"}}, "master", true},
		{"exclude only", Condition{Exclude: []string{"main"}}, "dev", true},
		{"exclude only, excluded", Condition{Exclude: []string{"main"}}, "main", false},
		{"exclude wins over include", Condition{Include: []string{"*"}, Exclude: []string{"wip-*"}}, "wip-1", false},
		{"include with exclude", Condition{Include: []string{"*"}, Exclude: []string{"wip-*"}}, "ready", true},
		{"invalid pattern matches nothing", Condition{Include: []string{"[abc"}}, "[abc", false},
		{"empty value against include", Condition{Include: []string{"nightly"}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Match(tc.v); got != tc.want {
				t.Errorf("%+v.Match(%q) = %v, want %v", tc.c, tc.v, got, tc.want)
			}
		})
	}
}

func TestConditionsMatch(t *testing.T) {
	push := MatchContext{Branch: "main", Event: "push", Ref: "refs/heads/main", Repo: "octo/app", Instance: "ci.example.com"}
	pr := MatchContext{Branch: "main", Event: "pull_request", Ref: "refs/pull/7/head", Repo: "octo/app", Action: "opened"}
	// Drone sets the branch of a tag build to the tag name.
	tag := MatchContext{Branch: "v1.2.0", Event: "tag", Ref: "refs/tags/v1.2.0", Repo: "octo/app"}
	cron := MatchContext{Branch: "main", Event: "cron", Cron: "nightly", Ref: "refs/heads/main"}
	promote := MatchContext{Branch: "main", Event: "promote", Target: "production"}
	withPaths := func(m MatchContext, paths ...string) MatchContext { m.Paths = paths; return m }

	for _, tc := range []struct {
		name string
		c    Conditions
		m    MatchContext
		want bool
	}{
		{"no conditions", Conditions{}, push, true},
		{"branch", Conditions{Branch: Condition{Include: []string{"main"}}}, push, true},
		{"pull request matches its target branch", Conditions{Branch: Condition{Include: []string{"main"}}}, pr, true},
		{"branch condition skips tags", Conditions{Branch: Condition{Include: []string{"main"}}}, tag, false},
		{"tag pattern through branch", Conditions{Branch: Condition{Include: []string{"v*"}}}, tag, true},
		{"event list", Conditions{Event: Condition{Include: []string{"push", "tag"}}}, tag, true},
		{"event excluded", Conditions{Event: Condition{Exclude: []string{"pull_request"}}}, pr, false},
		{"all must hold", Conditions{Branch: Condition{Include: []string{"main"}}, Event: Condition{Include: []string{"push"}}}, pr, false},
		{"ref glob", Conditions{Ref: Condition{Include: []string{"refs/tags/**"}}}, tag, true},
		{"ref glob miss", Conditions{Ref: Condition{Include: []string{"refs/tags/**"}}}, push, false},
		{"repo", Conditions{Repo: Condition{Include: []string{"octo/*"}}}, push, true},
		{"repo miss", Conditions{Repo: Condition{Include: []string{"other/*"}}}, push, false},
		{"instance", Conditions{Instance: Condition{Include: []string{"ci.example.com"}}}, push, true},
		{"action", Conditions{Action: Condition{Include: []string{"opened", "synchronized"}}}, pr, true},
		{"action miss on push", Conditions{Action: Condition{Include: []string{"opened"}}}, push, false},
		{"cron", Conditions{Cron: Condition{Include: []string{"nightly"}}}, cron, true},
		{"cron condition skips other events", Conditions{Cron: Condition{Include: []string{"nightly"}}}, push, false},
		{"target", Conditions{Target: Condition{Include: []string{"production"}}}, promote, true},
		{"target miss", Conditions{Target: Condition{Include: []string{"staging"}}}, promote, false},
		{"status is left to the runtime", Conditions{Status: Condition{Include: []string{"failure"}}}, push, true},
		{"paths ignored without a change set", Conditions{Paths: Condition{Include: []string{"docs/**"}}}, push, true},
		{"paths: one changed file matches", Conditions{Paths: Condition{Include: []string{"docs/**"}}}, withPaths(push, "main.go", "docs/a/b.md"), true},
		{"paths: none matches", Conditions{Paths: Condition{Include: []string{"docs/**"}}}, withPaths(push, "main.go", "go.mod"), false},
		{"paths: all excluded", Conditions{Paths: Condition{Exclude: []string{"**/*.md"}}}, withPaths(push, "README.md", "docs/x.md"), false},
		{"paths: one not excluded", Conditions{Paths: Condition{Exclude: []string{"**/*.md"}}}, withPaths(push, "README.md", "main.go"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Match(tc.m); got != tc.want {
				t.Errorf("Match(%+v) = %v, want %v", tc.m, got, tc.want)
			}
		})
	}
}

func TestRunsOnStatus(t *testing.T) {
	for _, tc := range []struct {
		name               string
		status             Condition
		onSuccess, onFails bool
	}{
		{"no status: success only", Condition{}, true, false},
		{"failure only", Condition{Include: []string{"failure"}}, false, true},
		{"both", Condition{Include: []string{"success", "failure"}}, true, true},
		{"glob", Condition{Include: []string{"*"}}, true, true},
		{"exclude failure", Condition{Exclude: []string{"failure"}}, true, false},
		{"exclude success", Condition{Exclude: []string{"success"}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Conditions{Status: tc.status}
			if got := c.RunsOnSuccess(); got != tc.onSuccess {
				t.Errorf("RunsOnSuccess = %v, want %v", got, tc.onSuccess)
			}
			if got := c.RunsOnFailure(); got != tc.onFails {
				t.Errorf("RunsOnFailure = %v, want %v", got, tc.onFails)
			}
		})
	}
}

func TestAnyAlternatives(t *testing.T) {
	c := Conditions{
		Branch: Condition{Include: []string{"main", "renovate/*"}},
		Any: []Conditions{
			{Event: Condition{Include: []string{"pull_request"}}},
			{Event: Condition{Include: []string{"push"}}, Paths: Condition{Include: []string{"**/*.go"}}},
		},
	}
	for _, tc := range []struct {
		m    MatchContext
		want bool
	}{
		{MatchContext{Branch: "main", Event: "pull_request"}, true},
		{MatchContext{Branch: "main", Event: "push", Paths: []string{"a/b.go"}}, true},
		{MatchContext{Branch: "main", Event: "push", Paths: []string{"README.md"}}, false},
		{MatchContext{Branch: "main", Event: "tag"}, false},
		{MatchContext{Branch: "dev", Event: "pull_request"}, false},
	} {
		if got := c.Match(tc.m); got != tc.want {
			t.Errorf("Match(%+v) = %v, want %v", tc.m, got, tc.want)
		}
	}
	if !c.UsesPaths() {
		t.Error("UsesPaths = false; an alternative has a paths condition")
	}
	failure := Conditions{Any: []Conditions{{Status: Condition{Include: []string{"failure"}}}, {Event: Condition{Include: []string{"push"}}}}}
	if !failure.RunsOnFailure() || !failure.RunsOnSuccess() {
		t.Errorf("RunsOnFailure %v RunsOnSuccess %v; want both (one alternative each)", failure.RunsOnFailure(), failure.RunsOnSuccess())
	}
	onlyFailure := Conditions{Any: []Conditions{{Status: Condition{Include: []string{"failure"}}}}}
	if !onlyFailure.RunsOnFailure() || onlyFailure.RunsOnSuccess() {
		t.Errorf("RunsOnFailure %v RunsOnSuccess %v; want only on failure", onlyFailure.RunsOnFailure(), onlyFailure.RunsOnSuccess())
	}
}
