package ring

import "slices"

// Hold-down of nodes dropped for a hop they did not acknowledge.
//
// A node that hears nothing but can still send (one-way deaf: a broken
// receive path, a full socket buffer, a firewall rule) is dropped when a
// hop to it fails. Before this rule it then kept the healthy ring flapping
// for as long as the fault lasted (the chaos suite saw a drop and a join
// every 25-50 ms): its 911s and, once it formed a ring alone, its probes
// reached the ring, which added it back as a joiner (or absorbed its ring),
// and the next hop to it failed again after an ack budget.
//
// So every member that drops a node, or learns on the token that another
// member dropped it, holds it down: a hello from it (a 911, a probe, a
// start) no longer counts as a join or merge request. Instead the member
// answers, as always, and sends it a hello of its own (a probe, at most
// one per ProbeInterval); only an answer to a hello of ours, which the node
// could send only if it heard us, lifts the hold-down and counts as the
// request. A node that can hear again is back within a round trip of its
// next hello; a deaf one never gets in, and costs the ring one hello per
// probe interval. The rule needs nothing on the wire: hellos and answers
// are told apart by their kind.

// holdDown starts holding node id down (a drop of it, made or learnt).
// Only nodes of the node map are held (a cause record names the node, and
// the token comes from the wire), so the table stays within its size.
func (n *Node) holdDown(id NodeID) {
	if id != n.cfg.ID && slices.Contains(n.cfg.Nodes, id) {
		if _, ok := n.unheard[id]; !ok {
			n.unheard[id] = n.now - int64(n.cfg.ProbeInterval)
		}
	}
}

// heldDown reports whether message m from node from must be ignored as a
// join or merge request because from is held down. An answer (to a hello
// of ours: from hears us) lifts the hold-down.
func (n *Node) heldDown(from NodeID, m *Message) bool {
	last, ok := n.unheard[from]
	if !ok {
		return false
	}
	if m.Kind == MsgAnswer || slices.Contains(n.tok.Members, from) {
		// It hears us, or a ring of ours took it back in (a merge, or
		// another member's proof): nothing left to hold.
		delete(n.unheard, from)
		return false
	}
	if n.now-last >= int64(n.cfg.ProbeInterval) {
		n.unheard[from] = n.now
		n.send(from, n.info(MsgHello, PurposeProbe, 0), sendTag{kind: MsgHello})
	}
	return true
}
