package ring

import "slices"

// Start-up (Figure 8), the 911 (Figure 9, boxes 901-908), joins and merges.
//
// Every node-to-node question is a hello; every hello gets an answer. Both
// carry the sender's situation (flags, ring id, rank, highest seq seen,
// members), and both sides run observe on what they hear:
//
//   - a live ring that hears a node outside it that is not in a live ring
//     (starting, between rings, or its token lost) records a join request;
//     the next time a member that recorded it holds the token it adds the
//     node (patent: "the 911 message will be regarded as an add request");
//   - a live ring that hears a node of another live ring compares the two:
//     the larger ring (then the one with the lower lowest node id) absorbs
//     the other by adding all its members; the absorbed nodes accept the
//     larger ring's token because it jumps past their sequence numbers, and
//     their old token dies as stale wherever it arrives after that.
//
// The 911 differs from the patent in one respect: instead of travelling
// node by node around the ring it is sent to every node of the node map at
// once. A dead node then costs one ack budget in parallel rather than one
// per dead node in series, and the answers carry what the patent's
// permission flag computes: permission is denied if anyone answers with a
// higher rank (a newer token sent, ties to the lower node id), holds the
// token, or is in a live ring (which will add us).

// tickStart runs the start-up: hellos to the node map, then alone mode
// when nobody answers within JoinTimeout.
func (n *Node) tickStart() {
	if !n.started {
		n.started = true
		n.startEnd = n.now - 1 + int64(n.cfg.JoinTimeout)
	}
	if n.lastHello == 0 || n.now-n.lastHello >= helloEvery(&n.cfg) {
		n.lastHello = n.now
		n.helloAll(PurposeStart, 0, n.cfg.Nodes)
	}
	if n.now < n.startEnd {
		return
	}
	if n.heardRing || (n.heardLower && !n.startExt) {
		// A ring exists: it will add us (or its token, which lists us,
		// is on its way), so wait as long as it keeps answering. Or a
		// lower-numbered node is starting too: it will form the ring and
		// add us, so wait once more. Forming a ring of our own meanwhile
		// would start a second token line over the same nodes.
		n.startExt = true
		n.heardRing = false
		n.startEnd = n.now + int64(n.cfg.JoinTimeout)
		return
	}
	n.form(nil)
}

// helloEvery is the ticks between a starting node's hellos.
func helloEvery(c *Config) int64 { return int64(max(c.JoinTimeout/3, 1)) }

// form starts a ring from nothing (alone mode, Figure 8 box 806) with the
// starting nodes that asked to join; or, with carriages, regenerates one.
func (n *Node) form(answers []answer) {
	regen := n.mode != ModeStarting
	prev := n.tok.Members
	lost, lostSeen := n.tok.RingID, n.seenAt
	if !regen {
		prev = nil
		n.tok = Message{Kind: MsgToken}
	}
	hi := n.maxSeq
	members := []NodeID{n.cfg.ID}
	for _, a := range answers {
		members = append(members, a.from)
		hi = max(hi, a.m.MaxSeq)
	}
	n.mode = ModeMember
	n.tok.RingID = n.newRingID()
	n.tok.Members = n.sortMembers(members)
	n.tok.Sender, n.tok.Dest = n.cfg.ID, n.cfg.ID
	n.tok.Seq = hi + seqJump
	n.maxSeq, n.rank = n.tok.Seq, n.tok.Seq
	n.lastSeen = n.now
	n.renewLease()
	n.regenWait = nil
	n.accepts = [2]int64{n.now, n.now}
	n.holding, n.passing = true, false
	n.holdEnd = n.now + n.hold()
	n.query = nil
	joined := n.addPending(!regen)
	var dropped []NodeID
	if regen {
		n.counters.Regenerations++
		dropped = minus(prev, n.tok.Members)
		asker := n.asker
		if asker == 0 {
			asker = n.cfg.ID
		}
		n.made(EventRegenerated, 0, Cause{Kind: CauseRegenerated, Node: asker, Ring: lost, LastAck: lostSeen}, dropped)
	} else {
		n.made(EventFormed, 0, Cause{Kind: CauseFormed}, nil)
	}
	n.asker = 0
	if prev != nil {
		joined = append(minus(n.tok.Members, prev), joined...)
	} else {
		joined = append(minus(n.tok.Members, []NodeID{n.cfg.ID}), joined...)
	}
	n.runHolder(n.tok.Members, dropped, n.sortMembers(joined))
	// A new ring (or a regenerated one) goes round at once, without a
	// hold: the other members learn the new membership a hold sooner.
	if n.leaving || len(n.tok.Members) > 1 {
		n.pass()
	}
}

func (n *Node) info(kind MsgKind, p Purpose, qid uint64) *Message {
	m := &Message{Kind: kind, Purpose: p, QueryID: qid, Flags: n.flags(),
		RingID: n.tok.RingID, Seq: n.rank, MaxSeq: n.maxSeq}
	if n.mode == ModeMember {
		m.Members = n.tok.Members
	}
	return m
}

func (n *Node) helloAll(p Purpose, qid uint64, to []NodeID) {
	m := n.info(MsgHello, p, qid)
	for _, id := range to {
		if id != n.cfg.ID {
			n.send(id, m, sendTag{kind: MsgHello, queryID: qid})
		}
	}
}

// maybeProbe: the holder looks, every ProbeInterval, for node-map nodes
// outside its ring, so that rings split by a partition find each other.
func (n *Node) maybeProbe() {
	if n.now-n.lastProbe < int64(n.cfg.ProbeInterval) {
		return
	}
	n.lastProbe = n.now
	var out []NodeID
	for _, id := range n.cfg.Nodes {
		if !slices.Contains(n.tok.Members, id) {
			out = append(out, id)
		}
	}
	if len(out) > 0 {
		n.helloAll(PurposeProbe, 0, out)
	}
}

func (n *Node) stepHello(from NodeID, m *Message) {
	p := m.Purpose
	if p == PurposeRenew && !n.stepRenew(from, m) {
		p = PurposeProbe // not renewed: the holder must not count this answer
	}
	if p == PurposeRenewed {
		n.stepRenewed(from, m)
	}
	n.send(from, n.info(MsgAnswer, p, m.QueryID), sendTag{kind: MsgAnswer})
	n.observe(from, m)
	// A 911 from a node whose copy is older than ours, while our own
	// token is lost too: we are the one to regenerate, so start our 911
	// now instead of waiting for our own timeout.
	// A nudge: a 911 we outranked was denied because of us, so we hold
	// the newest copy the asker knows of; if our token is lost too, ask now.
	if m.Purpose == PurposeNudge && n.query == nil && !n.holding && !n.passing && n.now >= n.regenFrom &&
		(n.mode == ModeMember || n.mode == ModeLimbo) && m.RingID == n.tok.RingID {
		n.startQuery()
		n.asker = from // its 911 came first: the cause names it
	}
}

// outranks: does our rank beat (peer, rank) for the right to regenerate?
func (n *Node) outranks(peer NodeID, rank uint64) bool {
	return n.rank > rank || (n.rank == rank && n.cfg.ID < peer)
}

func (n *Node) stepAnswer(from NodeID, m *Message) {
	n.observe(from, m)
	if m.Purpose == PurposeRenew {
		n.stepRenewAnswer(from, m)
		return
	}
	q := n.query
	if q == nil || m.Purpose != PurposeQuery || m.QueryID != q.id || !slices.Contains(q.waiting, from) {
		return
	}
	q.answers = append(q.answers, answer{from: from, m: *m})
	switch denial(n, from, m) {
	case denyNone:
		n.queryDone(from)
	case denyRank:
		// It sent a newer token than we did: it should regenerate, not
		// us. Tell it now rather than let it wait for its own timer.
		n.deny()
		if m.RingID == n.tok.RingID {
			n.send(from, n.info(MsgHello, PurposeNudge, 0), sendTag{kind: MsgHello})
		}
	default:
		n.deny()
	}
}

type denyReason uint8

const (
	denyNone    denyReason = iota
	denyHolding            // the answerer holds the token: it is not lost
	denyLive               // the answerer is in another live ring, which will add us
	denyRank               // the answerer sent a newer token than we did
)

// denial is the permission flag of the patent's 911, per answer. Liveness
// of our own ring's members does not deny: they may have seen the token
// more recently than we did, but if nobody holds it and nobody sent a newer
// one than ours, it is lost.
func denial(n *Node, from NodeID, m *Message) denyReason {
	switch {
	case m.Flags&FlagHolding != 0:
		return denyHolding
	case m.Flags&FlagLive != 0 && (n.mode != ModeMember || m.RingID != n.tok.RingID):
		return denyLive
	case !n.outranks(from, m.Seq):
		return denyRank
	}
	return denyNone
}

// observe records join requests and merges from what a hello or answer says.
func (n *Node) observe(from NodeID, m *Message) {
	remoteLive := m.Flags&FlagLive != 0
	if n.heldDown(from, m) {
		return
	}
	switch {
	case n.mode == ModeStarting:
		if remoteLive && m.Kind == MsgAnswer {
			// Only an answer to our own hello: a ring that can reach
			// us but not hear us (a one-way cut) would keep us
			// waiting for ever with its probes.
			n.heardRing = true
		} else if m.Flags&FlagMember == 0 {
			// Another starting node: whoever forms the ring adds it.
			n.addRequest(from, m.MaxSeq, 0, 0)
			if from < n.cfg.ID {
				n.heardLower = true
			}
		}
	case n.live():
		if !remoteLive {
			// A member in trouble gets the token in due course (or is
			// dropped and asks again); others ask to join.
			if !slices.Contains(n.tok.Members, from) {
				n.addRequest(from, m.MaxSeq, 0, 0)
			}
			return
		}
		if m.RingID == n.tok.RingID || slices.Contains(n.tok.Members, from) || len(m.Members) == 0 {
			return
		}
		if wins(n.tok.Members, m.Members) {
			n.event(EventMergeSeen, from)
			n.counters.Merges++
			for _, id := range m.Members {
				if slices.Contains(n.cfg.Nodes, id) {
					n.addRequest(id, m.MaxSeq, m.RingID, from)
				}
			}
		}
	}
}

// wins decides which of two live rings absorbs the other: the larger, then
// the one with the lower lowest node id (rings are disjoint, so no ties).
func wins(a, b []NodeID) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return slices.Min(a) < slices.Min(b)
}

// addRequest records that node id asked to join (ring 0), or, in a merge,
// that it is a member of live ring ring, heard through via.
func (n *Node) addRequest(id NodeID, maxSeq uint64, ring uint64, via NodeID) {
	for i := range n.pending {
		if p := &n.pending[i]; p.node == id {
			p.maxSeq = max(p.maxSeq, maxSeq)
			p.at = n.now
			p.ring, p.via = ring, via
			return
		}
	}
	if len(n.pending) < len(n.cfg.Nodes) {
		n.pending = append(n.pending, joinReq{node: id, maxSeq: maxSeq, at: n.now, ring: ring, via: via})
	}
	// The holder adds it and passes the token at its next tick rather than
	// at the end of its hold (a node alone holds for a whole MinRotation).
	if n.holding {
		n.holdEnd = min(n.holdEnd, n.now+1)
	}
}

// startQuery sends a 911 to every other node of the node map.
//
// The answers are awaited for 2 × AckTimeout + 1 ticks, not for a whole ack
// budget: a live, reachable node answers within a tick, and the first resend
// of the hello (or of the answer) falls inside that window, so only a node
// that lost two copies on every path is missed. A node that is not heard by
// then is dead, paused or cut off; the token cannot be moving through it
// (it has been missing for the token-loss timeout), and should it hold an
// old copy, that copy's line is stale wherever the regenerated one (new
// ring id, jumped seq) has been. This keeps the crash of the token holder
// from costing a second ack budget (docs/ring.md, "Timers").
func (n *Node) startQuery() {
	q := &query{id: n.cfg.Rand(), deadline: n.now + n.queryWait()}
	for _, id := range n.cfg.Nodes {
		if id != n.cfg.ID {
			q.waiting = append(q.waiting, id)
		}
	}
	n.query = q
	n.regenWait = nil
	n.lastQry = n.now
	n.counters.Queries++
	n.event(EventQuery, 0)
	n.helloAll(PurposeQuery, q.id, q.waiting)
	if len(q.waiting) == 0 {
		n.decide()
	}
}

// queryDone: node id answered (without denying) or cannot be reached.
func (n *Node) queryDone(id NodeID) {
	q := n.query
	if i := slices.Index(q.waiting, id); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	if len(q.waiting) == 0 {
		n.decide()
	}
}

func (n *Node) deny() {
	n.query = nil
	n.asker = 0
	n.counters.Denied++
	n.event(EventDenied, 0)
	// Wait a full token-loss timeout for the newer token (or for the live
	// ring to add us) before asking again.
	n.waitFrom = n.now
	n.lastQry = n.now
}

// decide is reached when every node answered without denying, could not
// be reached, or the deadline passed: permission is TRUE, and this node,
// holding the newest copy among those it can reach, regenerates the token
// with itself and every answering node that is not in a live ring.
func (n *Node) decide() {
	q := n.query
	n.query = nil
	var members []answer
	for _, a := range q.answers {
		if denial(n, a.from, &a.m) != denyNone {
			n.deny()
			return
		}
		members = append(members, a)
	}
	if n.waitRegen(members) {
		return
	}
	n.form(members)
}
