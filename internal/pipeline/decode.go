package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/yamlutil"
)

// maxNodes bounds how many nodes one file may expand to once aliases are
// followed. Real pipeline files stay far below it; the bound stops a
// "billion laughs" file from exhausting memory or time.
const maxNodes = 1 << 18

// decoder walks YAML nodes into the typed config, collecting every
// problem instead of stopping at the first. It follows aliases and merge
// keys itself, because the Node API leaves them unresolved.
type decoder struct {
	file string
	// offset is added to node lines: each document is parsed on its own,
	// starting at this line of the file.
	offset int
	errs   Errors
	pos    *positions
	// budget counts down the nodes left to visit (see maxNodes).
	budget    int
	exhausted bool
	// combined holds the mappings lastWins made of a key written twice.
	combined map[*yaml.Node]bool
	// template is the first template call of the file, if any.
	template *templateCall
}

// pair is one key and its value in a mapping, after merge keys have been
// applied.
type pair struct {
	key *yaml.Node
	val *yaml.Node
}

func (d *decoder) posOf(n *yaml.Node) Pos {
	return Pos{Line: n.Line + d.offset, Column: n.Column}
}

func (d *decoder) errorAt(pos Pos, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{
		File:   d.file,
		Line:   pos.Line,
		Column: pos.Column,
		Key:    key,
		Msg:    fmt.Sprintf(format, args...),
	})
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	d.errorAt(d.posOf(n), key, format, args...)
}

// warnf records a warning at n: something Drone tolerates (see
// Error.Warning).
func (d *decoder) warnf(n *yaml.Node, key, format string, args ...any) {
	d.errorf(n, key, format, args...)
	d.errs[len(d.errs)-1].Warning = true
}

// visit charges one node against the budget and reports whether decoding
// may go on.
func (d *decoder) visit(n *yaml.Node) bool {
	if d.exhausted {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.exhausted = true
		d.errorf(n, "", "the file expands to more than %d values through aliases; simplify the anchors", maxNodes)
		return false
	}
	return true
}

// breakAliasCycles reports and defuses every alias that names one of its
// own ancestors ("&a [*a]"), which would make the value contain itself.
// Such an alias can only point backwards to an anchor that is still open,
// so after this pass every walk that follows aliases terminates.
func (d *decoder) breakAliasCycles(root *yaml.Node) {
	var open []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			if n.Alias != nil && slices.Contains(open, n.Alias) {
				d.errorf(n, "", "alias *%s refers to an anchor that contains it; a value cannot contain itself", n.Value)
				*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
			}
			return
		}
		open = append(open, n)
		for _, c := range n.Content {
			walk(c)
		}
		open = open[:len(open)-1]
	}
	walk(root)
}

// isNull reports whether n is absent or an explicit null ("key:", "~").
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names the kind of a node for "got ..." messages.
func describe(n *yaml.Node) string {
	if isNull(n) {
		return "nothing (null)"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		default:
			return "a string"
		}
	}
	return "an unsupported value"
}

// mapping returns the pairs of a mapping node. A null value is an empty
// mapping. Any other kind is reported as "<what> must be a map".
func (d *decoder) mapping(n *yaml.Node, what, key string) ([]pair, bool) {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(at, key, "%s must be a map, got %s", what, describe(n))
		return nil, false
	}
	return d.pairs(n, what, key), true
}

// pairs lists the keys of mapping n in order, applying merge keys ("<<")
// the way YAML 1.1 defines them: keys written in n win over merged ones,
// and among several merged mappings the earlier one wins. A key written
// twice in n is a warning and its later value wins, as in Drone (see
// lastWins).
func (d *decoder) pairs(n *yaml.Node, what, key string) []pair {
	if !d.visit(n) {
		return nil
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	at := map[string]int{}          // index in out of each key written in n
	again := map[int][]*yaml.Node{} // the later values of keys written twice
	var merged [][]pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(v, what, key)...)
			continue
		}
		rk := yamlutil.Deref(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			d.errorf(k, key, "keys in %s must be strings, got %s", what, describe(rk))
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			// A key written again only to hold another anchor
			// ("define: &a ..." three times) is not a mistake.
			j := at[rk.Value]
			anchors := v.Anchor != "" && out[j].val != nil && out[j].val.Anchor != ""
			if c := len(again[j]); c > 0 {
				anchors = v.Anchor != "" && again[j][c-1].Anchor != ""
			}
			if !d.combined[n] && !anchors {
				d.warnf(k, join(key, rk.Value), "key %q is defined twice in %s (first at line %d); Drone reads both and the later value wins (maps are combined), and so does ferry: remove one of them", rk.Value, what, first.Line+d.offset)
			}
			again[j] = append(again[j], v)
			continue
		}
		seen[rk.Value] = k
		at[rk.Value] = len(out)
		out = append(out, pair{key: rk, val: v})
	}
	for j, later := range again {
		out[j].val = d.lastWins(append([]*yaml.Node{out[j].val}, later...))
	}
	for _, src := range merged {
		for _, p := range src {
			if _, ok := seen[p.key.Value]; ok {
				continue
			}
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

// lastWins is the value of a key written more than once in one mapping,
// as Drone's YAML decoder (a fork of yaml.v2, not strict) reads it: a later
// value replaces the earlier ones, except that mappings written one after
// the other are combined, the later one's keys winning, because the
// decoder fills the same map or struct again. The combined mapping is a
// new node, marked so that the keys it repeats are not reported again. It
// is built once from all the values, so repeating a key n times costs n,
// not n².
func (d *decoder) lastWins(vals []*yaml.Node) *yaml.Node {
	first := len(vals) - 1
	for first > 0 && isMapping(yamlutil.Deref(vals[first])) && isMapping(yamlutil.Deref(vals[first-1])) {
		first--
	}
	if first == len(vals)-1 {
		return vals[first]
	}
	last := yamlutil.Deref(vals[len(vals)-1])
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: last.Line, Column: last.Column}
	for _, v := range vals[first:] {
		m.Content = append(m.Content, yamlutil.Deref(v).Content...)
	}
	if d.combined == nil {
		d.combined = map[*yaml.Node]bool{}
	}
	d.combined[m] = true
	return m
}

func isMapping(n *yaml.Node) bool { return n != nil && n.Kind == yaml.MappingNode }

// mergeSources resolves the value of a "<<" key: a mapping, or a list of
// mappings, usually given as aliases.
func (d *decoder) mergeSources(v *yaml.Node, what, key string) [][]pair {
	at := v
	v = yamlutil.Deref(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return [][]pair{d.pairs(v, what, key)}
	case v.Kind == yaml.SequenceNode:
		var out [][]pair
		for _, item := range v.Content {
			m := yamlutil.Deref(item)
			if m == nil || m.Kind != yaml.MappingNode {
				d.errorf(item, key, "each item of the << list in %s must be a map, got %s", what, describe(m))
				continue
			}
			out = append(out, d.pairs(m, what, key))
		}
		return out
	default:
		d.errorf(at, key, "the value of << in %s must be a map or a list of maps, got %s", what, describe(v))
		return nil
	}
}

// checkKeys warns about every key of ps that is not in valid: Drone's
// parser ignores keys it does not know, and so does ferry, but a typo
// deserves a word. Two kinds of extra keys are let through silently
// because real Drone files use them to hold anchors: keys starting with
// "x-", the extension-field convention of Docker Compose, and keys whose
// value defines an anchor ("defaults: &defaults {...}"). Neither is a typo.
// Known legacy forms (Drone 0.8's, keys written one level too high or too
// low) get a warning that names the form to write instead.
//
// It returns the valid keys it suggested in place of unknown ones, so that
// a caller can tell that "imagee" was meant as the image.
func (d *decoder) checkKeys(ps []pair, valid []string, what, key string) (meant []string) {
	for _, p := range ps {
		if strings.HasPrefix(p.key.Value, "x-") || (p.val != nil && p.val.Anchor != "") {
			continue
		}
		if slices.Contains(valid, p.key.Value) {
			continue
		}
		k := join(key, p.key.Value)
		if hint := legacyHint(what, p.key.Value); hint != "" {
			d.warnf(p.key, k, "%s", hint)
			continue
		}
		msg := fmt.Sprintf("unknown key %q in %s is ignored; ", p.key.Value, what)
		if s := closest(p.key.Value, valid); s != "" {
			msg += fmt.Sprintf("did you mean %q? ", s)
			meant = append(meant, s)
		}
		msg += "valid keys are: " + strings.Join(slices.Sorted(slices.Values(valid)), ", ")
		d.warnf(p.key, k, "%s", msg)
	}
	return meant
}

// str decodes a scalar as the string it was written as. Numbers and
// booleans are accepted as written (Drone does the same); null is "".
func (d *decoder) str(n *yaml.Node, what, key string) (string, bool) {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(at, key, "%s must be a string, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// yaml11Bools holds the booleans of YAML 1.1, which Drone's YAML library
// accepts ("yes", "off", ...) and YAML 1.2 no longer resolves.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true,
	"on": true, "On": true, "ON": true,
	"true": true, "True": true, "TRUE": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false,
	"off": false, "Off": false, "OFF": false,
	"false": false, "False": false, "FALSE": false,
}

// plainBool reports whether n is an unquoted YAML 1.1 boolean, and which.
func plainBool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false, false
	}
	if t := n.ShortTag(); t != "!!bool" && t != "!!str" {
		return false, false
	}
	value, ok = yaml11Bools[n.Value]
	return value, ok
}

func (d *decoder) boolean(n *yaml.Node, what, key string) (bool, bool) {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return false, true
	}
	if n.Kind == yaml.ScalarNode {
		// Quoted "true" is accepted too: the intent is plain.
		if b, ok := yaml11Bools[n.Value]; ok {
			return b, true
		}
		d.errorf(at, key, "%s must be true or false, got %q", what, n.Value)
		return false, false
	}
	d.errorf(at, key, "%s must be true or false, got %s", what, describe(n))
	return false, false
}

func (d *decoder) integer(n *yaml.Node, what, key string) (int64, bool) {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return 0, true
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
		d.errorf(at, key, "%s is out of range: %s", what, n.Value)
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		d.errorf(at, key, "%s must be a whole number, got %q", what, n.Value)
	} else {
		d.errorf(at, key, "%s must be a whole number, got %s", what, describe(n))
	}
	return 0, false
}

// count decodes a non-negative integer that fits an int.
func (d *decoder) count(n *yaml.Node, what, key string) int {
	v, ok := d.integer(n, what, key)
	switch {
	case !ok:
		return 0
	case v < 0:
		d.errorf(n, key, "%s must not be negative, got %d", what, v)
		return 0
	case v > math.MaxInt32:
		d.errorf(n, key, "%s is too large: %d", what, v)
		return 0
	}
	return int(v)
}

// size decodes a byte size: a number, or a string with a unit as the
// Docker CLI accepts it ("64m", "1gb", "512MiB"), as Drone does.
func (d *decoder) size(n *yaml.Node, what, key string) int64 {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return 0
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, ok := d.integer(n, what, key)
		if ok && v < 0 {
			d.errorf(at, key, "%s must not be negative, got %d", what, v)
			return 0
		}
		return v
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(at, key, "%s must be a size such as 512m or 1gb, got %s", what, describe(n))
		return 0
	}
	v, err := units.RAMInBytes(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		d.errorf(at, key, "invalid size %q for %s; use a number of bytes or a number with a unit such as \"64m\", \"1gb\" or \"512MiB\"", n.Value, what)
		return 0
	}
	return v
}

// strList decodes a list of strings. A single string is accepted as a list
// of one, and null as an empty list. It returns the item nodes too, for
// positions.
func (d *decoder) strList(n *yaml.Node, what, key string) ([]string, []*yaml.Node) {
	at := n
	n = yamlutil.Deref(n)
	if isNull(n) {
		return nil, nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, []*yaml.Node{n}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		nodes := make([]*yaml.Node, 0, len(n.Content))
		for i, item := range n.Content {
			if !d.visit(item) {
				return out, nodes
			}
			itemAt := item
			item = yamlutil.Deref(item)
			if item == nil || item.Kind != yaml.ScalarNode {
				d.errorf(itemAt, index(key, i), "%s[%d] must be a string, got %s%s", what, i, describe(item), mapInListHint(item))
				continue
			}
			if isNull(item) {
				d.errorf(itemAt, index(key, i), "%s[%d] is empty; remove it or write a value", what, i)
				continue
			}
			out = append(out, item.Value)
			nodes = append(nodes, item)
		}
		return out, nodes
	default:
		d.errorf(at, key, "%s must be a list of strings, got %s", what, describe(n))
		return nil, nil
	}
}

// mapInListHint explains the most common cause of a map inside a list of
// commands: an unquoted ": " in the command.
func mapInListHint(n *yaml.Node) string {
	if n != nil && n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		return ` (YAML reads "key: value" as a map; quote the whole item if it contains ": ")`
	}
	return ""
}

// strMap decodes a map of strings (node labels); scalars are taken as
// written.
func (d *decoder) strMap(n *yaml.Node, what, key string) map[string]string {
	ps, _ := d.mapping(n, what, key)
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		v, ok := d.str(p.val, fmt.Sprintf("%s value of %q", what, p.key.Value), join(key, p.key.Value))
		if ok {
			out[p.key.Value] = v
		}
	}
	return out
}

// fromSecret recognises {from_secret: name}. It returns ok=false when the
// mapping is something else; problems with the reference are reported.
func (d *decoder) fromSecret(ps []pair, what, key string) (name string, isRef bool) {
	var ref *pair
	for i := range ps {
		if ps[i].key.Value == "from_secret" {
			ref = &ps[i]
		}
	}
	if ref == nil {
		return "", false
	}
	for _, p := range ps {
		if p.key.Value != "from_secret" {
			d.warnf(p.key, join(key, p.key.Value), "unexpected key %q next to from_secret in %s is ignored; a secret reference holds only from_secret", p.key.Value, what)
		}
	}
	name, ok := d.str(ref.val, what+".from_secret", join(key, "from_secret"))
	if ok && name == "" {
		d.errorf(d.derefOr(ref.val, ref.key), join(key, "from_secret"), "from_secret in %s needs the name of a secret", what)
	}
	return name, true
}

// derefOr returns the dereferenced n, or fallback when n is missing (a
// key without a value has no node of its own worth pointing at).
func (d *decoder) derefOr(n, fallback *yaml.Node) *yaml.Node {
	if r := yamlutil.Deref(n); r != nil && r.Line > 0 {
		return r
	}
	return fallback
}

// envMap decodes environment variables: each value is a scalar, taken as
// the string it was written as, or {from_secret: name}.
func (d *decoder) envMap(n *yaml.Node, what, key string) map[string]Value {
	ps, _ := d.mapping(n, what, key)
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]Value, len(ps))
	for _, p := range ps {
		name := p.key.Value
		k := join(key, name)
		v := yamlutil.Deref(p.val)
		if name == "" || strings.ContainsAny(name, "=\x00") {
			// No process's environment can hold it: the step would fail
			// when it starts.
			d.errorf(p.key, k, "%s name %q is not a variable name: it must not be empty or contain '=' or a NUL byte", what, name)
			continue
		}
		switch {
		case isNull(v):
			out[name] = Value{Raw: ""}
		case v.Kind == yaml.ScalarNode && strings.ContainsRune(v.Value, 0):
			d.errorf(v, k, "%s value of %q contains a NUL byte, which no process's environment can hold", what, name)
		case v.Kind == yaml.ScalarNode:
			out[name] = Value{Raw: v.Value}
		case v.Kind == yaml.MappingNode:
			ips := d.pairs(v, what, k)
			if secret, ok := d.fromSecret(ips, fmt.Sprintf("%s value of %q", what, name), k); ok {
				out[name] = Value{Secret: secret}
				continue
			}
			d.errorf(v, k, "%s value of %q must be a string, number, boolean or {from_secret: name}, got a map", what, name)
		default:
			d.errorf(v, k, "%s value of %q must be a string, number, boolean or {from_secret: name}, got %s", what, name, describe(v))
		}
	}
	return out
}

// settingsMap decodes plugin settings: any YAML value, or {from_secret:
// name}.
func (d *decoder) settingsMap(n *yaml.Node, what, key string) map[string]Value {
	ps, _ := d.mapping(n, what, key)
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]Value, len(ps))
	for _, p := range ps {
		name := p.key.Value
		k := join(key, name)
		v := yamlutil.Deref(p.val)
		if v != nil && v.Kind == yaml.MappingNode {
			ips := d.pairs(v, what, k)
			if secret, ok := d.fromSecret(ips, fmt.Sprintf("%s value of %q", what, name), k); ok {
				out[name] = Value{Secret: secret}
				continue
			}
		}
		out[name] = Value{Raw: d.anyValue(v, k)}
	}
	return out
}

// anyValue decodes a node into plain Go values: string, bool, int,
// float64, nil, []any or map[string]any. Scalars follow Drone's YAML 1.1
// reading (unquoted yes/no/on/off are booleans).
func (d *decoder) anyValue(n *yaml.Node, key string) any {
	n = yamlutil.Deref(n)
	if n == nil || !d.visit(n) {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		ps := d.pairs(n, "settings", key)
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			m[p.key.Value] = d.anyValue(p.val, join(key, p.key.Value))
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			l = append(l, d.anyValue(c, index(key, i)))
		}
		return l
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil
}

// scalarValue decodes one scalar.
func scalarValue(n *yaml.Node) any {
	if b, ok := plainBool(n); ok {
		return b
	}
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!int":
		var i int
		if err := n.Decode(&i); err == nil {
			return i
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	}
	return n.Value
}

// join appends a map key to a key path.
func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// index appends a list index to a key path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
