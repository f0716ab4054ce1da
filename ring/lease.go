package ring

import "slices"

// Serving leases in quorum mode majority (docs/ring.md, "Quorum majority:
// one server per VIP").
//
// A drop is decided by one node (the holder whose hop failed) and learnt by
// the dropped node only when something reaches it: a node whose acks were
// lost, or that heard nothing for a moment, kept serving by its last
// committed state, whose members (itself and the others) are a majority,
// while the others had formed a ring without it, also a majority, and had
// handed its VIPs over. The chaos suite saw two MACs answer for one VIP for
// ~6 ms: the dropped node's own token-loss timer fired a few ticks after
// the drop, and it stopped only when the new ring added it back.
//
// The rule: in majority mode a member serves only while its lease runs,
// lease() ticks from its last renewal, and a ring takes a member's VIPs
// away only after that member's lease has surely run out.
//
//   - A lease is renewed by accepting the token from another member, by
//     forming or regenerating a ring, and by the holder's word while it
//     waits to drop someone (below). It is not renewed by the ack of this
//     node's own pass: the line it passed on may since have dropped it.
//     When it runs out the node commits a state that serves nothing
//     (State.NoQuorum, EventSuspended) and serves again at its next renewal.
//     In a healthy ring the token returns well within it (it is the token
//     loss timeout plus a hold).
//   - A failed hop drops its destination only lease() ticks after the
//     failure (EventDropWait); the holder keeps the token meanwhile. The
//     destination last renewed its lease when it last accepted a token,
//     at the latest from one of the failed hop's own tries, before the
//     failure: by the drop it serves nothing. If it did get the token
//     (only its acks were lost), its line comes round to the waiting holder,
//     which accepts it and drops nobody.
//   - Meanwhile the other members' leases would run out as well (they
//     accepted the token before the destination could have): the holder
//     sends them a renewal (a hello of PurposeRenew, at the failure, every
//     half lease and once more just before the drop), which renews the
//     lease of a member whose copy is the holder's ring and no newer; only
//     a member that renewed answers as such. Once a majority of the node
//     map (the holder included) has renewed for it, the holder renews its
//     own lease; the drop needs such a majority for the last renewal. A
//     holder that is not heard by a majority (it is the one cut off, say
//     deaf) drops nobody: it goes to limbo and asks (911), so a node
//     nobody hears cannot start a line that takes others' VIPs.
//   - Two renewers of one ring (two holders waiting at once, or a holder
//     and a 911's wait) renew nobody: a member asked by both takes
//     neither's renewal for a lease (stepRenew).
//   - A member whose lease runs is live (Node.live): no other ring adds it
//     as a joiner while its ring may still count it.
//   - A 911 that would regenerate without members of the lost ring that
//     did not answer waits a lease first, renewing those that answered
//     (waitRegen).
//
// The price, majority mode only: a crashed member's VIPs move a lease
// later (simulator, N=3: crash → membership p99 157 ms instead of 63 ms);
// the other VIPs stay served. Availability mode is unchanged: it serves on
// both sides of a partition by design.

// dropWait is a failed hop whose drop waits out its destination's lease.
type dropWait struct {
	to      NodeID
	tries   int
	paths   uint8
	at      int64    // tick of the drop
	renewAt int64    // tick of the next renewal hello
	id      uint64   // the renewal's id (answers echo it)
	heard   []NodeID // members that answered the current renewal
	// confirmed: a majority of the node map (this node included) answered
	// the current renewal, that is, this node's copy of the ring, from a
	// holder that is heard. The drop needs it.
	confirmed bool
	final     bool // the current renewal is the last before the drop
	// superseded: another holder of this ring, with a newer copy, asked
	// this one for a renewal: this copy is not the live line.
	superseded bool
	// excl are further nodes not asked: a regeneration's wait (regen)
	// asks only the members that answered its 911.
	excl      []NodeID
	regen     bool
	sentAt    int64
	committed bool
}

// majority reports whether this node counts quorum by majority.
func (n *Node) majority() bool { return n.cfg.Quorum == Majority }

// lease is the ticks a member serves after its last renewal: the token
// loss timeout before local health (a member waits at most that long from
// its pass to the token's return) plus its own hold and two ticks. Local
// health is left out so that every node of a ring computes about the same
// lease: the dropper's wait must cover the dropped node's lease.
func (n *Node) lease() int64 { return n.tokLossBase + n.hold() + 2 }

// renewLease records the renewal of a turn with the token (accepted,
// formed or regenerated, or kept alone); a suspended node serves again by
// the state that turn commits (runHolder, which every caller runs next).
func (n *Node) renewLease() {
	n.leaseAt = max(n.leaseAt, n.now)
	n.suspended = false
}

// renewLeaseAt records a renewal from tick at outside a turn (a majority
// took a renewal); a suspended member serves again from now: it commits.
func (n *Node) renewLeaseAt(at int64) {
	n.leaseAt = max(n.leaseAt, at)
	if n.suspended {
		n.suspended = false
		if n.mode == ModeMember {
			n.commit()
		}
	}
}

// checkLease suspends a member whose lease ran out (majority mode).
func (n *Node) checkLease() {
	if !n.majority() || n.suspended || n.mode != ModeMember || n.now-n.leaseAt <= n.lease() {
		return
	}
	n.suspended = true
	n.event(EventSuspended, 0)
	n.commit()
}

// waitDrop starts the wait before dropping the destination of failed hop o.
func (n *Node) waitDrop(o *outMsg) {
	n.passing = false
	n.holding = true
	n.dropWait = &dropWait{to: o.to, tries: o.tries, paths: o.paths, at: n.now + n.lease() + 1}
	n.event(EventDropWait, o.to)
	n.sendRenewals(n.dropWait)
}

// sendRenewals asks every other member but the one to be dropped whether
// it hears this holder, renewing its lease. Renewals go at the failure,
// every half lease, and once more a 911 window before the drop: the drop
// needs a majority's answers to that last one, so that answers from
// members that have since gone over to another line do not count.
func (n *Node) sendRenewals(w *dropWait) {
	w.id, w.heard, w.confirmed, w.sentAt, w.committed = n.cfg.Rand(), nil, false, n.now, false
	last := w.at - int64(2*n.cfg.AckTimeout+1)
	w.renewAt = n.now + max(n.lease()/2, 1)
	if w.renewAt >= last {
		w.renewAt = last
	}
	if n.now >= last {
		w.final, w.renewAt = true, w.at
	}
	n.helloAll(PurposeRenew, w.id, minus(n.tok.Members, append([]NodeID{w.to}, w.excl...)))
	n.heardBy(w, 0)
}

// heardBy counts a member that answered the current renewal; a majority
// of the node map renews this holder's own lease.
func (n *Node) heardBy(w *dropWait, id NodeID) {
	if id != 0 && !slices.Contains(w.heard, id) {
		w.heard = append(w.heard, id)
	}
	// A majority renewed for this holder alone: its own lease is renewed
	// too. Those members are live while their leases run, so no other
	// ring may add them meanwhile. (Waits run in quorum mode majority
	// only, where noQuorumOf counts.)
	w.confirmed = !w.superseded && !n.noQuorumOf(1+len(w.heard))
	if w.confirmed && !w.committed {
		w.committed = true
		n.renewLeaseAt(w.sentAt)
		n.helloAll(PurposeRenewed, w.id, w.heard)
	} else if w.confirmed && id != 0 {
		n.send(id, n.info(MsgHello, PurposeRenewed, w.id), sendTag{kind: MsgHello})
	}
}

// tickRenewals sends a wait's next renewals when they are due (a drop
// wait's or a 911's wait's; nil: none).
func (n *Node) tickRenewals(w *dropWait) {
	if w != nil && n.now >= w.renewAt && n.now < w.at {
		n.sendRenewals(w)
	}
}

// tickDropWait ends the drop wait at its time: the drop (or limbo).
func (n *Node) tickDropWait() {
	w := n.dropWait
	if n.now < w.at {
		return
	}
	n.dropWait = nil
	line := len(n.tok.Members) // the line without w.to
	if slices.Contains(n.tok.Members, w.to) {
		line--
	}
	if (!w.final || !w.confirmed) && !n.noQuorumOf(line) {
		// No majority heard this holder within its lease: it may be the
		// node cut off. Starting a line that takes others' VIPs is not
		// its call; it asks instead. (A line without quorum takes
		// nothing: that drop goes ahead.)
		n.enterLimbo(w.to, CauseUnheard)
		return
	}
	n.drop(w.to, w.tries, w.paths)
}

// stepRenew is a member's side of a renewal hello from the holder from;
// it reports whether it took the renewal (only then does its answer
// count). Taking it renews nothing yet: the lease is renewed when the
// holder says a majority took it (stepRenewed).
//
// Two holders of one ring id may wait to drop at once: a node that got
// the token although its acks were lost passed it on, and that hop failed
// too. Neither may then renew leases or drop: a member asked by both takes
// neither's renewal for a lease, so neither gets a majority, and each goes
// to limbo and asks (911); a waiting holder asked by another of its ring
// with a newer copy gives its drop up the same way.
func (n *Node) stepRenew(from NodeID, m *Message) bool {
	if n.mode != ModeMember || m.RingID != n.tok.RingID || !slices.Contains(n.tok.Members, from) {
		return false
	}
	if n.holding {
		if w := n.dropWait; w != nil && m.Seq > n.rank {
			w.superseded = true
			w.confirmed = false
		}
		return false
	}
	// The asker must have sent the newest copy this node knows of: the
	// holder after this node, or a 911's winner (it outranks every
	// member that answered it).
	if m.Seq < n.maxSeq || n.now < n.renewConflict {
		return false
	}
	if n.regenWait != nil {
		// This node renews others itself: two renewers of one ring.
		n.renewConflict = n.now + n.lease()
		return false
	}
	if n.renewBy != 0 && n.renewBy != from && n.renewRing == m.RingID && n.now-n.renewLast <= n.lease() {
		n.renewConflict = n.now + n.lease()
		return false
	}
	n.renewBy, n.renewRing, n.renewLast = from, m.RingID, n.now
	n.renewID, n.renewAskAt = m.QueryID, n.now
	return true
}

// stepRenewAnswer is the holder's side: an answer to its renewal.
func (n *Node) stepRenewAnswer(from NodeID, m *Message) {
	for _, w := range []*dropWait{n.dropWait, n.regenWait} {
		if w == nil || m.QueryID != w.id || m.RingID != n.tok.RingID || m.MaxSeq > n.maxSeq ||
			!slices.Contains(n.tok.Members, from) || from == w.to {
			continue
		}
		n.heardBy(w, from)
	}
}

// waitRegen: in majority mode a 911 that would regenerate the token
// without members of the lost ring that did not answer (one of them may
// hold the token, cut off, and serve by its lease) first waits out their
// leases, then asks again. It reports whether it waits.
func (n *Node) waitRegen(answers []answer) bool {
	if !n.majority() || n.mode == ModeStarting || (n.now >= n.regenFrom && n.now <= n.regenOK) {
		return false
	}
	answered := []NodeID{n.cfg.ID}
	for _, a := range answers {
		answered = append(answered, a.from)
	}
	missing := minus(n.tok.Members, answered)
	if len(missing) == 0 {
		return false
	}
	if n.now < n.regenFrom {
		return true // a wait already runs: its 911 comes at its end
	}
	// The next 911 fires a lease from now (the token-loss timer runs from
	// waitFrom, or from lastQry in limbo); its decision may leave them out.
	n.asker = 0
	n.waitFrom = n.now + n.lease() - n.tokLoss
	n.lastQry = n.waitFrom
	n.regenFrom = n.now + n.lease()
	n.regenOK = n.regenFrom + 2 + n.queryWait() + 2
	n.event(EventRegenWait, 0)
	if n.mode == ModeMember {
		// Meanwhile the members that answered keep serving, renewed by
		// this node (the newest copy among them), as a waiting holder's.
		n.regenWait = &dropWait{at: n.regenFrom, excl: missing, regen: true}
		n.sendRenewals(n.regenWait)
	}
	return true
}

// stepRenewed is a member's side of a "renewed" hello: the renewer it took
// renewal QueryID from had a majority take that renewal, so the member
// renews its lease from when it took it. Taking a renewal alone renews
// nothing (stepRenew): a renewer cut off with a minority must not keep
// that minority serving.
func (n *Node) stepRenewed(from NodeID, m *Message) {
	if n.mode == ModeMember && from == n.renewBy && m.QueryID == n.renewID && m.RingID == n.tok.RingID && n.now >= n.renewConflict {
		n.renewLeaseAt(n.renewAskAt)
	}
}
