package pipeline

import (
	"fmt"
	"slices"
)

// knownTypes are the pipeline types of Drone's runners. ferry runs docker
// and exec pipelines; the others are parsed (their runner-specific keys
// unchecked) so that a file holding them is not refused, and reported as
// unsupported by the commands that run pipelines.
var knownTypes = []string{TypeDocker, TypeExec, "kubernetes", "ssh", "digitalocean", "macstadium", "vm", "nomad"}

// conditionNames are the keys of a "when" or "trigger" block, which real
// files sometimes write one level too high, directly under a step.
var conditionNames = conditionKeys

// drone05Keys are top-level keys of Drone's formats before 0.8.
var drone05Keys = []string{"build", "compose", "script", "notify", "publish", "deploy", "cache", "env", "git", "plugin"}

// legacyHint words the warning for a key that is not valid where it is
// written but has a known meaning elsewhere or in an older Drone format.
// what is the checkKeys context ("pipeline", "step", "trigger", ...). It
// returns "" for keys it knows nothing about.
func legacyHint(what, key string) string {
	switch what {
	case "step", "service":
		switch {
		case key == "secrets":
			return `"secrets" on a step is Drone 0.8's form and Drone 1.x ignores it; write environment: {NAME: {from_secret: name}} instead`
		case slices.Contains(conditionNames, key):
			return fmt.Sprintf("%q directly under a %s is ignored by Drone, so the %s always runs; write it under when: {%s: ...}", key, what, what, key)
		case key == "group":
			return `"group" is Drone 0.8's way to run steps in parallel and Drone 1.x ignores it; use depends_on instead`
		case key == "matrix":
			return `"matrix" is Drone 0.8's form and Drone 1.x ignores it; write one pipeline per combination (or generate them with .drone.jsonnet or .drone.star)`
		case key == "steps" || key == "trigger" || key == "services" || key == "platform" || key == "kind" || key == "type":
			return fmt.Sprintf("%q belongs to the pipeline, not to a %s, and is ignored here; indent it as a key of the pipeline", key, what)
		}
	case "pipeline":
		switch {
		case key == "pipeline":
			return `"pipeline" is Drone 0.8's format, which Drone 1.x does not read; write "kind: pipeline" documents with a list of steps`
		case key == "when":
			return `"when" on a pipeline is ignored by Drone; a pipeline's conditions go under trigger: {...}`
		case slices.Contains(conditionNames, key):
			return fmt.Sprintf("%q directly under a pipeline is ignored by Drone; write it under trigger: {%s: ...}", key, key)
		case key == "image" || key == "commands" || key == "settings":
			return fmt.Sprintf("%q belongs to a step, not to the pipeline, and is ignored here; put it in one of the steps", key)
		case key == "matrix":
			return `"matrix" is Drone 0.8's form and Drone 1.x ignores it; write one pipeline per combination (or generate them with .drone.jsonnet or .drone.star)`
		case key == "branches":
			return `"branches" is Drone 0.8's form and Drone 1.x ignores it; write trigger: {branch: [...]}`
		case slices.Contains(drone05Keys, key):
			return fmt.Sprintf("%q is a key of Drone's 0.x format, which Drone 1.x does not read; write \"kind: pipeline\" documents with a list of steps", key)
		}
	case "clone":
		if key == "git" {
			return `"git" under clone is Drone 0.8's custom clone step and Drone 1.x ignores it, so the default clone runs; to clone differently write clone: {disable: true} and a step of your own`
		}
	case "trigger":
		if key == "when" {
			return `"when" inside trigger is ignored by Drone, so the pipeline runs for every build; write the conditions directly under trigger`
		}
	case "step.when", "service.when":
		if key == "when" {
			return `"when" inside when is ignored by Drone; write the conditions directly under when`
		}
	case "volume":
		if key == "path" {
			return `"path" directly on a volume is Drone 0.8's form and Drone 1.x ignores it, so the volume is not mounted; write host: {path: ...}`
		}
	}
	return ""
}
