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
)

var eventNames = [...]string{
	EventFormed: "formed", EventAccepted: "token-from", EventDropped: "dropped", EventJoined: "joined",
	EventQuery: "911", EventDenied: "911-denied", EventRegenerated: "regenerated", EventStale: "stale",
	EventLimbo: "limbo", EventLeaving: "leaving", EventLeft: "left", EventMergeSeen: "merge-seen",
	EventApplied: "applied", EventRefused: "refused",
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
	fmt.Fprintf(&b, " ring=%04x seq=%d members=%v", e.RingID&0xffff, e.Seq, e.Members)
	return b.String()
}

func (n *Node) event(k EventKind, peer NodeID) {
	e := Event{Tick: n.now, Node: n.cfg.ID, Kind: k, Peer: peer, RingID: n.tok.RingID, Seq: n.tok.Seq}
	if n.mode == ModeMember || k == EventLeaving {
		e.Members = slices.Clone(n.tok.Members)
	}
	n.ready.Events = append(n.ready.Events, e)
}
