package pipeline

import (
	"slices"
	"sync"

	"go.yaml.in/yaml/v4"
)

// KindDecoder decodes a document of a kind that another package owns,
// such as the deploy "service" kind (internal/deploy/spec). It gets the
// document's root mapping, with line numbers counted from the document's
// start, and returns the decoded value and every problem it found, each
// with Line, Column, Key and Msg set (Parse adds the file and the
// document's offset). It must not panic and must not keep n.
type KindDecoder func(n *yaml.Node) (any, []*Error)

var (
	kindsMu    sync.RWMutex
	extraKinds = map[string]KindDecoder{}
)

// RegisterKind makes Parse accept documents of kind, decoded and checked by
// dec; the values land in Config.Documents. Packages call it from init.
// Registering a built-in kind or a kind twice panics.
func RegisterKind(kind string, dec KindDecoder) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if slices.Contains(validKinds, kind) || extraKinds[kind] != nil {
		panic("pipeline: kind " + kind + " registered twice")
	}
	extraKinds[kind] = dec
	validKinds = append(validKinds, kind)
}

// Document is a decoded document of a registered kind.
type Document struct {
	// Kind is the document's kind.
	Kind string
	// Pos is where the document starts.
	Pos Pos
	// Value is what the kind's decoder returned.
	Value any
}

// documentedKinds are the kinds an "unknown kind" message lists: the
// built-in ones ferry uses, then the registered ones.
func documentedKinds() []string {
	out := []string{"pipeline", "secret", "signature", "template"}
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	for k := range extraKinds {
		out = append(out, k)
	}
	slices.Sort(out[4:])
	return out
}

func kindDecoder(kind string) KindDecoder {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	return extraKinds[kind]
}
