package ring

import (
	"fmt"
	"slices"
	"strings"
)

// EventKind names what happened.
type EventKind uint8

// Event kinds.
const (
	EventFormed      EventKind = iota + 1 // started a ring (alone mode, or with the starters it heard)
	EventAccepted                         // accepted the token (only with Config.TraceTokens)
	EventDropped                          // removed Peer after a failed hop
	EventJoined                           // added Peer to the ring (join request or merge)
	EventQuery                            // no token for the token-loss timeout: sent a 911
	EventDenied                           // 911 answered: a newer token or a live ring exists; waiting
	EventRegenerated                      // 911 granted: regenerated the token from this node's copy
	EventStale                            // Peer sent a token older than one seen here; told it so
	EventLimbo                            // learnt its ring moved on without it; serving nothing
	EventLeaving                          // Leave called
	EventLeft                             // handed its state over and left
	EventMergeSeen                        // heard Peer of another live ring; the larger ring absorbs the other
	EventApplied                          // the Holder applied proposal Event.Proposal
	EventRefused                          // proposal Event.Proposal was refused: Event.Err says why
	EventMerged                           // absorbed another ring: Event.Nodes joined, Event.Cause names the ring
	EventLearnt                           // accepted a token carrying a membership change made elsewhere: Event.Cause
	EventBadTurn                          // the Holder's carriages would not fit on the token (Event.Err); the old ones went on
	EventSuspended                        // quorum majority: no token (nor the holder's word) within the lease; serving nothing until the next
	EventDropWait                         // quorum majority: the hop to Peer failed; its drop waits out Peer's lease (lease.go)
	EventRegenWait                        // quorum majority: a 911 would regenerate without members that did not answer; it waits out their leases
)

var eventNames = [...]string{
	EventFormed: "formed", EventAccepted: "token-from", EventDropped: "dropped", EventJoined: "joined",
	EventQuery: "911", EventDenied: "911-denied", EventRegenerated: "regenerated", EventStale: "stale",
	EventLimbo: "limbo", EventLeaving: "leaving", EventLeft: "left", EventMergeSeen: "merge-seen",
	EventApplied: "applied", EventRefused: "refused", EventMerged: "merged", EventLearnt: "learnt",
	EventBadTurn: "bad-turn", EventSuspended: "suspended", EventDropWait: "drop-wait", EventRegenWait: "regen-wait",
}

// Membership reports whether events of kind k change this node's view of
// the membership (the node logs them at info, with their Cause): formed,
// dropped, joined, merged, regenerated, learnt, limbo and left.
func (k EventKind) Membership() bool {
	switch k {
	case EventFormed, EventDropped, EventJoined, EventMerged, EventRegenerated, EventLearnt, EventLimbo, EventLeft:
		return true
	}
	return false
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is something that happened in the protocol, for logs, metrics
// and transcripts.
type Event struct {
	Tick    int64
	Node    NodeID
	Kind    EventKind
	Peer    NodeID
	RingID  uint64
	Seq     uint64
	Members []NodeID
	// Proposal and Err: the proposal an EventApplied or EventRefused
	// answers, and why it was refused.
	Proposal uint64
	Err      string
	// Cause says why the membership changed, for the kinds that change it
	// (Membership): set by the node that made the change, and carried on
	// the token to the others (EventLearnt).
	Cause Cause
	// Nodes are the other nodes a change concerns: merged, the members of
	// the absorbed ring that were added; regenerated, the members of the
	// lost ring left out (they did not answer the 911). nil otherwise.
	Nodes []NodeID
}

// String renders the event on one line without the tick, e.g.
// "n1 dropped n3 ring=5f2a seq=42 members=[1 2]".
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "n%d %v", e.Node, e.Kind)
	if e.Peer != 0 {
		fmt.Fprintf(&b, " n%d", e.Peer)
	}
	if e.Proposal != 0 {
		fmt.Fprintf(&b, " #%d", e.Proposal)
	}
	if e.Err != "" {
		fmt.Fprintf(&b, " (%s)", e.Err)
	}
	if e.Cause.Kind != 0 {
		fmt.Fprintf(&b, " [%v]", e.Cause)
	}
	if len(e.Nodes) > 0 {
		fmt.Fprintf(&b, " nodes=%v", e.Nodes)
	}
	fmt.Fprintf(&b, " ring=%04x seq=%d members=%v", e.RingID&0xffff, e.Seq, e.Members)
	return b.String()
}

func (n *Node) event(k EventKind, peer NodeID) {
	n.eventCause(k, peer, Cause{}, nil)
}

// eventCause emits an event with a cause (and the nodes it concerns).
func (n *Node) eventCause(k EventKind, peer NodeID, c Cause, nodes []NodeID) {
	e := Event{Tick: n.now, Node: n.cfg.ID, Kind: k, Peer: peer, RingID: n.tok.RingID, Seq: n.tok.Seq, Cause: c, Nodes: nodes}
	if n.mode == ModeMember || k == EventLeaving {
		e.Members = slices.Clone(n.tok.Members)
	}
	n.ready.Events = append(n.ready.Events, e)
}

// made records a membership change this node made, with its cause, and
// emits its event: the cause goes on the token at the next pass
// (stampCauses) so the other members learn it.
func (n *Node) made(k EventKind, peer NodeID, c Cause, nodes []NodeID) {
	c.By = n.cfg.ID
	n.eventCause(k, peer, c, nodes)
	n.record(c)
}

// record puts a cause made here on the token at the next pass.
func (n *Node) record(c Cause) {
	if slices.ContainsFunc(n.causes, func(r causeRecord) bool { return r.Seq == 0 && r.Cause == c }) {
		return // already waiting for the next pass (a hand-over retried)
	}
	if len(n.causes) == MaxCauses {
		n.causes = slices.Delete(n.causes, 0, 1)
	}
	n.causes = append(n.causes, causeRecord{Cause: c})
}

// stampCauses gives the causes made since the last pass the seq of the
// token that carries them first and the hops to reach every other member,
// and returns the carriage to send them in (none without causes).
func (n *Node) stampCauses(seq uint64) []Carriage {
	if len(n.causes) == 0 {
		return n.tok.Carriages
	}
	for i := range n.causes {
		if r := &n.causes[i]; r.Seq == 0 {
			r.Seq = seq
			others := len(n.tok.Members)
			if n.inToken() {
				others--
			}
			r.hops = uint8(min(others, 255))
		}
	}
	b, err := n.causes.MarshalBinary()
	if err != nil {
		return n.tok.Carriages
	}
	return append(slices.Clip(n.tok.Carriages), Carriage{Kind: KindCauses, Data: b})
}

// learn reports the causes on an accepted token that this node has not
// seen (made after the newest token it had seen, prevMax, by another
// node), counts their hops down and keeps those with hops left for the
// next member. A membership change that comes with no cause (a peer of
// an older version) is reported as CauseUnknown.
func (n *Node) learn(from NodeID, recs causes, prevMax uint64, changed bool, dropped, joined []NodeID) {
	n.causes = n.causes[:0]
	told := false
	for _, r := range recs {
		if r.Seq > prevMax && r.By != n.cfg.ID {
			var nodes []NodeID
			switch r.Kind {
			case CauseMerged:
				nodes = joined
			case CauseRegenerated:
				nodes = dropped
			}
			n.eventCause(EventLearnt, r.Node, r.Cause, nodes)
			told = true
			if r.Kind == CauseDropped {
				n.holdDown(r.Node)
			}
		}
		if r.hops > 1 {
			r.hops--
			n.causes = append(n.causes, r)
		}
	}
	if changed && !told {
		n.eventCause(EventLearnt, 0, Cause{Kind: CauseUnknown, By: from}, nil)
	}
}
