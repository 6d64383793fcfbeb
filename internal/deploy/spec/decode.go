package spec

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/yamlutil"
)

func init() { pipeline.RegisterKind(Kind, decodeService) }

// Strategies are the strategy types a service may name; internal/deploy
// registers one implementation for each.
var Strategies = []string{"rolling", "canary", "blue-green"}

var (
	serviceKeys  = []string{"kind", "name", "artifact", "environments"}
	artifactKeys = []string{"url", "path", "image", "format"}
	envKeys      = []string{"name", "nodes", "strategy", "health", "hooks", "gates", "auto", "allow", "notify", "auto_rollback", "lock_timeout"}
	strategyKeys = []string{"type", "max_parallel", "steps", "slot_label"}
	stepKeys     = []string{"nodes", "pause", "timeout"}
	healthKeys   = []string{"type", "url", "address", "command", "interval", "timeout", "healthy_threshold", "min_healthy_time", "healthy_deadline", "progress_deadline"}
	hookKeys     = []string{"before", "after", "rollback"}
	gateKeys     = []string{"requires", "approval", "windows", "freeze"}
	windowKeys   = []string{"days", "from", "to", "timezone"}
	freezeKeys   = []string{"from", "to", "reason"}
	autoKeys     = []string{"branches", "events"}
	allowKeys    = []string{"users", "role", "branches"}
	approvalKeys = []string{"role", "timeout"}
	days         = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	roles        = []string{"read", "write", "admin"}
	events       = []string{"push", "tag", "pull_request", "cron", "custom", "promote", "rollback"}
)

// decoder collects the problems of one document.
type decoder struct{ errs []*pipeline.Error }

func (d *decoder) errorf(n *yaml.Node, key, format string, a ...any) {
	d.errs = append(d.errs, &pipeline.Error{Line: n.Line, Column: n.Column, Key: key, Msg: fmt.Sprintf(format, a...)})
}

// fields visits the pairs of mapping n, reporting keys not in valid, and
// calls fn for each known one. key is the path of n.
func (d *decoder) fields(n *yaml.Node, key string, valid []string, fn func(k string, v *yaml.Node)) bool {
	n = yamlutil.Deref(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, key, "%s must be a map with keys %s, got %s", key, strings.Join(valid, ", "), yamlutil.Describe(n))
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamlutil.Deref(n.Content[i+1])
		full := k.Value
		if key != "" {
			full = key + "." + k.Value
		}
		if !contains(valid, k.Value) {
			msg := fmt.Sprintf("unknown key %q", full)
			if s := pipeline.Closest(k.Value, valid); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.errorf(k, full, "%s; valid keys are: %s", msg, strings.Join(valid, ", "))
			continue
		}
		fn(k.Value, v)
	}
	return true
}

func join(key, k string) string {
	if key == "" {
		return k
	}
	return key + "." + k
}

func (d *decoder) str(n *yaml.Node, key string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, key, "%s must be a string, got %s", key, yamlutil.Describe(n))
		return ""
	}
	return n.Value
}

func (d *decoder) oneOf(n *yaml.Node, key string, valid []string) string {
	s := d.str(n, key)
	if s != "" && !contains(valid, s) {
		msg := fmt.Sprintf("%s: unknown value %q", key, s)
		if c := pipeline.Closest(s, valid); c != "" {
			msg += fmt.Sprintf("; did you mean %q?", c)
		}
		d.errorf(n, key, "%s; valid values are: %s", msg, strings.Join(valid, ", "))
		return ""
	}
	return s
}

func (d *decoder) strList(n *yaml.Node, key string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, key, "%s must be a string or a list of strings, got %s", key, yamlutil.Describe(n))
		return nil
	}
	var out []string
	for i, c := range n.Content {
		out = append(out, d.str(yamlutil.Deref(c), fmt.Sprintf("%s[%d]", key, i)))
	}
	return out
}

func (d *decoder) strMap(n *yaml.Node, key string) map[string]string {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, key, "%s must be a map of strings (label: value), got %s", key, yamlutil.Describe(n))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = d.str(yamlutil.Deref(n.Content[i+1]), join(key, n.Content[i].Value))
	}
	return out
}

func (d *decoder) duration(n *yaml.Node, key string) time.Duration {
	s := d.str(n, key)
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.errorf(n, key, "%s: %q is not a duration; write e.g. 500ms, 10s, 5m or 1h", key, s)
		return 0
	}
	return v
}

// positive reads a duration that must be more than 0.
func (d *decoder) positive(n *yaml.Node, key string) time.Duration {
	before := len(d.errs)
	v := d.duration(n, key)
	if v == 0 && len(d.errs) == before {
		d.errorf(n, key, "%s: %q: want a duration of more than 0, e.g. 30m or 24h", key, n.Value)
	}
	return v
}

func (d *decoder) integer(n *yaml.Node, key string) int {
	s := d.str(n, key)
	v, err := strconv.Atoi(s)
	if s != "" && (err != nil || v < 0) {
		d.errorf(n, key, "%s: %q is not a whole number of at least 0", key, s)
	}
	return v
}

func (d *decoder) boolean(n *yaml.Node, key string) bool {
	switch d.str(n, key) {
	case "true":
		return true
	case "false":
		return false
	}
	d.errorf(n, key, "%s must be true or false, got %s", key, yamlutil.Describe(n))
	return false
}

// amount reads "3" or "25%".
func (d *decoder) amount(n *yaml.Node, key string) Amount {
	s := d.str(n, key)
	a := Amount{}
	num := s
	if strings.HasSuffix(s, "%") {
		a.Percent, num = true, strings.TrimSuffix(s, "%")
	}
	v, err := strconv.Atoi(num)
	if s != "" && (err != nil || v < 1 || a.Percent && v > 100) {
		d.errorf(n, key, "%s: %q: want a number of nodes (at least 1) or a percentage such as 25%%", key, s)
		return Amount{}
	}
	a.N = v
	return a
}

func decodeService(n *yaml.Node) (any, []*pipeline.Error) {
	d := &decoder{}
	s := &Service{Pos: pipeline.Pos{Line: n.Line, Column: n.Column}}
	d.fields(n, "", serviceKeys, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			s.Name = d.str(v, "name")
			if s.Name != "" && !validName(s.Name) {
				d.errorf(v, "name", "name %q: want lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, at most 63 characters", s.Name)
			}
		case "artifact":
			d.fields(v, "artifact", artifactKeys, func(k string, v *yaml.Node) {
				key := "artifact." + k
				switch k {
				case "url":
					s.Artifact.URL = d.str(v, key)
				case "path":
					s.Artifact.Path = d.str(v, key)
				case "image":
					s.Artifact.Image = d.str(v, key)
				case "format":
					s.Artifact.Format = d.oneOf(v, key, []string{"tar.gz", "file"})
				}
			})
		case "environments":
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "environments", "environments must be a list of environments (each with a name and nodes), got %s", yamlutil.Describe(v))
				return
			}
			seen := map[string]bool{}
			for i, c := range v.Content {
				e := d.environment(yamlutil.Deref(c), fmt.Sprintf("environments[%d]", i))
				if e == nil {
					continue
				}
				if seen[e.Name] {
					d.errorf(c, fmt.Sprintf("environments[%d]", i), "environment %q is declared twice", e.Name)
				}
				seen[e.Name] = true
				s.Environments = append(s.Environments, e)
			}
		}
	})
	if s.Name == "" {
		d.errorf(n, "name", "a service needs a name")
	}
	if len(s.Environments) == 0 {
		d.errorf(n, "environments", "service %q declares no environments; add environments: [{name: production, nodes: {role: web}}]", s.Name)
	}
	if a := s.Artifact; a.Image != "" && (a.URL != "" || a.Path != "") {
		d.errorf(n, "artifact", "artifact has an image and a url or path; a release is one or the other")
	}
	// requires must name an earlier environment of the service.
	for i, e := range s.Environments {
		for _, r := range e.Gates.Requires {
			found := false
			for _, prev := range s.Environments[:i] {
				found = found || prev.Name == r
			}
			if !found {
				d.errorf(n, fmt.Sprintf("environments[%d].gates.requires", i), "environment %q requires %q, which is not an earlier environment of service %q", e.Name, r, s.Name)
			}
		}
	}
	return s, d.errs
}

func (d *decoder) environment(n *yaml.Node, key string) *Environment {
	e := &Environment{AutoRollback: true, Strategy: Strategy{Type: "rolling"}}
	e.Health.HealthyDeadline = nodeproto.Duration(DefaultHealthyDeadline)
	e.Health.ProgressDeadline = DefaultProgressDeadline
	if !d.fields(n, key, envKeys, func(k string, v *yaml.Node) {
		kk := join(key, k)
		switch k {
		case "name":
			e.Name = d.str(v, kk)
			if e.Name != "" && !validName(e.Name) {
				d.errorf(v, kk, "%s %q: want lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", kk, e.Name)
			}
		case "nodes":
			e.Nodes = d.strMap(v, kk)
		case "strategy":
			d.strategy(v, kk, &e.Strategy)
		case "health":
			d.health(v, kk, &e.Health)
		case "hooks":
			d.fields(v, kk, hookKeys, func(k string, v *yaml.Node) {
				l := d.strList(v, join(kk, k))
				switch k {
				case "before":
					e.Hooks.Before = l
				case "after":
					e.Hooks.After = l
				case "rollback":
					e.Hooks.Rollback = l
				}
			})
		case "gates":
			d.gates(v, kk, &e.Gates)
		case "auto":
			e.Auto = &Auto{Events: []string{"push"}}
			d.fields(v, kk, autoKeys, func(k string, v *yaml.Node) {
				switch k {
				case "branches":
					e.Auto.Branches = d.globs(v, join(kk, k))
				case "events":
					e.Auto.Events = nil
					for i, ev := range d.strList(v, join(kk, k)) {
						if !contains(events, ev) {
							d.errorf(v, join(kk, k), "%s[%d]: unknown event %q; valid events are: %s", join(kk, k), i, ev, strings.Join(events, ", "))
						}
						e.Auto.Events = append(e.Auto.Events, ev)
					}
				}
			})
		case "allow":
			d.fields(v, kk, allowKeys, func(k string, v *yaml.Node) {
				switch k {
				case "users":
					e.Allow.Users = d.strList(v, join(kk, k))
				case "role":
					e.Allow.Role = d.oneOf(v, join(kk, k), roles)
				case "branches":
					e.Allow.Branches = d.globs(v, join(kk, k))
				}
			})
		case "notify":
			// The entries are notify.Config, decoded and validated by
			// internal/notify, so a service takes every key --notify does.
			cfgs, errs := notify.DecodeNode(v, kk)
			d.errs = append(d.errs, errs...)
			e.Notify = append(e.Notify, cfgs...)
		case "auto_rollback":
			e.AutoRollback = d.boolean(v, kk)
		case "lock_timeout":
			e.LockTimeout = d.duration(v, kk)
		}
	}) {
		return nil
	}
	if e.Name == "" {
		d.errorf(n, join(key, "name"), "%s needs a name", key)
	}
	if len(e.Nodes) == 0 {
		d.errorf(n, join(key, "nodes"), "environment %q needs nodes: a label selector such as {role: web}", e.Name)
	}
	return e
}

func (d *decoder) globs(n *yaml.Node, key string) []string {
	l := d.strList(n, key)
	for _, g := range l {
		if _, err := path.Match(g, ""); err != nil {
			d.errorf(n, key, "%s: %q is not a valid glob pattern", key, g)
		}
	}
	return l
}

func (d *decoder) strategy(n *yaml.Node, key string, s *Strategy) {
	var stepsNode *yaml.Node
	if n.Kind == yaml.ScalarNode {
		s.Type = d.oneOf(n, key, Strategies)
	} else {
		d.strategyFields(n, key, s, &stepsNode)
	}
	if s.Type == "" {
		s.Type = "rolling"
	}
	if s.Type == "canary" && len(s.Steps) == 0 {
		d.errorf(n, join(key, "steps"), "a canary strategy needs steps, e.g. [{nodes: 1, pause: 5m}, {nodes: 50%%, pause: manual}]")
	}
	if s.Type != "canary" && stepsNode != nil {
		d.errorf(stepsNode, join(key, "steps"), "steps belong to the canary strategy, not %s", s.Type)
	}
	if s.Type == "blue-green" && s.SlotLabel == "" {
		s.SlotLabel = "slot"
	}
}

func (d *decoder) strategyFields(n *yaml.Node, key string, s *Strategy, stepsNode **yaml.Node) {
	d.fields(n, key, strategyKeys, func(k string, v *yaml.Node) {
		kk := join(key, k)
		switch k {
		case "type":
			s.Type = d.oneOf(v, kk, Strategies)
		case "max_parallel":
			s.MaxParallel = d.amount(v, kk)
		case "slot_label":
			s.SlotLabel = d.str(v, kk)
		case "steps":
			*stepsNode = v
			// The step being decoded: its timeout, which needs pause: manual.
			var timeoutNode *yaml.Node
			var timeoutKey string
			s.Steps = decodeList(d, v, kk, "{nodes, pause}", stepKeys, func(st *CanaryStep, fk, k string, v *yaml.Node) {
				switch k {
				case "nodes":
					st.Nodes = d.amount(v, fk)
				case "pause":
					if v.Value == "manual" {
						st.Manual = true
					} else {
						st.Pause = d.duration(v, fk)
					}
				case "timeout":
					timeoutNode, timeoutKey = v, fk
					st.Timeout = d.positive(v, fk)
				}
			}, func(st *CanaryStep) string {
				switch {
				case timeoutNode != nil && !st.Manual:
					d.errorf(timeoutNode, timeoutKey, "%s bounds a manual pause; add pause: manual or remove it", timeoutKey)
				case st.Manual && st.Timeout == 0:
					st.Timeout = DefaultApprovalTimeout
				}
				timeoutNode = nil
				if st.Nodes.N == 0 {
					return "needs nodes: a count (1) or a percentage (10%)"
				}
				return ""
			})
		}
	})
}

func (d *decoder) health(n *yaml.Node, key string, h *Health) {
	d.fields(n, key, healthKeys, func(k string, v *yaml.Node) {
		kk := join(key, k)
		switch k {
		case "type":
			h.Type = d.oneOf(v, kk, []string{"http", "tcp", "command"})
		case "url":
			h.URL = d.str(v, kk)
		case "address":
			h.Address = d.str(v, kk)
		case "command":
			h.Command = d.str(v, kk)
		case "interval":
			h.Interval = nodeproto.Duration(d.duration(v, kk))
		case "timeout":
			h.Timeout = nodeproto.Duration(d.duration(v, kk))
		case "healthy_threshold":
			h.HealthyThreshold = d.integer(v, kk)
		case "min_healthy_time":
			h.MinHealthyTime = nodeproto.Duration(d.duration(v, kk))
		case "healthy_deadline":
			h.HealthyDeadline = nodeproto.Duration(d.duration(v, kk))
		case "progress_deadline":
			h.ProgressDeadline = d.duration(v, kk)
		}
	})
	need := map[string]string{"http": h.URL, "tcp": h.Address, "command": h.Command}
	field := map[string]string{"http": "url", "tcp": "address", "command": "command"}
	if h.Type != "" && need[h.Type] == "" {
		d.errorf(n, join(key, field[h.Type]), "a %s health check needs %s", h.Type, field[h.Type])
	}
	if h.Type == "" && (h.URL != "" || h.Address != "" || h.Command != "") {
		d.errorf(n, join(key, "type"), "health needs a type: http, tcp or command")
	}
}

func (d *decoder) gates(n *yaml.Node, key string, g *Gates) {
	d.fields(n, key, gateKeys, func(k string, v *yaml.Node) {
		kk := join(key, k)
		switch k {
		case "requires":
			g.Requires = d.strList(v, kk)
		case "approval":
			// approval: admin, or approval: {role: admin, timeout: 4h}.
			if v.Kind == yaml.MappingNode {
				d.fields(v, kk, approvalKeys, func(k string, v *yaml.Node) {
					switch k {
					case "role":
						g.Approval = d.oneOf(v, join(kk, k), roles)
					case "timeout":
						g.ApprovalTimeout = d.positive(v, join(kk, k))
					}
				})
				if g.Approval == "" {
					d.errorf(v, join(kk, "role"), "%s needs a role: one of %s", kk, strings.Join(roles, ", "))
				}
			} else {
				g.Approval = d.oneOf(v, kk, roles)
			}
			if g.Approval != "" && g.ApprovalTimeout == 0 {
				g.ApprovalTimeout = DefaultApprovalTimeout
			}
		case "windows":
			g.Windows = decodeList(d, v, kk, "{days, from, to, timezone}", windowKeys, func(w *Window, fk, k string, v *yaml.Node) {
				switch k {
				case "days":
					for _, day := range d.strList(v, fk) {
						day = strings.ToLower(day)
						if !contains(days, day) {
							d.errorf(v, fk, "%s: unknown day %q; valid days are: %s", fk, day, strings.Join(days, ", "))
						}
						w.Days = append(w.Days, day)
					}
				case "from", "to":
					t := d.str(v, fk)
					if !validClock(t) {
						d.errorf(v, fk, "%s: %q: want a time of day HH:MM such as 09:00", fk, t)
					}
					if k == "from" {
						w.From = t
					} else {
						w.To = t
					}
				case "timezone":
					w.Timezone = d.str(v, fk)
					if _, err := time.LoadLocation(w.Timezone); err != nil {
						d.errorf(v, fk, "%s: unknown time zone %q; use an IANA name such as Europe/Paris", fk, w.Timezone)
					}
				}
			}, func(w *Window) string {
				if w.From == "" || w.To == "" {
					return "needs from and to (HH:MM)"
				}
				return ""
			})
		case "freeze":
			g.Freezes = decodeList(d, v, kk, "{from, to, reason}", freezeKeys, func(f *Freeze, fk, k string, v *yaml.Node) {
				switch k {
				case "from", "to":
					s := d.str(v, fk)
					t, err := time.Parse(time.RFC3339, s)
					if err != nil {
						t, err = time.Parse("2006-01-02", s)
					}
					if err != nil {
						d.errorf(v, fk, "%s: %q: want a date (2026-12-24) or a time (2026-12-24T18:00:00Z)", fk, s)
					}
					if k == "from" {
						f.From = t
					} else {
						f.To = t
					}
				case "reason":
					f.Reason = d.str(v, fk)
				}
			}, func(f *Freeze) string {
				if f.From.IsZero() || f.To.IsZero() || !f.From.Before(f.To) {
					return "needs from before to"
				}
				return ""
			})
		}
	})
}

// decodeList decodes the list v at key (shape names its items in the
// error when v is no list), each item a map with the keys valid: field is
// called for each key of an item with the item's value, the key's path, the
// key and its value; check then names what the item lacks as a whole ("" for
// nothing).
func decodeList[T any](d *decoder, v *yaml.Node, key, shape string, valid []string,
	field func(t *T, fk, k string, v *yaml.Node), check func(t *T) string) []T {
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, key, "%s must be a list of %s, got %s", key, shape, yamlutil.Describe(v))
		return nil
	}
	var out []T
	for i, c := range v.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		var t T
		d.fields(c, ik, valid, func(k string, v *yaml.Node) { field(&t, join(ik, k), k, v) })
		if msg := check(&t); msg != "" {
			d.errorf(yamlutil.Deref(c), ik, "%s %s", ik, msg)
		}
		out = append(out, t)
	}
	return out
}

// validName reports whether s may name a service or environment: lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit, at most
// 63 characters. (No regexp: compiling one at start-up costs every ferry
// command.)
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// validClock reports whether s is a time of day HH:MM.
func validClock(s string) bool {
	t, err := time.Parse("15:04", s)
	return err == nil && t.Format("15:04") == s
}
