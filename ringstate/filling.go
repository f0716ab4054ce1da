package ringstate

import "github.com/ringway/ringway/ring"

// KindFilledNodes is carriage kind 7: the members whose fill is done
// (forward/fill.go; docs/forward.md "The fill"), a NodeSet. Each node
// writes itself at its own turns, as it writes its health (kind 5): in
// the set while a member whose fill is done, out of it otherwise; every
// holder strikes the nodes that are no longer members, so a node that
// comes back to the ring (restarted, or dropped for a moment) is not
// filled until it says so again. Every member builds the flow directory
// from the committed membership and this set (forward.NewFillingDirectory:
// the unfilled members rank last), so all build the same.
//
// Only holders with Config.Filling set (nodes running the stateful
// filter's symmetric routing) write it; others pass it on untouched.
// Absent means nobody filled, which the directory takes as everybody
// alike.
const KindFilledNodes uint16 = 7

// Filled returns the nodes carriages cs mark as filled.
func Filled(cs []ring.Carriage) NodeSet { return nodeSet(cs, KindFilledNodes) }
