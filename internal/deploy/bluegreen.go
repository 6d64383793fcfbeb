package deploy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferryci/ferry/internal/deploy/spec"
)

func init() { RegisterStrategy("blue-green", blueGreen{}) }

// blueGreen has two slots of nodes, told apart by the value of the
// strategy's slot label (default "slot": blue or green), behind one load
// balancer, of which only the live slot is in rotation. It plans two
// batches:
//
//  1. the idle slot installs the release, all at once, out of rotation
//     (Standby): each node drains itself first, and its health check
//     gates the batch while no request reaches it;
//  2. the switch (SwitchIn): the idle slot enters the rotation, and once
//     every node of it serves, the live slot leaves it. The live slot
//     keeps its release, so that a rollback is a switch back, with no
//     download and no restart.
//
// The next deployment goes to the slot that is idle then. The live slot
// is the one whose nodes serve (as the server last asked them, else as
// they report); when that does not tell (the first blue-green
// deployment), it is the slot whose nodes run a release other than the
// new one most, and blue is idle on a tie. Every node must
// have a load balancer for the service (ferry node's services.NAME.lb):
// that is where the switch happens.
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
		if t.LB == "" {
			return nil, fmt.Errorf("blue-green: node %s reports no load balancer for the service; blue-green switches slots at each node's load balancer: configure the service's lb in the node's configuration (services.NAME.lb), on a ferry node recent enough to report it", t.Name)
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
	count := func(slot string, f func(Target) bool) int {
		n := 0
		for _, t := range slots[slot] {
			if f(t) {
				n++
			}
		}
		return n
	}
	serving := func(t Target) bool { return t.Serving != nil && *t.Serving }
	running := func(t Target) bool { return t.Current != "" && t.Current != release }
	idle, live := names[0], names[1]
	si, sl := count(idle, serving), count(live, serving)
	switch {
	case si > 0 && sl == 0:
		idle, live = live, idle
	case sl > 0 && si == 0:
	case count(idle, running) > count(live, running):
		idle, live = live, idle
	}
	return []Batch{
		{Nodes: ids(slots[idle]), Standby: true},
		{Nodes: ids(slots[live]), SwitchIn: ids(slots[idle])},
	}, nil
}
