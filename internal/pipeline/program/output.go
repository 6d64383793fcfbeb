package program

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v4"
)

// output collects the documents a program returns as YAML nodes, counting
// their size so that a program returning too much is stopped while its
// result is converted, before the YAML text is written.
type output struct {
	max  int
	size int
	docs []*yaml.Node
}

// charge counts n bytes and reports whether the output is still within
// its bound.
func (o *output) charge(n int) error {
	o.size += n
	if o.size > o.max {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, o.max)
	}
	return nil
}

func scalar(tag, value string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	if tag == "!!str" && bytes.ContainsRune([]byte(value), '\n') {
		n.Style = yaml.LiteralStyle
	}
	return n
}

// bytes writes the documents, each after a "---" line.
func (o *output) bytes() ([]byte, error) {
	var buf bytes.Buffer
	for _, d := range o.docs {
		buf.WriteString("---\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("writing the generated YAML: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("writing the generated YAML: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// blockStyle clears the flow style JSON input comes with, so that the
// generated YAML has one key per line and errors point at useful lines.
func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode {
		n.Style &^= yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
		if n.Tag == "!!str" && bytes.ContainsRune([]byte(n.Value), '\n') {
			n.Style = yaml.LiteralStyle
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
