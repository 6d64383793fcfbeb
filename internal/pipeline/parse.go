package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/yamlutil"
)

// The document kinds Parse accepts. Only pipelines and secrets are kept;
// the others are valid Drone documents that ferry has no use for:
// signatures (ferry does not verify Drone's HMAC), templates (a Drone
// server-side extension), and the "cron" and "registry" kinds of Drone's
// older YAML format.
var validKinds = []string{"pipeline", "secret", "signature", "template", "cron", "registry"}

// The pipeline types whose keys Parse knows completely. Documents of other
// types (Drone's kubernetes, ssh, digitalocean, macstadium, vm, ...) are
// parsed leniently: known keys are decoded and checked, unknown ones are
// left alone, because those runners define keys of their own.
const (
	TypeDocker = "docker"
	TypeExec   = "exec"
)

var pipelineKeys = []string{
	"kind", "type", "name", "version", "platform", "workspace", "clone", "trigger",
	"depends_on", "environment", "services", "steps", "volumes", "node",
	"concurrency", "image_pull_secrets",
	// Accepted as Drone accepts them, with no effect on a docker pipeline:
	// resources are the Kubernetes runner's requests and limits.
	"resources",
}

var stepKeys = []string{
	"name", "image", "pull", "shell", "commands", "entrypoint", "command",
	"environment", "settings", "when", "depends_on", "detach", "failure",
	"privileged", "volumes", "user", "working_dir", "network_mode",
	"extra_hosts", "dns", "dns_search", "shm_size", "mem_limit",
	"memswap_limit", "cpu_period", "cpu_quota", "cpu_shares", "cpu_set",
	"devices", "timeout",
	// Accepted as Drone accepts it, with no effect: services are reached by
	// name on the pipeline's network, whatever ports they list.
	"ports",
}

var conditionKeys = []string{
	"branch", "event", "ref", "repo", "status", "target", "cron", "action",
	"instance", "paths", "any",
}

// Parse reads a pipeline file: one or more YAML documents separated by
// "---", in Drone's 1.x format. Anchors, aliases and "<<" merge keys are
// resolved. Empty documents are skipped and a document without a kind is
// a pipeline, as in Drone.
//
// Parse reports every problem it finds, not just the first: the error is
// then of type Errors, each with the file, line and column, and the
// returned Config is nil. Parse never panics, whatever the input.
//
// Parse does not substitute ${VARIABLES}; call Expand on the data first.
func Parse(file string, data []byte) (*Config, error) {
	cfg := &Config{File: file, pos: newPositions()}
	d := &decoder{file: file, pos: cfg.pos, budget: maxNodes}
	for _, doc := range splitDocuments(data) {
		d.document(cfg, doc)
	}
	all := append(d.errs, Validate(cfg)...).sorted()
	errs, warnings := all.split()
	if len(errs) == 0 && len(cfg.Pipelines) == 0 && !d.exhausted {
		errs = Errors{{File: file, Line: 1, Column: 1, Msg: NoPipelines}}
		if t := d.template; t != nil {
			errs = Errors{{File: file, Line: t.pos.Line, Column: t.pos.Column, Key: "load", Msg: fmt.Sprintf(templateNotStored, t.load)}}
		}
		all = append(errs, all...)
	}
	if len(errs) > 0 {
		return nil, all
	}
	cfg.Warnings = warnings
	prune(cfg)
	return cfg, nil
}

// NoPipelines is the message for a file that holds no pipeline. ferry lint,
// ferry exec and the server all refuse such a file: a build that would run
// nothing is more likely a mistake (an empty file, the wrong file, every
// document of another kind) than an intent.
const NoPipelines = `no pipelines found; a pipeline is a YAML document with "kind: pipeline" and a list of steps`

// templateCall is a "kind: template" document naming the template to load.
type templateCall struct {
	load string
	pos  Pos
}

// templateNotStored is the error for a file that only calls a template:
// Drone's server renders it from its template store, which ferry has not.
const templateNotStored = `no pipelines found: the file calls the template %q ("kind: template"), which Drone's server renders from the templates stored on the server ("drone template add"); ferry has no template store: put the YAML the template renders, or a .drone.star or .drone.jsonnet program doing the same, in the repository`

// prune applies what Drone does with the forms Parse only warns about:
// "pull: default" and unknown pull or failure policies are the defaults,
// dependencies on pipelines that are not in the file are dropped, a
// volume with neither host nor temp is not created, and mounts of volumes
// the pipeline does not create are skipped.
func prune(cfg *Config) {
	names := make(map[string]bool, len(cfg.Pipelines))
	for _, p := range cfg.Pipelines {
		names[p.Name] = true
	}
	for _, p := range cfg.Pipelines {
		p.DependsOn = slices.DeleteFunc(p.DependsOn, func(dep string) bool { return !names[dep] })
		for _, v := range p.Volumes {
			if v.Temp != nil && v.Temp.Medium != "memory" {
				v.Temp.Medium = ""
			}
			if v.Temp != nil {
				v.Host = nil // both: Drone makes it a temp volume
			}
		}
		runnable := p.Type == TypeDocker || p.Type == TypeExec
		declared := map[string]bool{}
		vols := p.Volumes[:0]
		for _, v := range p.Volumes {
			if runnable && v.Host == nil && v.Temp == nil {
				continue
			}
			declared[v.Name] = true
			vols = append(vols, v)
		}
		p.Volumes = vols
		for _, s := range append(append([]*Step(nil), p.Services...), p.Steps...) {
			if !slices.Contains(pullPolicies, s.Pull) {
				s.Pull = ""
			}
			switch s.Failure {
			case "ignore", "fail-fast":
			default:
				s.Failure = ""
			}
			if d, err := time.ParseDuration(s.Timeout); err != nil || d <= 0 {
				s.Timeout = ""
			}
			mounts := s.Volumes[:0]
			for _, m := range s.Volumes {
				if declared[m.Name] {
					mounts = append(mounts, m)
				}
			}
			s.Volumes = mounts
		}
	}
}

// chunk is one YAML document of a file.
type chunk struct {
	// offset is the number of lines of the file before the chunk.
	offset int
	data   []byte
}

// splitDocuments cuts a file into its documents, the way Drone does, so
// that each is parsed on its own: a syntax error in one document does not
// hide the problems of the others. A line starting with "---" or "..."
// followed by a space or the end of the line is a document marker; YAML
// forbids such a line inside a document, so the cut never splits one.
// Lines before the first content (comments, directives, the first "---")
// stay with the document they precede.
func splitDocuments(data []byte) []chunk {
	var out []chunk
	start, line, startLine := 0, 0, 0
	// content: the chunk has a line of YAML; marked: it has a "---";
	// ended: it was closed by "...".
	content, marked, ended := false, false, false
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if j >= 0 {
			next = i + j + 1
		}
		text := data[i:next]
		switch {
		case isMarker(text, "---"):
			if content || marked || ended {
				out = append(out, chunk{offset: startLine, data: data[start:i]})
				start, startLine = i, line
				content, ended = false, false
			}
			marked = true
			// A marker may carry content: "--- {kind: pipeline}".
			if len(bytes.TrimSpace(stripComment(text[3:]))) > 0 {
				content = true
			}
		case isMarker(text, "..."):
			ended = true
		default:
			t := bytes.TrimSpace(text)
			if len(t) == 0 || t[0] == '#' || (!content && !marked && t[0] == '%') {
				break
			}
			if ended {
				out = append(out, chunk{offset: startLine, data: data[start:i]})
				start, startLine = i, line
				marked, ended = false, false
			}
			content = true
		}
		i = next
		line++
	}
	if start < len(data) {
		out = append(out, chunk{offset: startLine, data: data[start:]})
	}
	return out
}

// isMarker reports whether line is the document marker m ("---" or "...")
// standing alone or followed by white space.
func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	rest := line[len(m):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n'
}

// stripComment drops a trailing "# comment" from a marker line's rest.
func stripComment(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '#' {
		return nil
	}
	return t
}

// unmarshal parses one document into a node. The YAML library is not
// known to panic on any input, but Parse promises never to, so a panic in
// the library becomes an error here.
func unmarshal(data []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML library failed: %v", r)
		}
	}()
	return yaml.Unmarshal(data, n)
}

// syntaxError reports a document that is not valid YAML, at the position
// the YAML library gives, or at the document's start when it gives none.
func (d *decoder) syntaxError(doc chunk, err error) {
	pos := Pos{Line: doc.offset + 1, Column: 1}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var le *yaml.LoadError
	if errors.As(err, &le) {
		msg = le.Message
		if le.Mark.Line > 0 {
			pos = Pos{Line: le.Mark.Line + doc.offset, Column: max(le.Mark.Column, 1)}
		}
		ctxLine := 0
		if le.ContextMsg != "" && le.ContextMark.Line > 0 {
			ctxLine = le.ContextMark.Line + doc.offset
			msg += fmt.Sprintf(" (%s that starts at line %d)", le.ContextMsg, ctxLine)
		}
		if plain := plainSyntax(le.Message+" "+le.ContextMsg, ctxLine, docLine(doc.data, le.Mark.Line), le.Mark.Column); plain != "" {
			msg = plain
		}
	}
	if strings.Contains(msg, "unknown escape character") {
		msg += `; note that ${VARIABLE} substitution, run before parsing as in Drone, turns "\\" into "\": ` +
			`write "\\\\" for one backslash in a double-quoted string, or use a single-quoted or plain one`
	}
	d.errorAt(pos, "", "invalid YAML: %s", msg)
}

// docLine returns line n (1-based) of data, without its line break.
func docLine(data []byte, n int) string {
	for i := 1; len(data) > 0; i++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if i == n {
			return strings.TrimSuffix(string(line), "\r")
		}
		data = rest
	}
	return ""
}

// document decodes one YAML document into cfg.
func (d *decoder) document(cfg *Config, doc chunk) {
	d.offset = doc.offset
	var root yaml.Node
	if err := unmarshal(doc.data, &root); err != nil {
		d.syntaxError(doc, err)
		return
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return // only comments and white space
	}
	d.breakAliasCycles(&root)
	n := yamlutil.Deref(root.Content[0])
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "a document must be a map with keys such as kind, name and steps, got %s", describe(n))
		return
	}
	ps := d.pairs(n, "document", "")
	kind := "pipeline"
	for _, p := range ps {
		if p.key.Value == "kind" {
			if k, ok := d.str(p.val, "kind", "kind"); ok && k != "" {
				kind = k
			}
		}
	}
	if dec := kindDecoder(kind); dec != nil {
		v, errs := dec(n)
		for _, e := range errs {
			d.errorAt(Pos{Line: e.Line + d.offset, Column: e.Column}, e.Key, "%s", e.Msg)
		}
		cfg.Documents = append(cfg.Documents, Document{Kind: kind, Pos: d.posOf(n), Value: v})
		return
	}
	switch kind {
	case "pipeline":
		cfg.Pipelines = append(cfg.Pipelines, d.pipeline(n, ps))
	case "secret":
		if s := d.secret(n, ps); s != nil {
			cfg.Secrets = append(cfg.Secrets, s)
		}
	case "template":
		// A call of a template stored on the Drone server, which
		// renders it into the pipelines (its template converter).
		for _, p := range ps {
			if p.key.Value == "load" && d.template == nil {
				if load, ok := d.str(p.val, "load", "load"); ok && load != "" {
					d.template = &templateCall{load: load, pos: d.posOf(p.key)}
				}
			}
		}
	case "signature", "cron", "registry":
		// Valid, and of no use to ferry; see validKinds.
	default:
		at := n
		for _, p := range ps {
			if p.key.Value == "kind" {
				at = d.derefOr(p.val, p.key)
			}
		}
		msg := fmt.Sprintf("unknown kind %q; ", kind)
		if s := closest(kind, validKinds); s != "" {
			msg += fmt.Sprintf("did you mean %q? ", s)
		}
		d.errorf(at, "kind", "%svalid kinds are: %s", msg, strings.Join(documentedKinds(), ", "))
	}
}

func (d *decoder) pipeline(n *yaml.Node, ps []pair) *Pipeline {
	p := &Pipeline{Pos: d.posOf(n), Kind: "pipeline", Type: TypeDocker}
	for _, kv := range ps {
		if kv.key.Value == "type" {
			if t, ok := d.str(kv.val, "pipeline.type", "type"); ok && t != "" {
				p.Type = t
			}
			at := d.derefOr(kv.val, kv.key)
			d.pos.set(p, "type", 0, d.posOf(at))
			if !slices.Contains(knownTypes, p.Type) {
				msg := fmt.Sprintf("unknown pipeline type %q; ", p.Type)
				if s := closest(p.Type, knownTypes); s != "" {
					msg += fmt.Sprintf("did you mean %q? ", s)
				}
				d.warnf(at, "type", "%sferry runs docker and exec pipelines, and does not run this one (Drone's types are: %s)", msg, strings.Join(knownTypes, ", "))
			}
		}
	}
	strict := p.Type == TypeDocker || p.Type == TypeExec
	if strict {
		d.checkKeys(ps, pipelineKeys, "pipeline", "")
	}
	for _, kv := range ps {
		k, v := kv.key.Value, kv.val
		switch k {
		case "name":
			name, ok := d.str(v, "pipeline.name", k)
			if !ok {
				d.pos.markBad(p, "name")
			}
			p.Name = name
			d.pos.set(p, "name", 0, d.posOf(d.derefOr(v, kv.key)))
		case "version":
			d.str(v, "pipeline.version", k)
		case "platform":
			p.Platform = d.platform(v, k)
		case "workspace":
			ws, _ := d.mapping(v, "workspace", k)
			d.checkKeys(ws, []string{"base", "path"}, "workspace", k)
			for _, w := range ws {
				s, _ := d.str(w.val, "workspace."+w.key.Value, join(k, w.key.Value))
				switch w.key.Value {
				case "base":
					p.Workspace.Base = s
				case "path":
					p.Workspace.Path = s
				}
			}
		case "clone":
			p.Clone = d.clone(v, k)
		case "trigger":
			d.conditions(v, &p.Trigger, "trigger", k)
		case "depends_on":
			deps, nodes := d.strList(v, "pipeline.depends_on", k)
			p.DependsOn = deps
			for i, dn := range nodes {
				d.pos.set(p, "depends_on", i, d.posOf(dn))
			}
		case "environment":
			p.Environment = d.envMap(v, "environment", k)
		case "services":
			p.Services = d.steps(v, "service", k, strict)
		case "steps":
			p.Steps = d.steps(v, "step", k, strict)
		case "volumes":
			p.Volumes = d.volumes(v, k, strict)
		case "node":
			p.Node = d.strMap(v, "node", k)
		case "concurrency":
			cs, _ := d.mapping(v, "concurrency", k)
			d.checkKeys(cs, []string{"limit"}, "concurrency", k)
			for _, c := range cs {
				if c.key.Value == "limit" {
					p.Concurrency.Limit = d.count(c.val, "concurrency.limit", join(k, "limit"))
				}
			}
		case "image_pull_secrets":
			p.PullSecrets, _ = d.strList(v, "image_pull_secrets", k)
		}
	}
	if p.Name == "" && !d.pos.isBad(p, "name") {
		p.Name = "default"
	}
	return p
}

func (d *decoder) platform(n *yaml.Node, key string) Platform {
	var pl Platform
	ps, _ := d.mapping(n, "platform", key)
	d.checkKeys(ps, []string{"os", "arch", "variant", "version"}, "platform", key)
	for _, p := range ps {
		s, _ := d.str(p.val, "platform."+p.key.Value, join(key, p.key.Value))
		switch p.key.Value {
		case "os":
			pl.OS = s
		case "arch":
			pl.Arch = s
		case "variant":
			pl.Variant = s
		case "version":
			pl.Version = s
		}
	}
	return pl
}

func (d *decoder) clone(n *yaml.Node, key string) Clone {
	var c Clone
	ps, _ := d.mapping(n, "clone", key)
	d.checkKeys(ps, []string{"disable", "depth", "retries", "skip_verify", "trace"}, "clone", key)
	for _, p := range ps {
		what, k := "clone."+p.key.Value, join(key, p.key.Value)
		switch p.key.Value {
		case "disable":
			c.Disable, _ = d.boolean(p.val, what, k)
		case "depth":
			c.Depth = d.count(p.val, what, k)
		case "retries":
			c.Retries = d.count(p.val, what, k)
		case "skip_verify":
			c.SkipVerify, _ = d.boolean(p.val, what, k)
		case "trace":
			c.Trace, _ = d.boolean(p.val, what, k)
		}
	}
	return c
}

// steps decodes the list under "steps" or "services"; kind is "step" or
// "service".
func (d *decoder) steps(n *yaml.Node, kind, key string, strict bool) []*Step {
	n = yamlutil.Deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.MappingNode {
			hint = fmt.Sprintf(" (a map of %ss by name is Drone 0.8's format; Drone 1.x reads a list of {name: ..., image: ...})", kind)
		}
		d.errorf(n, key, "%ss must be a list of %ss, got %s%s", kind, kind, describe(n), hint)
		return nil
	}
	var out []*Step
	for i, item := range n.Content {
		k := index(key, i)
		m := yamlutil.Deref(item)
		if m == nil || m.Kind != yaml.MappingNode {
			d.errorf(item, k, "each of the %ss must be a map with keys such as name and image, got %s", kind, describe(m))
			continue
		}
		out = append(out, d.step(m, kind, k, strict))
	}
	return out
}

func (d *decoder) step(n *yaml.Node, kind, key string, strict bool) *Step {
	s := &Step{Pos: d.posOf(n)}
	ps := d.pairs(n, kind, key)
	if strict {
		// A misspelt key is ignored, as Drone ignores it: a misspelt image
		// leaves the step without one, which stays an error.
		d.checkKeys(ps, stepKeys, kind, key)
	}
	for _, kv := range ps {
		name, v := kv.key.Value, kv.val
		what, k := kind+"."+name, join(key, name)
		at := d.posOf(d.derefOr(v, kv.key))
		switch name {
		case "name":
			str, ok := d.str(v, what, k)
			if !ok {
				d.pos.markBad(s, "name")
			}
			s.Name = str
			d.pos.set(s, "name", 0, at)
		case "image":
			str, ok := d.str(v, what, k)
			if !ok {
				d.pos.markBad(s, "image")
			}
			s.Image = str
		case "pull":
			s.Pull, _ = d.str(v, what, k)
			d.pos.set(s, "pull", 0, at)
		case "shell":
			s.Shell, _ = d.str(v, what, k)
		case "commands":
			s.Commands, _ = d.strList(v, what, k)
		case "entrypoint":
			s.Entrypoint, _ = d.strList(v, what, k)
		case "command":
			s.Command, _ = d.strList(v, what, k)
		case "environment":
			s.Environment = d.envMap(v, what, k)
		case "settings":
			s.Settings = d.settingsMap(v, what, k)
		case "when":
			d.conditions(v, &s.When, what, k)
		case "depends_on":
			deps, nodes := d.strList(v, what, k)
			s.DependsOn = deps
			for i, dn := range nodes {
				d.pos.set(s, "depends_on", i, d.posOf(dn))
			}
		case "detach":
			s.Detach, _ = d.boolean(v, what, k)
		case "failure":
			f, _ := d.str(v, what, k)
			switch f {
			case "fast", "fast-fail":
				f = "fail-fast"
			}
			s.Failure = f
			d.pos.set(s, "failure", 0, at)
		case "privileged":
			s.Privileged, _ = d.boolean(v, what, k)
		case "volumes":
			s.Volumes = d.mounts(s, v, what, k)
		case "user":
			s.User, _ = d.str(v, what, k)
		case "working_dir":
			s.WorkingDir, _ = d.str(v, what, k)
		case "network_mode":
			s.NetworkMode, _ = d.str(v, what, k)
		case "extra_hosts":
			s.ExtraHosts, _ = d.strList(v, what, k)
		case "dns":
			s.DNS, _ = d.strList(v, what, k)
		case "dns_search":
			s.DNSSearch, _ = d.strList(v, what, k)
		case "shm_size":
			s.ShmSize = d.size(v, what, k)
		case "mem_limit":
			s.MemLimit = d.size(v, what, k)
		case "memswap_limit":
			// -1 means unlimited swap to the Docker engine.
			if r := yamlutil.Deref(v); r != nil && r.Kind == yaml.ScalarNode && r.Value == "-1" {
				s.MemSwapLimit = -1
			} else {
				s.MemSwapLimit = d.size(v, what, k)
			}
		case "cpu_period":
			s.CPUPeriod, _ = d.integer(v, what, k)
		case "cpu_quota":
			s.CPUQuota, _ = d.integer(v, what, k)
		case "cpu_shares":
			s.CPUShares, _ = d.integer(v, what, k)
		case "cpu_set":
			s.CPUSet, _ = d.str(v, what, k)
		case "devices":
			s.Devices = d.devices(s, v, what, k)
		case "timeout":
			s.Timeout, _ = d.str(v, what, k)
			d.pos.set(s, "timeout", 0, at)
		}
	}
	return s
}

// mounts decodes a step's volumes: a list of {name, path}.
func (d *decoder) mounts(s *Step, n *yaml.Node, what, key string) []VolumeMount {
	return d.namePaths(s, n, what, key, "volumes", "step volume")
}

// devices decodes a step's devices: a list of {name, path}.
func (d *decoder) devices(s *Step, n *yaml.Node, what, key string) []Device {
	mounts := d.namePaths(s, n, what, key, "devices", "device")
	out := make([]Device, len(mounts))
	for i, m := range mounts {
		out[i] = Device(m)
	}
	return out
}

// namePaths decodes a list of {name, path} under the step's field
// (volumes, devices); kind names an item in errors.
func (d *decoder) namePaths(s *Step, n *yaml.Node, what, key, field, kind string) []VolumeMount {
	items := d.mapList(n, what, key, "name and path")
	out := make([]VolumeMount, 0, len(items))
	for i, it := range items {
		k := index(key, i)
		ps := d.pairs(it, what, k)
		d.checkKeys(ps, []string{"name", "path"}, kind, k)
		var m VolumeMount
		for _, p := range ps {
			str, _ := d.str(p.val, what+"."+p.key.Value, join(k, p.key.Value))
			switch p.key.Value {
			case "name":
				m.Name = str
			case "path":
				m.Path = str
			}
		}
		d.pos.set(s, field, len(out), d.posOf(it))
		out = append(out, m)
	}
	return out
}

// mapList checks that n is a list of maps and returns the maps.
func (d *decoder) mapList(n *yaml.Node, what, key, keys string) []*yaml.Node {
	n = yamlutil.Deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, key, "%s must be a list of maps with %s, got %s", what, keys, describe(n))
		return nil
	}
	var out []*yaml.Node
	for i, item := range n.Content {
		m := yamlutil.Deref(item)
		if m == nil || m.Kind != yaml.MappingNode {
			d.errorf(item, index(key, i), "%s[%d] must be a map with %s, got %s", what, i, keys, describe(m))
			continue
		}
		out = append(out, m)
	}
	return out
}

// volumes decodes the pipeline's volumes.
func (d *decoder) volumes(n *yaml.Node, key string, strict bool) []*Volume {
	var out []*Volume
	for i, it := range d.mapList(n, "volumes", key, "name and host or temp") {
		k := index(key, i)
		v := &Volume{Pos: d.posOf(it)}
		ps := d.pairs(it, "volume", k)
		if strict {
			d.checkKeys(ps, []string{"name", "host", "temp"}, "volume", k)
		}
		for _, p := range ps {
			pk := join(k, p.key.Value)
			switch p.key.Value {
			case "name":
				v.Name, _ = d.str(p.val, "volume.name", pk)
			case "path":
				if strict {
					d.pos.markBad(v, "source") // warned by checkKeys
				}
			case "host":
				hs, ok := d.mapping(p.val, "volume.host", pk)
				if !ok {
					continue
				}
				v.Host = &HostVolume{}
				d.checkKeys(hs, []string{"path"}, "volume.host", pk)
				for _, h := range hs {
					if h.key.Value == "path" {
						v.Host.Path, _ = d.str(h.val, "volume.host.path", join(pk, "path"))
						d.pos.set(v, "host.path", 0, d.posOf(d.derefOr(h.val, h.key)))
					}
				}
			case "temp":
				ts, ok := d.mapping(p.val, "volume.temp", pk)
				if !ok {
					continue
				}
				v.Temp = &TempVolume{}
				d.checkKeys(ts, []string{"medium", "size_limit"}, "volume.temp", pk)
				for _, t := range ts {
					switch t.key.Value {
					case "medium":
						v.Temp.Medium, _ = d.str(t.val, "volume.temp.medium", join(pk, "medium"))
						d.pos.set(v, "temp.medium", 0, d.posOf(d.derefOr(t.val, t.key)))
					case "size_limit":
						v.Temp.SizeLimit = d.size(t.val, "volume.temp.size_limit", join(pk, "size_limit"))
					}
				}
			}
		}
		out = append(out, v)
	}
	return out
}

// conditions decodes "when" or "trigger" into c.
func (d *decoder) conditions(n *yaml.Node, c *Conditions, what, key string) {
	ps, _ := d.mapping(n, what, key)
	d.checkKeys(ps, conditionKeys, what, key)
	for _, p := range ps {
		var target *Condition
		switch p.key.Value {
		case "branch":
			target = &c.Branch
		case "event":
			target = &c.Event
		case "ref":
			target = &c.Ref
		case "repo":
			target = &c.Repo
		case "status":
			target = &c.Status
		case "target":
			target = &c.Target
		case "cron":
			target = &c.Cron
		case "action":
			target = &c.Action
		case "instance":
			target = &c.Instance
		case "paths":
			target = &c.Paths
		case "any":
			for i, item := range d.mapList(p.val, what+".any", join(key, "any"), "conditions") {
				var alt Conditions
				d.conditions(item, &alt, what+".any", index(join(key, "any"), i))
				c.Any = append(c.Any, alt)
			}
			continue
		default:
			continue
		}
		d.condition(p.val, target, what+"."+p.key.Value, join(key, p.key.Value))
	}
}

// condition decodes one condition: a pattern, a list of patterns, or a
// map with include and exclude lists.
func (d *decoder) condition(n *yaml.Node, c *Condition, what, key string) {
	r := yamlutil.Deref(n)
	if r != nil && r.Kind == yaml.MappingNode {
		ps := d.pairs(r, what, key)
		d.checkKeys(ps, []string{"include", "exclude"}, what, key)
		for _, p := range ps {
			list, nodes := d.strList(p.val, what+"."+p.key.Value, join(key, p.key.Value))
			switch p.key.Value {
			case "include":
				c.Include = list
			case "exclude":
				c.Exclude = list
			default:
				continue
			}
			for i, in := range nodes {
				d.pos.set(c, p.key.Value, i, d.posOf(in))
			}
		}
		return
	}
	if r != nil && r.Kind != yaml.ScalarNode && r.Kind != yaml.SequenceNode {
		d.errorf(r, key, "%s must be a pattern, a list of patterns or a map with include and exclude, got %s", what, describe(r))
		return
	}
	list, nodes := d.strList(n, what, key)
	c.Include = list
	for i, in := range nodes {
		d.pos.set(c, "include", i, d.posOf(in))
	}
}

// secret decodes a "kind: secret" document.
func (d *decoder) secret(n *yaml.Node, ps []pair) *SecretDoc {
	s := &SecretDoc{Pos: d.posOf(n)}
	d.checkKeys(ps, []string{"kind", "type", "version", "name", "data", "get"}, "secret", "")
	for _, p := range ps {
		k := p.key.Value
		switch k {
		case "type", "version":
			d.str(p.val, "secret."+k, k)
		case "name":
			s.Name, _ = d.str(p.val, "secret.name", k)
		case "data":
			s.Data, _ = d.str(p.val, "secret.data", k)
		case "get":
			gs, _ := d.mapping(p.val, "secret.get", k)
			d.checkKeys(gs, []string{"path", "name", "key"}, "secret.get", k)
			for _, g := range gs {
				v, _ := d.str(g.val, "secret.get."+g.key.Value, join(k, g.key.Value))
				switch g.key.Value {
				case "path":
					s.Path = v
				case "name", "key":
					if s.Key != "" && v != s.Key {
						d.errorf(g.key, join(k, g.key.Value), "secret.get.name and secret.get.key name the same thing and disagree (%q and %q); keep one", s.Key, v)
					}
					s.Key = v
				}
			}
		}
	}
	// Drone ignores a secret document it cannot use; so does ferry, with a
	// warning.
	switch {
	case s.Name == "":
		d.warnf(n, "name", `secret has no name, so it is ignored; a "kind: secret" document needs the name that steps use in from_secret`)
		return nil
	case s.Data == "" && s.Path == "" && s.Key == "":
		d.warnf(n, "", "secret %q has neither data nor get.path and get.name, so it is ignored; give one of them", s.Name)
		return nil
	}
	return s
}
