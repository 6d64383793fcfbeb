package notify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/pipeline"
	"github.com/ferryci/ferry/internal/yamlutil"
)

// yamlKeys are the keys of one notify: entry.
var yamlKeys = []string{"type", "url", "secret", "headers", "on", "timeout", "channel", "username", "icon", "tags"}

// LoadYAML reads notification endpoints from a YAML document: either a
// list of entries, or a map whose notify: key holds one. Every problem is
// reported as FILE:LINE:COL: message (a pipeline.Errors), naming the key,
// e.g. notify[1].timeout.
func LoadYAML(file string, data []byte) ([]Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil, nil
	}
	n := root.Content[0]
	key := "notify"
	if n.Kind == yaml.MappingNode {
		var list *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "notify" {
				list = n.Content[i+1]
			}
		}
		if list == nil {
			return nil, pipeline.Errors{{File: file, Line: n.Line, Column: n.Column, Msg: "no notify: key; write notify: followed by a list of {type, url}"}}
		}
		n = list
	}
	cfgs, errs := DecodeNode(n, key)
	for _, e := range errs {
		e.File = file
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfgs, nil
}

// DecodeNode decodes a notify: list node, naming its entries key[0],
// key[1], …, and validates each entry (Config.Validate). Errors carry the
// node's line and column and no file name; a caller that parses a larger
// document (the deploy spec) sets File and merges them with its own.
func DecodeNode(n *yaml.Node, key string) ([]Config, pipeline.Errors) {
	var errs pipeline.Errors
	errorf := func(n *yaml.Node, k, format string, a ...any) {
		errs = append(errs, &pipeline.Error{Line: n.Line, Column: n.Column, Key: k, Msg: k + ": " + fmt.Sprintf(format, a...)})
	}
	n = yamlutil.Deref(n)
	if n.Kind != yaml.SequenceNode {
		errorf(n, key, "must be a list of {type, url, …} entries, got %s", yamlutil.Describe(n))
		return nil, errs
	}
	var cfgs []Config
	for i, item := range n.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		item = yamlutil.Deref(item)
		if item.Kind != yaml.MappingNode {
			errorf(item, ik, "must be a map with keys type and url, got %s", yamlutil.Describe(item))
			continue
		}
		var c Config
		pos := map[string]*yaml.Node{}
		before := len(errs)
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], yamlutil.Deref(item.Content[j+1])
			kk := ik + "." + k.Value
			pos[k.Value] = v
			var err error
			switch k.Value {
			case "type":
				c.Type, err = scalar(v)
			case "url", "secret":
				var val, name string
				if val, name, err = valueOrSecret(v); err == nil {
					if name != "" {
						c.setFromSecret(k.Value, name)
					} else if k.Value == "url" {
						c.URL = val
					} else {
						c.Secret = val
					}
				}
			case "channel":
				c.Channel, err = scalar(v)
			case "username":
				c.Username, err = scalar(v)
			case "icon":
				c.Icon, err = scalar(v)
			case "on":
				c.On, err = strList(v)
			case "tags":
				c.Tags, err = strList(v)
			case "timeout":
				var s string
				if s, err = scalar(v); err == nil {
					if c.Timeout, err = time.ParseDuration(s); err != nil {
						err = fmt.Errorf("%q is not a duration; write e.g. 10s or 1m", s)
					}
				}
			case "headers":
				c.Headers, err = c.headers(v)
			default:
				errorf(k, kk, "unknown key; valid keys are %s", strings.Join(yamlKeys, ", "))
				continue
			}
			if err != nil {
				errorf(v, kk, "%v", err)
			}
		}
		if len(errs) > before {
			continue
		}
		if err := c.Validate(); err != nil {
			var fe *FieldError
			at, k := item, ik
			if errors.As(err, &fe) {
				field, index, _ := strings.Cut(fe.Field, "[")
				if v := pos[field]; v != nil {
					at = v
					// on[1] points at the list's second element.
					if i, err := strconv.Atoi(strings.TrimSuffix(index, "]")); err == nil && v.Kind == yaml.SequenceNode && i < len(v.Content) {
						at = v.Content[i]
					}
				}
				k = ik + "." + fe.Field
				err = errors.New(fe.Msg)
			}
			errorf(at, k, "%v", err)
			continue
		}
		cfgs = append(cfgs, c)
	}
	return cfgs, errs
}

func scalar(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", fmt.Errorf("must be a string, got %s", yamlutil.Describe(n))
	}
	return n.Value, nil
}

// strList accepts a list of strings or a single string.
func strList(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("must be a list of strings, got %s", yamlutil.Describe(n))
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := scalar(yamlutil.Deref(c))
		if err != nil {
			return nil, fmt.Errorf("must be a list of strings: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// headers decodes a map of header names to values, each a string or
// {from_secret: NAME}.
func (c *Config) headers(n *yaml.Node) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("must be a map of header names to values, got %s", yamlutil.Describe(n))
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		v, name, err := valueOrSecret(yamlutil.Deref(n.Content[i+1]))
		if err != nil {
			return nil, fmt.Errorf("%s %w", k, err)
		}
		if name != "" {
			c.setFromSecret("headers."+k, name)
			continue
		}
		out[k] = v
	}
	return out, nil
}

// valueOrSecret decodes a string, or {from_secret: NAME} (Drone's form),
// which returns the secret's name.
func valueOrSecret(n *yaml.Node) (value, secret string, err error) {
	if n.Kind != yaml.MappingNode {
		value, err = scalar(n)
		return value, "", err
	}
	if len(n.Content) != 2 || n.Content[0].Value != "from_secret" {
		return "", "", fmt.Errorf("must be a string or {from_secret: NAME}, got a map with other keys")
	}
	name, err := scalar(yamlutil.Deref(n.Content[1]))
	if err != nil || name == "" {
		return "", "", fmt.Errorf("from_secret must name a secret")
	}
	return "", name, nil
}

func (c *Config) setFromSecret(field, name string) {
	if c.FromSecret == nil {
		c.FromSecret = map[string]string{}
	}
	c.FromSecret[field] = name
}

// ParseFlag parses one --notify value (or one line of FERRY_NOTIFY):
//
//	TYPE=URL[;KEY=VALUE]...
//
// where KEY is secret, header (NAME: VALUE, repeatable), on (patterns
// separated by commas), timeout, channel, username, icon or tags (commas).
// For example:
//
//	webhook=https://hooks.example.com/ferry;secret=s3cret;on=build.failure,deployment.*
//	slack=https://hooks.slack.com/services/T0/B0/XXX;channel=#deploys
//	graphite=https://user:pass@graphite.example.com
//
// The result is validated; errors name the key.
func ParseFlag(s string) (Config, error) {
	parts := strings.Split(strings.TrimSpace(s), ";")
	typ, u, ok := strings.Cut(parts[0], "=")
	if !ok || typ == "" {
		return Config{}, fmt.Errorf("%q: write TYPE=URL[;KEY=VALUE]..., TYPE one of %s", redact(s), strings.Join(Types(), ", "))
	}
	c := Config{Type: strings.TrimSpace(typ), URL: strings.TrimSpace(u)}
	for _, p := range parts[1:] {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return Config{}, fmt.Errorf("%q: option %q needs a value: write KEY=VALUE", c.String(), k)
		}
		switch k {
		case "secret":
			c.Secret = v
		case "header":
			name, val, ok := strings.Cut(v, ":")
			if !ok {
				return Config{}, fmt.Errorf("%q: header %q: write header=NAME: VALUE", c.String(), v)
			}
			if c.Headers == nil {
				c.Headers = map[string]string{}
			}
			c.Headers[strings.TrimSpace(name)] = strings.TrimSpace(val)
		case "on":
			c.On = splitComma(v)
		case "tags":
			c.Tags = splitComma(v)
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return Config{}, fmt.Errorf("%q: timeout %q is not a duration; write e.g. 10s or 1m", c.String(), v)
			}
			c.Timeout = d
		case "channel":
			c.Channel = v
		case "username":
			c.Username = v
		case "icon":
			c.Icon = v
		default:
			return Config{}, fmt.Errorf("%q: unknown option %q; use secret, header, on, timeout, channel, username, icon or tags", c.String(), k)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%q: %w", c.String(), err)
	}
	return c, nil
}

// ParseFlags parses --notify values; a value holding several lines (the
// FERRY_NOTIFY variable) is one endpoint per line, blank lines ignored.
func ParseFlags(values []string) ([]Config, error) {
	var out []Config
	for _, v := range values {
		for line := range strings.Lines(v) {
			if strings.TrimSpace(line) == "" {
				continue
			}
			c, err := ParseFlag(line)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
