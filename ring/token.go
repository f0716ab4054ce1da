package ring

import (
	"fmt"
	"slices"
)

// stepMessage dispatches one reassembled message.
func (n *Node) stepMessage(from NodeID, m *Message) error {
	switch m.Kind {
	case MsgToken:
		return n.stepToken(from, m)
	case MsgHello:
		n.stepHello(from, m)
	case MsgAnswer:
		n.stepAnswer(from, m)
	case MsgStale:
		n.stepStale(from, m)
	}
	return nil
}

// stepToken is Figure 9, box 909: a token for this node.
func (n *Node) stepToken(from NodeID, m *Message) error {
	if m.Dest != n.cfg.ID || m.Sender != from {
		return fmt.Errorf("ring: token from %d for %d (sender field %d) is not ours", from, m.Dest, m.Sender)
	}
	if !slices.Contains(m.Members, n.cfg.ID) {
		return fmt.Errorf("ring: token for us does not list us as a member")
	}
	if m.Seq <= n.maxSeq || n.leftRing(m.RingID) {
		// Older than a token we have seen: another, newer line exists.
		// The hop is acknowledged (so the sender does not drop us) and the
		// sender is told, so it steps out of the dead line.
		n.counters.TokensStale++
		n.event(EventStale, from)
		n.send(from, &Message{Kind: MsgStale, RingID: m.RingID, Seq: m.Seq}, sendTag{kind: MsgStale})
		return nil
	}
	for _, x := range m.Members {
		if !slices.Contains(n.cfg.Nodes, x) {
			return fmt.Errorf("ring: token lists node %d, which is not in the node map", x)
		}
	}
	if c := m.holderCarriages(); c > MaxHolderCarriages {
		// With the core's own carriage it could not be sent on.
		return fmt.Errorf("ring: token has %d carriages for the Holder, more than %d", c, MaxHolderCarriages)
	}
	if n.passing {
		// A newer token reached us while ours was in flight (we were
		// absorbed by another ring): ours is abandoned.
		n.cancel(n.passID)
		n.passing = false
	}
	// A token newer than the one whose hop failed: its destination got
	// it after all (only its acks were lost), or another line took this
	// node in. Nobody is dropped (lease.go).
	n.dropWait, n.regenWait = nil, nil
	prev := n.tok.Members
	if n.mode != ModeMember {
		prev = nil
	}
	if n.tok.RingID != 0 && m.RingID != n.tok.RingID {
		n.leaveRing(n.tok.RingID)
	}
	prevMax := n.maxSeq
	if prev != nil && m.RingID == n.tok.RingID && !n.holding {
		n.noteGap(n.now - n.lastSeen)
	}
	n.tok = *m
	n.tok.Members = n.sortMembers(m.Members)
	var recs causes
	n.tok.Carriages, recs = splitCore(m.Carriages)
	n.maxSeq = m.Seq
	n.mode = ModeMember
	n.query = nil
	n.startEnd = 0
	n.lastSeen = n.now
	n.seenNow()
	n.renewLease()
	n.accepts[0], n.accepts[1] = n.accepts[1], n.now
	n.holding = true
	n.holdEnd = n.now + n.hold()
	n.counters.TokensAccepted++
	if n.cfg.TraceTokens {
		n.event(EventAccepted, from)
	}
	var dropped, came []NodeID
	if prev != nil {
		dropped, came = minus(prev, n.tok.Members), minus(n.tok.Members, prev)
	}
	n.adaptTokenLoss()
	n.learn(from, recs, prevMax, prev == nil || len(dropped) > 0 || len(came) > 0, dropped, came)
	joined := n.addPending(false)
	if prev != nil {
		joined = append(came, joined...)
	}
	urgent := n.runHolder(n.tok.Members, dropped, n.sortMembers(joined))
	// A new membership goes round at once, without holds, so that every
	// member serves by it a rotation sooner; holds resume when each
	// member has seen it. For a node that was not a member (starting,
	// between rings) the membership is new too. So does a state the
	// Holder marks urgent (it gave away a VIP it served).
	if n.leaving || prev == nil || len(dropped) > 0 || len(joined) > 0 || urgent {
		n.pass()
	}
	return nil
}

// leftRings is how many ring ids a node remembers having left.
const leftRings = 8

// leaveRing records that this node's line moved on from ring id: a token
// of that ring is stale here from now on, whatever its seq. Two token lines
// over the same nodes whose seqs are less than a rotation apart (two nodes
// that formed rings at the same start-up seq) would otherwise both be
// accepted everywhere, overtaking each other forever; with this rule each
// dies where a node already went over to the other, and its holder, told
// it is stale, asks to join. In every other case a line change comes with
// a seq jump that the seq rule alone enforces.
func (n *Node) leaveRing(id uint64) {
	n.left[n.leftNext] = id
	n.leftNext = (n.leftNext + 1) % leftRings
}

func (n *Node) leftRing(id uint64) bool { return id != 0 && slices.Contains(n.left[:], id) }

// addPending adds the nodes that asked to join (or the members of a ring
// this ring absorbs) to the token; it returns them. Each plain join is a
// membership change with its cause (CauseJoined), the members of each
// absorbed ring one change (CauseMerged); quiet (a ring forming from
// nothing, whose one cause is CauseFormed) reports the joins without
// causes.
func (n *Node) addPending(quiet bool) []NodeID {
	var joined []NodeID
	var merges []joinReq // one per absorbed ring
	var mergedNodes [][]NodeID
	for _, j := range n.pending {
		// A requester asks again at least every token-loss timeout (or
		// JoinTimeout/3 while starting) while it waits, so a much older
		// request is from a node that has since joined elsewhere, or died.
		if slices.Contains(n.tok.Members, j.node) || slices.Contains(joined, j.node) ||
			n.now-j.at > 2*max(n.tokLoss, int64(n.cfg.JoinTimeout)) {
			continue
		}
		joined = append(joined, j.node)
		if j.maxSeq > n.bumpTo {
			n.bumpTo = j.maxSeq
		}
		if n.bumpTo < n.maxSeq {
			n.bumpTo = n.maxSeq
		}
		if j.ring != 0 {
			i := slices.IndexFunc(merges, func(m joinReq) bool { return m.ring == j.ring })
			if i < 0 {
				merges, mergedNodes = append(merges, j), append(mergedNodes, nil)
				i = len(merges) - 1
			}
			mergedNodes[i] = append(mergedNodes[i], j.node)
		}
	}
	n.pending = n.pending[:0]
	if len(joined) > 0 {
		n.tok.Members = n.sortMembers(append(slices.Clone(n.tok.Members), joined...))
		n.counters.Joins += uint64(len(joined))
		for _, j := range joined {
			if quiet || slices.ContainsFunc(mergedNodes, func(ns []NodeID) bool { return slices.Contains(ns, j) }) {
				n.event(EventJoined, j)
				continue
			}
			n.made(EventJoined, j, Cause{Kind: CauseJoined, Node: j}, nil)
		}
		for i, m := range merges {
			ns := n.sortMembers(mergedNodes[i])
			if quiet {
				continue
			}
			n.made(EventMerged, m.via, Cause{Kind: CauseMerged, Node: m.via, Ring: m.ring, Count: uint16(len(ns))}, ns)
		}
	}
	return joined
}

// pass sends the token to the next member (Figure 9: the token moves on in
// node-map order). With nobody else in the ring it stays here, and the
// Holder runs again for what may have changed (joiners).
func (n *Node) pass() {
	if n.leaving && n.inToken() {
		if !n.handOver(nil) {
			return
		}
	} else if !n.leaving {
		// Nodes that asked to join since this node accepted the token
		// (addRequest shortened the hold for them) go with it now.
		if joined := n.addPending(false); len(joined) > 0 {
			n.runHolder(n.tok.Members, nil, joined)
		}
	}
	next := n.nextAfter(n.cfg.ID, n.tok.Members)
	seq := n.tok.Seq + 1
	if n.bumpTo != 0 {
		if s := n.bumpTo + seqJump; s > seq {
			seq = s
		}
		n.bumpTo = 0
	}
	if seq <= n.maxSeq {
		seq = n.maxSeq + 1
	}
	n.maybeProbe()
	if next == 0 {
		if n.leaving {
			n.finishLeave()
			return
		}
		// Alone: keep the token, as a hop to ourselves.
		n.tok.Seq, n.maxSeq, n.rank = seq, seq, seq
		n.tok.Sender, n.tok.Dest = n.cfg.ID, n.cfg.ID
		n.causes = n.causes[:0] // nobody else to tell
		n.lastSeen = n.now
		n.renewLease()
		n.holdEnd = n.now + n.hold()
		n.runHolder(n.tok.Members, nil, nil)
		return
	}
	n.tok.Seq, n.maxSeq, n.rank = seq, seq, seq
	n.tok.Sender, n.tok.Dest = n.cfg.ID, next
	n.holding = false
	n.passing = true
	n.passTo, n.passSeq = next, seq
	n.lastSeen = n.now
	out := n.tok
	out.Carriages = n.stampCauses(seq)
	n.passID = n.send(next, &out, sendTag{kind: MsgToken, seq: seq})
}

// inToken reports whether this node is a member of its copy of the token
// (false once a leave removed it).
func (n *Node) inToken() bool { return slices.Contains(n.tok.Members, n.cfg.ID) }

// handOver is the graceful leave's hand-over, the one place it happens:
// this node takes itself off its token copy and lets the Holder give its
// state (VIPs) to the members that remain; the token then leaves with it.
// dropped names a node just removed by a failed hop. It reports false
// when nobody remains, after finishing the leave.
func (n *Node) handOver(dropped []NodeID) bool {
	n.tok.Members = minus(n.tok.Members, []NodeID{n.cfg.ID})
	n.record(Cause{Kind: CauseLeft, Node: n.cfg.ID, By: n.cfg.ID})
	if len(n.tok.Members) == 0 {
		n.finishLeave()
		return false
	}
	n.callHolder(TokenView{Members: n.tok.Members, Dropped: dropped, Leaving: []NodeID{n.cfg.ID}})
	n.commitLeaving()
	return true
}

// commitLeaving publishes the state after our own leave: we are no longer
// a member, so we serve nothing from here on.
func (n *Node) commitLeaving() {
	n.ready.State = &State{RingID: n.tok.RingID, Seq: n.tok.Seq, Carriages: n.tok.Carriages}
}

// onSendDone is the reliable layer's success callback.
func (n *Node) onSendDone(o *outMsg) {
	switch o.tag.kind {
	case MsgToken:
		if n.passing && o.id == n.passID {
			n.passing = false
			n.lastSeen = n.now
			n.seenNow()
			if n.leaving && !n.inToken() {
				// The hop that handed our state over: we are out.
				// (A Leave during an ordinary pass waits for the next hold.)
				n.finishLeave()
			}
		}
	}
}

// onSendFailed is the reliable layer's failure callback (the patent's
// callback after the last resend on every path).
func (n *Node) onSendFailed(o *outMsg) {
	switch o.tag.kind {
	case MsgToken:
		if !n.passing || o.id != n.passID {
			return
		}
		if n.majority() {
			// Quorum majority: not before the destination's lease has
			// run out (lease.go).
			n.waitDrop(o)
			return
		}
		n.passing = false
		n.drop(o.to, o.tries, o.paths)
	case MsgHello:
		if q := n.query; q != nil && o.tag.queryID == q.id {
			n.queryDone(o.to)
		}
	}
}

// drop is Figure 9: the destination of a failed hop (after tries sends on
// the paths in the bitmask paths) is presumed down. Remove it, let our
// Holder fail its state over, and send to the next member. The
// destination may in fact have the token (its acks were lost), so our
// line takes a new ring id and jumps the sequence: its copy is stale
// wherever ours has been.
func (n *Node) drop(to NodeID, tries int, paths uint8) {
	n.holding = true
	n.tok.Members = minus(n.tok.Members, []NodeID{to})
	n.tok.RingID = n.newRingID()
	n.bumpTo = n.maxSeq
	n.counters.Drops++
	rtt, ok := n.rl.rtt[to]
	if !ok {
		rtt = NoRTT
	}
	n.holdDown(to)
	n.made(EventDropped, to, Cause{Kind: CauseDropped, Node: to, Tries: uint8(min(tries, 255)), Paths: paths, RTT: rtt, LastAck: n.rl.lastAck[to].at}, nil)
	if n.leaving && !n.inToken() {
		// The hop that handed our state over failed: hand it to
		// the members that remain.
		if !n.handOver([]NodeID{to}) {
			return
		}
	} else {
		n.runHolder(n.tok.Members, []NodeID{to}, nil)
	}
	n.pass()
}

func (n *Node) newRingID() uint64 {
	for {
		if id := n.cfg.Rand(); id != 0 && id != n.tok.RingID {
			return id
		}
	}
}

// stepStale: a node told us the token we sent it is older than one it has.
// If that token is still our latest, our line is dead and we are not in
// the newer one: step out (serve nothing) and ask to join.
func (n *Node) stepStale(from NodeID, m *Message) {
	if n.mode != ModeMember || m.RingID != n.tok.RingID || m.Seq != n.rank || n.holding {
		return
	}
	if n.passing {
		n.cancel(n.passID)
		n.passing = false
	}
	n.enterLimbo(from, CauseStale)
}

// enterLimbo steps out of this node's line, for cause (about node peer):
// told by peer that the line is stale (CauseStale), or not heard by a
// majority while waiting to drop peer (CauseUnheard). The node is in no
// ring until one adds it; it asks (911) at once.
func (n *Node) enterLimbo(peer NodeID, cause CauseKind) {
	n.mode = ModeLimbo
	n.regenWait = nil
	n.holding = false
	n.causes = n.causes[:0]
	n.eventCause(EventLimbo, peer, Cause{Kind: cause, Node: peer, By: n.cfg.ID, Ring: n.tok.RingID}, nil)
	n.commit()
	if n.leaving {
		n.finishLeave()
		return
	}
	n.startQuery()
}
