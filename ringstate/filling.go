package ringstate

import (
	"slices"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

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

// withFilled returns the turn's carriages cs with the filled set brought
// up to date for t: this node in it when a member and not filling
// (cfg.Filling), non-members out. Without cfg.Filling it returns cs.
func (cfg Config) withFilled(t ring.TokenView, cs []ring.Carriage) []ring.Carriage {
	if cfg.Filling == nil {
		return cs
	}
	var set NodeSet
	i := slices.IndexFunc(cs, func(c ring.Carriage) bool { return c.Kind == KindFilledNodes })
	if i >= 0 {
		_ = set.UnmarshalBinary(cs[i].Data) // unreadable: nobody filled, which is safe
		// One set: more (a forger's) are dropped.
		cs = append(slices.Clone(cs[:i+1]), slices.DeleteFunc(slices.Clone(cs[i+1:]), func(c ring.Carriage) bool { return c.Kind == KindFilledNodes })...)
	}
	for _, n := range set {
		if !slices.Contains(t.Members, ring.NodeID(n)) {
			set = set.with(n, false)
		}
	}
	self := vipstate.Node(t.Self)
	set = set.with(self, slices.Contains(t.Members, t.Self) && !cfg.Filling())
	b, err := set.MarshalBinary()
	switch {
	case err != nil || len(set) == 0:
		if i >= 0 {
			cs = slices.Delete(cs, i, i+1)
		}
	case i >= 0:
		cs[i] = ring.Carriage{Kind: KindFilledNodes, Data: b}
	default:
		cs = append(cs, ring.Carriage{Kind: KindFilledNodes, Data: b})
	}
	return cs
}
