// Package yamlutil holds the small helpers over YAML nodes that ferry's
// configuration decoders share (pipelines, deploy specs, notify blocks).
// It is a leaf: it imports the YAML library only.
package yamlutil

import (
	"fmt"

	"go.yaml.in/yaml/v4"
)

// maxAliasDepth bounds how many aliases Deref follows.
const maxAliasDepth = 100

// Deref follows aliases to the node they name. A nil node (a missing
// value) is returned as nil.
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

// Describe names what a node holds, for "got ..." messages: "a map",
// "a list", "nothing" (null) or a scalar's value, quoted.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
