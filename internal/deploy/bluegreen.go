package deploy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferryci/ferry/internal/deploy/spec"
)

func init() { RegisterStrategy("blue-green", blueGreen{}) }

// blueGreen has two slots of nodes, told apart by the value of the
// strategy's slot label (default "slot": blue or green). The idle slot
// (the one whose nodes run the release least) gets the release first, all
// at once, and must pass its health checks; only then does the live slot
// follow, all at once. The load balancer switches per node: each node
// drains itself before its switch and re-enables itself once healthy
// (ferry node's lb), so traffic moves to the idle slot while the live one
// updates. A failure in the idle slot never touches the live one.
type blueGreen struct{}

func (blueGreen) Plan(ts []Target, env *spec.Environment, release string) ([]Batch, error) {
	label := env.Strategy.SlotLabel
	if label == "" {
		label = "slot"
	}
	slots := map[string][]Target{}
	for _, t := range ts {
		v := t.Labels[label]
		if v == "" {
			return nil, fmt.Errorf("blue-green: node %s has no %q label; label each node %s=blue or %s=green", t.Name, label, label, label)
		}
		slots[v] = append(slots[v], t)
	}
	names := make([]string, 0, len(slots))
	for n := range slots {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) != 2 {
		return nil, fmt.Errorf("blue-green: want nodes in two slots by label %q, found %d (%s)", label, len(names), strings.Join(names, ", "))
	}
	// running counts the nodes of a slot that run the current release of
	// the environment (anything but the new one): the live slot.
	live := func(slot string) int {
		n := 0
		for _, t := range slots[slot] {
			if t.Current != "" && t.Current != release {
				n++
			}
		}
		return n
	}
	idle, busy := names[0], names[1]
	if live(idle) > live(busy) {
		idle, busy = busy, idle
	}
	return []Batch{{Nodes: ids(slots[idle])}, {Nodes: ids(slots[busy])}}, nil
}
