package program

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/yamlutil"
)

// Woodpecker's files: a directory of workflows, or one file. Woodpecker
// looks for the directory first, then .woodpecker.yaml, then
// .woodpecker.yml.
const WoodpeckerDir = ".woodpecker"

// isWoodpecker reports whether name is a Woodpecker config: the
// directory, a file in it, or .woodpecker.yml/.yaml.
func isWoodpecker(name string) bool {
	base := path.Base(name)
	dir := path.Base(path.Dir(name))
	return base == WoodpeckerDir || base == ".woodpecker.yml" || base == ".woodpecker.yaml" ||
		(dir == WoodpeckerDir && (path.Ext(name) == ".yml" || path.Ext(name) == ".yaml"))
}

// wpFile is one Woodpecker workflow file.
type wpFile struct {
	name string // workflow name: the file name without extension
	path string
	data []byte
}

// woodpeckerFiles lists the workflows of a Woodpecker config: the files of
// the directory (name is the directory) in name order, or the one file.
func woodpeckerFiles(name string, src []byte, o *Options) ([]wpFile, error) {
	if path.Base(name) != WoodpeckerDir {
		wf := strings.TrimSuffix(strings.TrimSuffix(path.Base(name), ".yml"), ".yaml")
		if wf == ".woodpecker" {
			wf = "woodpecker"
		}
		return []wpFile{{name: wf, path: name, data: src}}, nil
	}
	if o.List == nil || o.Read == nil {
		return nil, errorAt(name, 1, 1, "cannot read the workflows of the %s directory here", name)
	}
	names, err := o.List(name)
	if err != nil {
		return nil, errorAt(name, 1, 1, "listing the workflows: %v", err)
	}
	sort.Strings(names)
	var out []wpFile
	for _, n := range names {
		ext := path.Ext(n)
		if ext != ".yml" && ext != ".yaml" {
			continue
		}
		p := path.Join(name, n)
		data, err := o.Read(p)
		if err != nil {
			return nil, errorAt(p, 1, 1, "reading the workflow: %v", err)
		}
		out = append(out, wpFile{name: strings.TrimSuffix(n, ext), path: p, data: data})
	}
	if len(out) == 0 {
		return nil, errorAt(name, 1, 1, "the %s directory holds no .yml or .yaml workflow", name)
	}
	return out, nil
}

// wp converts Woodpecker workflows into Drone pipelines.
type wp struct {
	file     string
	warnings []string
	err      *Error
}

func (c *wp) warn(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	c.warnings = append(c.warnings, fmt.Sprintf("%s:%d:%d: warning: %s", c.file, line, col, fmt.Sprintf(format, args...)))
}

func (c *wp) fail(n *yaml.Node, format string, args ...any) {
	if c.err != nil {
		return
	}
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	c.err = errorAt(c.file, line, col, format, args...)
}

// runWoodpecker converts a Woodpecker config (one file, or the .woodpecker
// directory) into Drone YAML: one pipeline per workflow and matrix
// combination. Woodpecker's forms with no Drone equivalent become ferry's
// (a list of alternative conditions is `any`), and the few it cannot run
// are warnings.
func runWoodpecker(name string, src []byte, o *Options) ([]byte, []string, error) {
	files, err := woodpeckerFiles(name, src, o)
	if err != nil {
		return nil, nil, err
	}
	out := &output{max: o.MaxOutput}
	var warnings []string
	variants := map[string][]string{} // workflow → its pipeline names
	type pending struct {
		doc  *yaml.Node
		deps []string
	}
	var docs []pending
	for _, f := range files {
		c := &wp{file: f.path}
		combos, err := c.matrix(f.data)
		if err != nil {
			return nil, nil, err
		}
		for _, combo := range combos {
			data := f.data
			label := ""
			if len(combo) > 0 {
				data = substituteMatrix(data, combo)
				label = matrixLabel(combo)
			}
			var root yaml.Node
			if err := yaml.Unmarshal(data, &root); err != nil {
				return nil, nil, locateYAML(f.path, err)
			}
			if len(root.Content) == 0 {
				continue
			}
			spliceSequenceMerges(root.Content[0], 0)
			pname := f.name
			if label != "" {
				pname += " (" + label + ")"
			}
			doc, deps := c.workflow(root.Content[0], pname, combo)
			if c.err != nil {
				return nil, nil, c.err
			}
			// The anchors live in keys the pipeline does not keep
			// (variables): write every value out in full.
			doc = expandAliases(doc, 0)
			variants[f.name] = append(variants[f.name], pname)
			docs = append(docs, pending{doc, deps})
		}
		warnings = append(warnings, c.warnings...)
	}
	// Woodpecker names two events differently: its steps read "manual" and
	// "deployment" in CI_PIPELINE_EVENT where ferry says custom and
	// promote.
	wpEvent := map[string]string{"custom": "manual", "promote": "deployment"}[o.Input.Build.Event]
	for _, d := range docs {
		if wpEvent != "" {
			env := lookup(d.doc, "environment")
			if env == nil {
				env = mapping()
			}
			setKey(env, "CI_PIPELINE_EVENT", str(wpEvent))
			setKey(d.doc, "environment", env)
		}
		var deps []string
		for _, dep := range d.deps {
			if v, ok := variants[dep]; ok {
				deps = append(deps, v...)
			} else {
				deps = append(deps, dep) // Parse warns about it
			}
		}
		if len(deps) > 0 {
			setKey(d.doc, "depends_on", strList(deps))
		}
		if err := out.charge(1024); err != nil {
			return nil, nil, errorAt(name, 1, 1, "%v", err)
		}
		out.docs = append(out.docs, d.doc)
	}
	data, err := out.bytes()
	return data, warnings, err
}

// locateYAML words a YAML syntax error of a workflow file.
func locateYAML(file string, err error) error {
	var le *yaml.LoadError
	msg := err.Error()
	line, col := 1, 1
	if errors.As(err, &le) {
		msg, line, col = le.Message, le.Mark.Line, le.Mark.Column
	}
	return errorAt(file, line, col, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// matrix reads a workflow's matrix: the combinations of its axes (in
// axis order), or the listed include combinations. No matrix is one
// empty combination.
func (c *wp) matrix(data []byte) ([][][2]string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, locateYAML(c.file, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return [][][2]string{nil}, nil
	}
	if c.checkExpansion(root.Content[0], maxNodes); c.err != nil {
		return nil, c.err
	}
	if c.checkDuplicateKeys(root.Content[0]); c.err != nil {
		return nil, c.err
	}
	m := lookup(root.Content[0], "matrix")
	if m == nil || m.Kind != yaml.MappingNode {
		return [][][2]string{nil}, nil
	}
	if inc := lookup(m, "include"); inc != nil && inc.Kind == yaml.SequenceNode {
		if len(inc.Content) > maxCombinations {
			c.fail(inc, "the matrix has more than %d combinations", maxCombinations)
			return nil, c.err
		}
		var out [][][2]string
		for _, item := range inc.Content {
			item = resolve(item)
			var combo [][2]string
			for i := 0; i+1 < len(item.Content); i += 2 {
				combo = append(combo, [2]string{item.Content[i].Value, item.Content[i+1].Value})
			}
			out = append(out, combo)
		}
		return out, nil
	}
	out := [][][2]string{nil}
	for i := 0; i+1 < len(m.Content); i += 2 {
		axis, vals := m.Content[i].Value, m.Content[i+1]
		if vals.Kind != yaml.SequenceNode {
			c.fail(vals, "matrix axis %q must be a list of values", axis)
			return nil, c.err
		}
		if len(out)*len(vals.Content) > maxCombinations {
			c.fail(m, "the matrix has more than %d combinations", maxCombinations)
			return nil, c.err
		}
		var next [][][2]string
		for _, combo := range out {
			for _, v := range vals.Content {
				next = append(next, append(slices.Clone(combo), [2]string{axis, resolve(v).Value}))
			}
		}
		out = next
	}
	// Each combination is a copy of the workflow: bound them together.
	if c.checkExpansion(root.Content[0], maxNodes/max(len(out), 1)); c.err != nil {
		return nil, c.err
	}
	return out, nil
}

// checkDuplicateKeys fails on the first key written twice in one mapping.
// Woodpecker decodes its files with yaml.v3, which refuses them ("mapping
// key already defined"), unlike Drone's yaml.v2, which keeps the later
// value. Merge keys are left to the merge.
func (c *wp) checkDuplicateKeys(n *yaml.Node) {
	if n == nil || c.err != nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			if first, dup := seen[k.Value]; dup {
				c.fail(k, "key %q is defined twice (first at line %d); Woodpecker refuses a file with a repeated key: remove one of them", k.Value, first.Line)
				return
			}
			seen[k.Value] = k
		}
	}
	for _, child := range n.Content {
		c.checkDuplicateKeys(child)
	}
}

// maxCombinations bounds a workflow's matrix.
const maxCombinations = 256

// substituteMatrix replaces ${AXIS} with the combination's values, as
// Woodpecker does before it parses a matrix workflow.
func substituteMatrix(data []byte, combo [][2]string) []byte {
	s := string(data)
	for _, kv := range combo {
		s = strings.ReplaceAll(s, "${"+kv[0]+"}", kv[1])
	}
	return []byte(s)
}

func matrixLabel(combo [][2]string) string {
	parts := make([]string, len(combo))
	for i, kv := range combo {
		parts[i] = kv[0] + "=" + kv[1]
	}
	return strings.Join(parts, ", ")
}

// workflow converts one workflow into a pipeline document and returns the
// workflows it depends on.
func (c *wp) workflow(n *yaml.Node, name string, combo [][2]string) (*yaml.Node, []string) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, "a workflow must be a map with keys such as steps and when, got %s", kindOf(n))
		return nil, nil
	}
	doc := mapping()
	setKey(doc, "kind", str("pipeline"))
	setKey(doc, "type", str("docker"))
	setKey(doc, "name", str(name))
	var deps []string
	var steps, services, branches *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		switch k.Value {
		case "steps", "pipeline":
			if k.Value == "pipeline" {
				c.warn(k, `"pipeline" is Woodpecker's name for the steps before 1.0, refused since Woodpecker 2.0; ferry runs them as Woodpecker 1.x did: rename it to steps`)
			}
			steps = c.steps(v, k.Value)
		case "services":
			services = c.steps(v, "services")
		case "when":
			setKey(doc, "trigger", c.when(v))
		case "depends_on":
			deps = scalars(v)
		case "runs_on":
			setKey(doc, "trigger", mergeStatus(lookup(doc, "trigger"), scalars(v)))
		case "skip_clone":
			if v.Value == "true" {
				setKey(doc, "clone", mapOf("disable", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}))
			}
		case "clone":
			c.warn(k, "a custom clone step is not supported; ferry clones the repository itself (use skip_clone and a step to clone differently)")
		case "workspace":
			setKey(doc, "workspace", v)
		case "labels":
			node := mapping()
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk, lv := v.Content[j].Value, v.Content[j+1].Value
				if lk == "platform" {
					setKey(doc, "platform", platform(lv))
					continue
				}
				if lk == "backend" && lv == "local" {
					// Woodpecker's local backend: steps run on the host.
					setKey(doc, "type", str("exec"))
					continue
				}
				setKey(node, lk, str(lv))
			}
			if len(node.Content) > 0 {
				setKey(doc, "node", node)
			}
		case "platform":
			c.warn(k, `"platform" is Woodpecker's form before 1.0; write labels: {platform: %s}`, v.Value)
			setKey(doc, "platform", platform(v.Value))
		case "branches":
			c.warn(k, `"branches" is Woodpecker's form before 1.0, refused since Woodpecker 2.0; ferry reads it as Woodpecker 1.x did: write when: {branch: ...}`)
			// Woodpecker before 1.0: the branches a workflow runs for,
			// added to its when (wherever that is written) below.
			branches = v
		case "matrix", "variables", "version", "skip_ci", "$schema":
			// $schema names the JSON schema editors validate the file with.
		default:
			if v.Anchor == "" && !strings.HasPrefix(k.Value, "x-") {
				c.warn(k, "unknown key %q in a Woodpecker workflow is ignored", k.Value)
			}
		}
	}
	if branches != nil {
		trigger := lookup(doc, "trigger")
		if trigger == nil {
			trigger = mapping()
			setKey(doc, "trigger", trigger)
		}
		if lookup(trigger, "branch") == nil {
			setKey(trigger, "branch", branches)
		}
	}
	if steps == nil {
		c.fail(n, "the workflow has no steps")
		return nil, nil
	}
	if len(combo) > 0 {
		env := mapping()
		for _, kv := range combo {
			setKey(env, kv[0], str(kv[1]))
		}
		setKey(doc, "environment", env)
	}
	if services != nil {
		setKey(doc, "services", services)
	}
	setKey(doc, "steps", steps)
	c.groups(steps, lookup(doc, "clone") == nil)
	c.volumes(doc)
	// "depends_on: []" starts a step at once in Woodpecker. In ferry (as
	// in Drone) a step without dependencies starts at once only when
	// another step has some; depending on the clone step says so.
	if lookup(doc, "clone") == nil {
		for _, st := range steps.Content {
			if d := lookup(st, "depends_on"); d != nil && d.Kind == yaml.SequenceNode && len(d.Content) == 0 {
				setKey(st, "depends_on", strList([]string{"clone"}))
			}
		}
	}
	return doc, deps
}

// groupKey carries a step's group from step to groups.
const groupKey = "x-woodpecker-group"

// groups turns the step groups of Woodpecker before 2.0 into dependencies,
// as Woodpecker 1.x ran them: consecutive steps of one group run in
// parallel, and each group (or step without a group) starts when the steps
// before it are done. The first starts after the clone. A workflow whose
// steps also use depends_on keeps its dependencies and ignores the groups.
func (c *wp) groups(steps *yaml.Node, cloned bool) {
	var grouped *yaml.Node
	dag := false
	for _, st := range steps.Content {
		if g := lookup(st, groupKey); g != nil && grouped == nil {
			grouped = g
		}
		dag = dag || lookup(st, "depends_on") != nil
	}
	defer func() {
		for _, st := range steps.Content {
			deleteKey(st, groupKey)
		}
	}()
	if grouped == nil {
		return
	}
	if dag {
		c.warn(grouped, "group is ignored because steps of this workflow use depends_on; the dependencies decide what runs in parallel")
		return
	}
	var prev, cur []string
	group := ""
	for i, st := range steps.Content {
		g := lookupValue(st, groupKey)
		if i == 0 || g == "" || g != group {
			prev, cur, group = cur, nil, g
		}
		deps := prev
		if len(deps) == 0 && cloned {
			deps = []string{"clone"}
		}
		if len(deps) > 0 {
			setKey(st, "depends_on", strList(deps))
		}
		cur = append(cur, lookupValue(st, "name"))
	}
}

// steps converts steps or services, written as a list or as a map by name.
func (c *wp) steps(n *yaml.Node, what string) *yaml.Node {
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			item = resolve(item)
			out.Content = append(out.Content, c.step(item, ""))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out.Content = append(out.Content, c.step(resolve(n.Content[i+1]), n.Content[i].Value))
		}
	default:
		c.fail(n, "%s must be a list or a map of steps, got %s", what, kindOf(n))
	}
	return out
}

// step converts one step.
func (c *wp) step(n *yaml.Node, name string) *yaml.Node {
	s := mapping()
	if n.Kind != yaml.MappingNode {
		c.fail(n, "a step must be a map with keys such as image and commands, got %s", kindOf(n))
		return s
	}
	if name != "" {
		setKey(s, "name", str(name))
	}
	env := mapping()
	for _, p := range pairs(n) {
		k, v := p[0], resolve(p[1])
		switch k.Value {
		case "name", "image", "entrypoint", "settings", "depends_on", "detach", "privileged",
			"network_mode", "extra_hosts", "dns", "dns_search", "ports", "shm_size", "user":
			setKey(s, k.Value, v)
		case "commands":
			if v.Kind == yaml.ScalarNode {
				// One string: a script run as one command.
				v = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{v}}
			}
			setKey(s, "commands", v)
		case "command":
			setKey(s, "command", v)
		case "environment":
			for _, e := range envPairs(v) {
				setKey(env, e[0].Value, e[1])
			}
		case "secrets":
			// Woodpecker before v3: each secret is a variable named after
			// it in capitals, or {source, target}.
			for _, sec := range v.Content {
				src, target := sec.Value, strings.ToUpper(sec.Value)
				if sec.Kind == yaml.MappingNode {
					src, target = lookupValue(sec, "source"), strings.ToUpper(lookupValue(sec, "target"))
				}
				setKey(env, target, mapOf("from_secret", str(src)))
			}
		case "when":
			setKey(s, "when", c.when(v))
		case "failure":
			if v.Value == "ignore" {
				setKey(s, "failure", str("ignore"))
			}
		case "pull":
			if v.Value == "true" {
				setKey(s, "pull", str("always"))
			}
		case "directory":
			setKey(s, "working_dir", v)
		case "volumes":
			setKey(s, "x-woodpecker-volumes", v)
		case "group":
			setKey(s, groupKey, v)
		case "backend_options", "pull_policy", "when_status":
			c.warn(k, "%q is not supported and is ignored", k.Value)
		default:
			if v.Anchor == "" && !strings.HasPrefix(k.Value, "x-") {
				c.warn(k, "unknown key %q in a Woodpecker step is ignored", k.Value)
			}
		}
	}
	if len(env.Content) > 0 {
		setKey(s, "environment", env)
	}
	return s
}

// volumes turns Woodpecker's "source:target[:mode]" step volumes into
// pipeline volumes (a host directory for an absolute source, a scratch
// volume for a named one) and mounts.
func (c *wp) volumes(doc *yaml.Node) {
	declared := map[string]bool{}
	vols := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, key := range []string{"services", "steps"} {
		list := lookup(doc, key)
		if list == nil {
			continue
		}
		for _, s := range list.Content {
			v := lookup(s, "x-woodpecker-volumes")
			if v == nil {
				continue
			}
			deleteKey(s, "x-woodpecker-volumes")
			mounts := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, item := range v.Content {
				parts := strings.Split(item.Value, ":")
				if len(parts) < 2 {
					c.warn(item, "volume %q needs the form source:target; it is not mounted", item.Value)
					continue
				}
				src, target := parts[0], parts[1]
				vname := volumeName(src)
				if !declared[vname] {
					declared[vname] = true
					vol := mapOf("name", str(vname))
					if strings.HasPrefix(src, "/") {
						setKey(vol, "host", mapOf("path", str(src)))
					} else {
						setKey(vol, "temp", mapping())
					}
					vols.Content = append(vols.Content, vol)
				}
				mounts.Content = append(mounts.Content, mapOfPairs("name", str(vname), "path", str(target)))
			}
			setKey(s, "volumes", mounts)
		}
	}
	if len(vols.Content) > 0 {
		setKey(doc, "volumes", vols)
	}
}

func volumeName(src string) string {
	r := strings.NewReplacer("/", "_", ".", "_")
	return "wp" + r.Replace(src)
}

// when converts Woodpecker conditions: a map, or a list of maps of which
// any may match. A list of one is a plain map.
func (c *wp) when(n *yaml.Node) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		return c.condition(n)
	case yaml.SequenceNode:
		if len(n.Content) == 1 {
			return c.condition(resolve(n.Content[0]))
		}
		alts := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range n.Content {
			alts.Content = append(alts.Content, c.condition(resolve(item)))
		}
		return mapOf("any", alts)
	}
	c.fail(n, "when must be a map of conditions or a list of them, got %s", kindOf(n))
	return mapping()
}

// wpEvents maps Woodpecker's event names to ferry's.
var wpEvents = map[string]string{"manual": "custom", "deployment": "promote", "release": "tag"}

// condition converts one set of conditions.
func (c *wp) condition(n *yaml.Node) *yaml.Node {
	out := mapping()
	if n.Kind != yaml.MappingNode {
		c.fail(n, "a condition must be a map with keys such as event and branch, got %s", kindOf(n))
		return out
	}
	for _, p := range pairs(n) {
		k, v := p[0], resolve(p[1])
		switch k.Value {
		case "branch", "ref", "status", "repo", "instance", "cron":
			setKey(out, k.Value, v)
		case "event":
			setKey(out, "event", mapEvents(v))
		case "path":
			setKey(out, "paths", pathCondition(v))
		case "evaluate":
			c.warn(k, "evaluate expressions are not supported; this condition never matches")
			setKey(out, "event", mapOf("exclude", strList([]string{"*"})))
		case "matrix", "platform", "environment":
			c.warn(k, "the %q condition is not supported and is ignored", k.Value)
		default:
			c.warn(k, "unknown condition %q is ignored", k.Value)
		}
	}
	return out
}

// mapEvents renames Woodpecker events in an event condition.
func mapEvents(v *yaml.Node) *yaml.Node {
	rename := func(s *yaml.Node) *yaml.Node {
		if e, ok := wpEvents[s.Value]; ok {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e, Line: s.Line, Column: s.Column}
		}
		return s
	}
	switch v.Kind {
	case yaml.ScalarNode:
		return rename(v)
	case yaml.SequenceNode:
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, s := range v.Content {
			out.Content = append(out.Content, rename(resolve(s)))
		}
		return out
	case yaml.MappingNode:
		out := mapping()
		for _, p := range pairs(v) {
			setKey(out, p[0].Value, mapEvents(resolve(p[1])))
		}
		return out
	}
	return v
}

// pathCondition keeps include and exclude of a path condition and drops
// on_empty, which ferry's paths condition has as its fixed behaviour.
func pathCondition(v *yaml.Node) *yaml.Node {
	if v.Kind != yaml.MappingNode {
		return v
	}
	out := mapping()
	for _, p := range pairs(v) {
		if p[0].Value == "include" || p[0].Value == "exclude" {
			setKey(out, p[0].Value, p[1])
		}
	}
	return out
}

// mergeStatus adds runs_on's statuses to a trigger.
func mergeStatus(trigger *yaml.Node, statuses []string) *yaml.Node {
	if trigger == nil {
		trigger = mapping()
	}
	setKey(trigger, "status", strList(statuses))
	return trigger
}

func platform(v string) *yaml.Node {
	os, arch, _ := strings.Cut(v, "/")
	p := mapOf("os", str(os))
	if arch != "" {
		setKey(p, "arch", str(arch))
	}
	return p
}

// ---- YAML node helpers ----

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func strList(ss []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range ss {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func mapOf(k string, v *yaml.Node) *yaml.Node {
	m := mapping()
	setKey(m, k, v)
	return m
}

func mapOfPairs(k1 string, v1 *yaml.Node, k2 string, v2 *yaml.Node) *yaml.Node {
	m := mapOf(k1, v1)
	setKey(m, k2, v2)
	return m
}

// setKey sets key in mapping m, replacing an earlier value.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, str(key), v)
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for _, p := range pairs(m) {
		if p[0].Value == key {
			return resolve(p[1])
		}
	}
	return nil
}

func lookupValue(m *yaml.Node, key string) string {
	if v := lookup(m, key); v != nil {
		return v.Value
	}
	return ""
}

// pairs lists a mapping's keys and values, applying "<<" merge keys
// (Woodpecker files use them for shared when blocks): keys written in the
// map win over merged ones.
func pairs(m *yaml.Node) [][2]*yaml.Node {
	var out, merged [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value == "<<" && k.Tag == "!!merge" {
			src := resolve(v)
			var srcs []*yaml.Node
			if src.Kind == yaml.SequenceNode {
				for _, s := range src.Content {
					srcs = append(srcs, resolve(s))
				}
			} else {
				srcs = []*yaml.Node{src}
			}
			for _, s := range srcs {
				if s.Kind == yaml.MappingNode {
					merged = append(merged, pairs(s)...)
				}
			}
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	for _, p := range merged {
		if !seen[p[0].Value] {
			seen[p[0].Value] = true
			out = append(out, p)
		}
	}
	return out
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	if n = yamlutil.Deref(n); n == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// scalars reads a string or a list of strings.
func scalars(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			return nil
		}
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, resolve(c).Value)
	}
	return out
}

// envPairs reads environment as a map, or as a list of "K=V" (Woodpecker's
// older form).
func envPairs(n *yaml.Node) [][2]*yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		return pairs(n)
	case yaml.SequenceNode:
		var out [][2]*yaml.Node
		for _, item := range n.Content {
			k, v, _ := strings.Cut(resolve(item).Value, "=")
			out = append(out, [2]*yaml.Node{str(k), str(v)})
		}
		return out
	}
	return nil
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a string"
}

// expandAliases copies n with every alias replaced by a copy of what it
// names and no anchors left. checkExpansion has bounded the result.
func expandAliases(n *yaml.Node, depth int) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth < 100 {
		n = n.Alias
		depth++
	}
	c := *n
	c.Anchor = ""
	if n.Kind == yaml.AliasNode { // an alias that names nothing
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			c.Content[i] = expandAliases(ch, depth+1)
		}
	}
	return &c
}

// spliceSequenceMerges applies Woodpecker's merge of a list into a list:
// an item "<<: *list" is replaced by the list's items, as Woodpecker's
// YAML reader does ("path: [<<: *common_paths, extra]").
func spliceSequenceMerges(n *yaml.Node, depth int) {
	if n == nil || depth > 64 || n.Kind == yaml.AliasNode {
		return
	}
	if n.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, item := range n.Content {
			if item.Kind == yaml.MappingNode && len(item.Content) == 2 && item.Content[0].Value == "<<" {
				if src := resolve(item.Content[1]); src.Kind == yaml.SequenceNode {
					out = append(out, src.Content...)
					continue
				}
			}
			out = append(out, item)
		}
		n.Content = out
	}
	for _, c := range n.Content {
		spliceSequenceMerges(c, depth+1)
	}
}

// maxNodes bounds how many nodes a workflow may expand to once aliases are
// followed, as pipeline.Parse bounds a YAML file: a "billion laughs" file
// would otherwise be written out in full.
const maxNodes = 1 << 18

// checkExpansion refuses a workflow whose aliases contain themselves or
// expand it beyond maxNodes.
func (c *wp) checkExpansion(root *yaml.Node, budget int) {
	var open []*yaml.Node
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if budget--; budget < 0 {
			c.fail(n, "the workflow expands to more than %d values through aliases; simplify the anchors", maxNodes)
			return false
		}
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return true
			}
			if slices.Contains(open, n.Alias) {
				c.fail(n, "alias *%s refers to an anchor that contains it; a value cannot contain itself", n.Value)
				return false
			}
			n = n.Alias
		}
		open = append(open, n)
		defer func() { open = open[:len(open)-1] }()
		for _, ch := range n.Content {
			if !walk(ch) {
				return false
			}
		}
		return true
	}
	walk(root)
}
