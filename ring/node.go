package ring

import (
	"errors"
	"fmt"
	"slices"
)

// Mode is where a node stands.
type Mode uint8

// Modes.
const (
	// ModeStarting: looking for a ring (Figure 8, box 804); serving nothing.
	ModeStarting Mode = iota + 1
	// ModeMember: in a ring; serving what the committed carriages give it.
	ModeMember
	// ModeLimbo: between rings. The node learnt that its ring moved on
	// without it (a newer token exists) and serves nothing until it joins
	// a ring or regenerates one.
	ModeLimbo
	// ModeLeft: Leave finished.
	ModeLeft
)

func (m Mode) String() string {
	switch m {
	case ModeStarting:
		return "starting"
	case ModeMember:
		return "member"
	case ModeLimbo:
		return "limbo"
	case ModeLeft:
		return "left"
	}
	return "mode(?)"
}

// seqJump is added to the sequence number whenever a token line starts that
// must dominate an older one: after a failed hop (the destination may hold
// the previous token after all), on regeneration and on a merge. Any token
// of the older line then arrives stale everywhere the new line has been.
const seqJump = 1 << 20

// Counters are cumulative.
type Counters struct {
	PacketsSent, MessagesSent, MessagesReceived, BytesSent uint64
	Resends, SendFailures, LateAcks, Duplicates            uint64
	BadInput                                               uint64 // datagrams rejected by Step
	TokensAccepted, TokensStale                            uint64
	Drops, Joins, Regenerations, Queries, Denied           uint64
	Merges                                                 uint64 // times this node absorbed another ring's members
	// BadTurns counts Holder turns whose carriages would not fit on the
	// token (too many, too large): the core kept the carriages it had.
	BadTurns uint64
	// EncodeFailures counts messages of this node's own that did not
	// encode; each fails like an unacknowledged one instead of stopping
	// the node. Nonzero means a bug.
	EncodeFailures uint64
}

// Status is a snapshot for operators, tests and the simulator.
type Status struct {
	ID      NodeID
	Mode    Mode
	RingID  uint64
	Seq     uint64 // seq of this node's copy of the token
	MaxSeq  uint64 // highest seq accepted or sent: never goes back
	Rank    uint64 // last seq this node sent or regenerated (the 911 permission rank)
	Members []NodeID
	// Holder is this node when it holds the token; otherwise the node it
	// last sent the token to (the holder as far as this node knows), or 0.
	Holder  NodeID
	Holding bool   // holds the token now
	Passing bool   // sent the token, waiting for the hop's ack
	PassTo  NodeID // destination of the token in flight
	PassSeq uint64
	// DropWait is, in quorum mode majority, the destination of a failed
	// hop whose drop waits out its lease (then Passing, to it); 0 if none.
	DropWait NodeID
	// SinceToken is the ticks since this node last accepted, sent or
	// regenerated the token; Rotation the ticks between its last two accepts.
	SinceToken, Rotation int64
	Tick                 int64
	Counters             Counters
}

type joinReq struct {
	node   NodeID
	maxSeq uint64
	at     int64  // tick the request was last heard; requests expire after the token-loss timeout
	ring   uint64 // a merge: the live ring it is a member of (0: a join request)
	via    NodeID // a merge: the node of that ring this node heard
}

type query struct {
	id       uint64
	waiting  []NodeID
	answers  []answer
	deadline int64
	deferred bool // a stall (Lag) has postponed the deadline once already
}

type answer struct {
	from NodeID
	m    Message
}

// Node is one member of the ring as a pure state machine. It is not safe
// for concurrent use: the driver serialises Step, Tick, Leave and Ready.
type Node struct {
	cfg      Config
	tokLoss  int64
	now      int64
	seenAt   int64 // Config.Clock when lastSeen last moved for the token (Cause.LastAck of a regeneration); 0 without a Clock
	rl       reliable
	ready    Ready
	scratch  []byte
	counters Counters

	mode     Mode
	tok      Message // this node's copy of the token (the one it would regenerate)
	maxSeq   uint64
	rank     uint64
	bumpTo   uint64 // the next pass must exceed this seq by seqJump
	holding  bool
	holdEnd  int64
	passing  bool
	passID   uint64
	passTo   NodeID
	passSeq  uint64
	lastSeen int64 // the token was last accepted, sent or regenerated
	waitFrom int64 // the 911 timer runs from here (token seen, or last 911 denied)
	accepts  [2]int64
	left     [leftRings]uint64 // ring ids this node's line moved on from (leaveRing)
	leftNext int

	pending []joinReq
	query   *query
	lastQry int64

	started    bool
	startEnd   int64
	startExt   bool
	heardRing  bool
	heardLower bool
	lastHello  int64
	lastProbe  int64
	leaving    bool

	causes causes // membership changes to tell the next members (cause.go)
	asker  NodeID // the node whose 911 nudged ours (the regeneration's cause names it)

	// Adaptive timeouts (adapt.go): local health multiplier, when it was
	// last raised, and the longest recent gap between token visits.
	lhm    int
	lhmAt  int64
	gapMax int64
	// tokLossBase is tokLoss before local health (lease).
	tokLossBase int64

	// Serving leases, quorum majority (lease.go): the last renewal, whether
	// the lease ran out, and a failed hop whose drop waits.
	leaseAt   int64
	suspended bool
	dropWait  *dropWait
	regenWait *dropWait // a 911's wait (waitRegen) renewing the members that answered
	// The holder whose renewal this node last took (lease.go), its ring,
	// when; and until when it takes none (two holders of one ring asked).
	renewBy       NodeID
	renewRing     uint64
	renewLast     int64
	renewConflict int64
	renewID       uint64
	renewAskAt    int64
	// unheard: nodes dropped for a hop they did not acknowledge, by this
	// node or (learnt on the token) by another, with the tick this node
	// last sent each a proving hello; their join or merge requests count
	// only in an answer to a hello of ours (holddown.go).
	unheard map[NodeID]int64
	// regenFrom..regenOK: ticks in which a 911 may regenerate without
	// members of the lost ring (lease.go).
	regenFrom, regenOK int64

	proposals    []Proposal // waiting for this node's turn (Propose)
	lastProposal uint64     // ID of the last proposal
	local        Local      // SetLocal
}

// MaxProposals is how many proposals may wait for this node's turn with
// the token. A turn comes at least every rotation while the node is a
// member, so a full queue means the node is not in a ring (or an operator
// script runs away): Propose then refuses more with ErrProposalsFull.
const MaxProposals = 256

// ErrProposalsFull is returned by Propose when MaxProposals wait.
var ErrProposalsFull = errors.New("ring: too many proposals wait for this node's turn with the token")

// ErrLeft is returned by Propose after the node has left the ring.
var ErrLeft = errors.New("ring: this node has left the ring")

// NewNode returns a starting node. It sends nothing until the first Tick.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Nodes = slices.Clone(cfg.Nodes)
	n := &Node{cfg: cfg, mode: ModeStarting, tokLoss: int64(cfg.TokenLossTicks()), tokLossBase: int64(cfg.TokenLossTicks())}
	n.rl.recent = make(map[NodeID]*recentIDs)
	n.rl.lastAck = make(map[NodeID]ackSeen)
	n.rl.rtt = make(map[NodeID]uint16)
	n.rl.est = make(map[NodeID]*rttEst)
	n.unheard = make(map[NodeID]int64)
	// Message ids start at a random point so that a restarted node's ids
	// do not collide with its previous life's in the peers' windows.
	n.rl.nextID = cfg.Rand()
	return n, nil
}

// AddNodes appends ids to the node map (a reload that appended nodes to
// every node's file). The new nodes may then join like any node of the
// map; the token-loss timeout is recomputed (adaptTokenLoss), and its
// static floor grows with the map. Nodes never
// leave the map at run time.
func (n *Node) AddNodes(ids ...NodeID) error {
	if len(n.cfg.Nodes)+len(ids) > MaxNodes {
		return fmt.Errorf("ring: node map of %d nodes; at most %d", len(n.cfg.Nodes)+len(ids), MaxNodes)
	}
	for i, id := range ids {
		if id == 0 || slices.Contains(n.cfg.Nodes, id) || slices.Contains(ids[:i], id) {
			return fmt.Errorf("ring: node %d is already in the node map (or is 0)", id)
		}
	}
	n.cfg.Nodes = append(n.cfg.Nodes, ids...)
	n.adaptTokenLoss()
	return nil
}

// Timers are the ring timers a running node may change (a reload), in
// ticks, with Config's meanings.
type Timers struct {
	HopInterval, MinRotation, AckTimeout, AckRetries, TokenLoss, JoinTimeout int
}

// Timers returns the node's current timers.
func (n *Node) Timers() Timers {
	c := n.cfg
	return Timers{c.HopInterval, c.MinRotation, c.AckTimeout, c.AckRetries, c.TokenLoss, c.JoinTimeout}
}

// SetTimers changes the timers of a running node (a reload), checked as
// NewNode checks them; the tick stays. Messages already sent keep the
// resend schedule they had; holds, resends and the token-loss timeout
// that start from now follow the new values. During the rotation in which
// the members switch, a member still on the old, shorter token-loss
// timeout may send a 911 early, which is harmless (the holder answers it).
func (n *Node) SetTimers(t Timers) error {
	c := n.cfg
	c.HopInterval, c.MinRotation, c.AckTimeout, c.AckRetries, c.TokenLoss, c.JoinTimeout =
		t.HopInterval, t.MinRotation, t.AckTimeout, t.AckRetries, t.TokenLoss, t.JoinTimeout
	if err := c.validate(); err != nil {
		return err
	}
	n.cfg = c
	n.adaptTokenLoss()
	return nil
}

// Step hands the node one authenticated datagram payload received from
// node from on path path. Bad input returns an error (and is counted);
// it never panics.
func (n *Node) Step(from NodeID, path int, data []byte) error {
	if n.mode == ModeLeft {
		return nil
	}
	if path < 0 || path >= n.cfg.Paths {
		n.counters.BadInput++
		return fmt.Errorf("ring: datagram on path %d, but there are %d paths", path, n.cfg.Paths)
	}
	if from == n.cfg.ID || !slices.Contains(n.cfg.Nodes, from) {
		n.counters.BadInput++
		return fmt.Errorf("ring: datagram from node %d, which is not a peer in the node map", from)
	}
	if err := n.stepFrame(from, path, data); err != nil {
		n.counters.BadInput++
		return fmt.Errorf("ring: from node %d: %w", from, err)
	}
	return nil
}

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	if n.mode == ModeLeft {
		return
	}
	n.now++
	n.tickReliable()
	switch n.mode {
	case ModeStarting:
		n.tickStart()
	case ModeMember:
		n.checkLease()
		n.tickRenewals(n.regenWait)
		n.tickRenewals(n.dropWait)
		if n.dropWait != nil {
			n.tickDropWait()
		} else if n.holding && n.now >= n.holdEnd {
			n.pass()
		} else if !n.holding && !n.passing && n.query == nil && n.now-max(n.lastSeen, n.waitFrom) > n.tokLoss {
			n.startQuery()
		}
	case ModeLimbo:
		if n.query == nil && n.now-n.lastQry > n.tokLoss {
			n.startQuery()
		}
	}
	if n.query != nil && n.now >= n.query.deadline {
		n.decide()
	}
}

// HasReady reports whether Ready has anything to return.
func (n *Node) HasReady() bool {
	return len(n.ready.Packets) > 0 || n.ready.State != nil || len(n.ready.Events) > 0 || n.ready.Left
}

// Ready returns and clears the pending output.
func (n *Node) Ready() Ready {
	r := n.ready
	n.ready = Ready{}
	return r
}

// Propose queues a change for this node's next turn with the token as a
// member of a ring with quorum, where the Holder receives it in
// TokenView.Proposals; its answer comes out of Ready as an EventApplied or
// EventRefused event carrying the returned ID. The core copies data.
// Proposals still waiting when the node leaves are refused then.
func (n *Node) Propose(kind uint16, data []byte) (id uint64, err error) {
	if n.mode == ModeLeft {
		return 0, ErrLeft
	}
	if len(n.proposals) >= MaxProposals {
		return 0, ErrProposalsFull
	}
	n.lastProposal++
	n.proposals = append(n.proposals, Proposal{ID: n.lastProposal, Kind: kind, Data: slices.Clone(data)})
	return n.lastProposal, nil
}

// SetLocal replaces what this node says of itself on the token; the Holder
// reads it (TokenView.Local) at each of the node's turns from now on. The
// core copies l.Load.
func (n *Node) SetLocal(l Local) {
	l.Load = slices.Clone(l.Load)
	n.local = l
}

// Leave begins a graceful leave: the next time this node holds the token it
// removes itself, lets the Holder hand its state (VIPs) over to the others,
// and passes the token on; when that hop is acknowledged Ready().Left is
// true. A node that is not in a ring leaves at once.
func (n *Node) Leave() {
	if n.mode == ModeLeft || n.leaving {
		return
	}
	n.leaving = true
	n.event(EventLeaving, 0)
	if n.mode != ModeMember {
		n.finishLeave()
		return
	}
	if n.holding && n.dropWait == nil {
		n.pass()
	}
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	s := Status{
		ID: n.cfg.ID, Mode: n.mode, RingID: n.tok.RingID, Seq: n.tok.Seq, MaxSeq: n.maxSeq, Rank: n.rank,
		Members: slices.Clone(n.tok.Members), Holding: n.holding, Passing: n.passing,
		SinceToken: n.now - n.lastSeen, Rotation: n.accepts[1] - n.accepts[0], Tick: n.now, Counters: n.counters,
	}
	if n.passing {
		s.PassTo, s.PassSeq = n.passTo, n.passSeq
	}
	if w := n.dropWait; w != nil {
		// The hop failed, but the destination may have the token (only
		// its acks lost) until the drop: as far as the ring goes the
		// token is still in flight to it.
		s.Holding, s.Passing, s.PassTo, s.PassSeq, s.DropWait = false, true, w.to, n.passSeq, w.to
	}
	switch {
	case n.holding:
		s.Holder = n.cfg.ID
	case n.mode == ModeMember && n.tok.Sender == n.cfg.ID:
		s.Holder = n.tok.Dest
	}
	if n.mode != ModeMember {
		s.Members = nil
	}
	return s
}

// live reports whether this node is in a ring whose token it has seen
// within the token-loss timeout, or, in quorum mode majority, whose lease
// still runs: its ring may still count it, so no other ring may add it
// as a joiner (lease.go).
func (n *Node) live() bool {
	return n.mode == ModeMember && (n.holding || n.passing || n.now-n.lastSeen <= n.tokLoss ||
		(n.majority() && !n.suspended))
}

func (n *Node) flags() uint8 {
	var f uint8
	if n.live() {
		f |= FlagLive
	}
	if n.holding || n.passing {
		f |= FlagHolding
	}
	if n.mode == ModeMember {
		f |= FlagMember
	}
	return f
}

// noQuorum reports whether a ring of members lacks quorum: in quorum mode
// majority, they are no majority of the node map.
func (n *Node) noQuorum(members []NodeID) bool { return n.noQuorumOf(len(members)) }

// noQuorumOf is noQuorum for a ring of k members.
func (n *Node) noQuorumOf(k int) bool {
	return n.cfg.Quorum == Majority && 2*k <= len(n.cfg.Nodes)
}

// runHolder calls the Holder on the token copy and commits the result. It
// reports whether the Holder asked for the token to go on at once.
func (n *Node) runHolder(members, dropped, joined []NodeID) (urgent bool) {
	urgent = n.callHolder(TokenView{Members: members, Dropped: dropped, Joined: joined})
	n.commit()
	return urgent
}

// callHolder completes v (Self, carriages, quorum, proposals, Local), calls
// the Holder, puts its carriages on the token copy and reports its
// answers to the proposals it was handed. It reports Turn.Urgent.
func (n *Node) callHolder(v TokenView) (urgent bool) {
	v.Self = n.cfg.ID
	v.Members = slices.Clone(v.Members)
	v.Carriages = n.tok.Carriages
	v.NoQuorum = n.noQuorum(v.Members)
	v.Alone = len(v.Members) == 1 && v.Members[0] == n.cfg.ID
	v.Local = n.local
	if len(n.proposals) > 0 && !v.NoQuorum && !n.leaving && slices.Contains(v.Members, n.cfg.ID) {
		v.Proposals, n.proposals = n.proposals, nil
	}
	t := n.cfg.Holder.OnToken(v)
	if cs, err := n.checkCarriages(t.Carriages); err != nil {
		// Whatever the Holder made of it, the carriages it was handed
		// came off the wire or from its last good turn, so they fit.
		n.counters.BadTurns++
		n.event(EventBadTurn, 0)
		n.ready.Events[len(n.ready.Events)-1].Err = err.Error()
	} else {
		n.tok.Carriages = cs
	}
	for _, r := range t.Results {
		if !slices.ContainsFunc(v.Proposals, func(p Proposal) bool { return p.ID == r.ID }) {
			continue // not one it was handed: nothing to report
		}
		n.proposalEvent(r)
	}
	return t.Urgent
}

// checkCarriages returns a Holder's carriages without any of the core's
// kinds, or an error when they would not fit on the token: more than
// MaxHolderCarriages, or more bytes than a message may have.
func (n *Node) checkCarriages(cs []Carriage) ([]Carriage, error) {
	size := 0
	core := false
	for _, c := range cs {
		size += 6 + len(c.Data)
		core = core || c.Kind >= KindCoreFirst
	}
	if core {
		cs = slices.DeleteFunc(slices.Clone(cs), func(c Carriage) bool { return c.Kind >= KindCoreFirst })
	}
	if len(cs) > MaxHolderCarriages {
		return nil, fmt.Errorf("the Holder returned %d carriages, more than %d", len(cs), MaxHolderCarriages)
	}
	// The token's header, members and count, and the causes take the rest.
	fixed := messageHeader + 2 + 2 + 2 + 2*len(n.tok.Members) + 2 + 6 + 1 + MaxCauses*causeRecordLen
	if limit := n.cfg.MaxMessage - fixed; size > limit {
		return nil, fmt.Errorf("the Holder returned %d bytes of carriages, more than %d", size, limit)
	}
	return cs, nil
}

// proposalEvent reports a proposal's outcome.
func (n *Node) proposalEvent(r Result) {
	k := EventApplied
	if r.Err != "" {
		k = EventRefused
	}
	n.event(k, 0)
	e := &n.ready.Events[len(n.ready.Events)-1]
	e.Proposal, e.Err = r.ID, r.Err
}

// commit publishes the node's copy of the token as the committed state.
func (n *Node) commit() {
	s := &State{RingID: n.tok.RingID, Seq: n.tok.Seq, Carriages: n.tok.Carriages}
	if n.mode == ModeMember {
		s.Members = slices.Clone(n.tok.Members)
		s.Holder = n.cfg.ID
		s.Alone = len(s.Members) == 1 && s.Members[0] == n.cfg.ID
		s.NoQuorum = n.noQuorum(s.Members) || n.suspended
	}
	n.ready.State = s
}

func (n *Node) finishLeave() {
	for _, p := range n.proposals {
		n.proposalEvent(Result{ID: p.ID, Err: "this node left the ring before its turn with the token"})
	}
	n.proposals = nil
	n.mode = ModeLeft
	n.holding, n.passing, n.query, n.dropWait, n.regenWait = false, false, nil, nil, nil
	n.rl.out = nil
	n.commit()
	n.ready.Left = true
	n.eventCause(EventLeft, 0, Cause{Kind: CauseLeft, Node: n.cfg.ID, By: n.cfg.ID}, nil)
}

// hold is the ticks this node keeps the token in its current ring.
func (n *Node) hold() int64 { return int64(n.cfg.Hold(len(n.tok.Members))) }

// nextAfter returns the member that follows id in node-map order, skipping
// self; 0 when there is none.
func (n *Node) nextAfter(id NodeID, members []NodeID) NodeID {
	i := slices.Index(n.cfg.Nodes, id)
	for k := 1; k <= len(n.cfg.Nodes); k++ {
		c := n.cfg.Nodes[(i+k)%len(n.cfg.Nodes)]
		if c != n.cfg.ID && slices.Contains(members, c) {
			return c
		}
	}
	return 0
}

// sortMembers puts members in node-map order and removes duplicates.
func (n *Node) sortMembers(ms []NodeID) []NodeID {
	out := make([]NodeID, 0, len(ms))
	for _, id := range n.cfg.Nodes {
		if slices.Contains(ms, id) {
			out = append(out, id)
		}
	}
	return out
}

func minus(a, b []NodeID) []NodeID {
	var out []NodeID
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// maxIdleTicks caps IdleTicks.
const maxIdleTicks = 1 << 16

// IdleTicks returns how many of the coming Ticks would change nothing but
// the clock (no output, no timer fires) if no Step or Leave comes first.
// A driver may sleep through them and deliver them in a batch before the
// next Step or Leave, or before the first Tick that may act
// (ringnet.Idler). It is exact: every timer of the node is accounted for.
func (n *Node) IdleTicks() int {
	if n.mode == ModeLeft {
		return maxIdleTicks
	}
	next := n.now + maxIdleTicks + 1 // the first tick (value of now after it) that may act
	at := func(t int64) {
		if t < next {
			next = t
		}
	}
	for _, o := range n.rl.out {
		at(o.nextAt)
		if o.hedgeAt != 0 {
			at(o.hedgeAt)
		}
	}
	stale := int64(4*n.cfg.AckBudget() + 4)
	for _, m := range n.rl.in {
		at(m.lastAt + stale + 1)
	}
	switch n.mode {
	case ModeStarting:
		if !n.started {
			return 0
		}
		at(n.lastHello + helloEvery(&n.cfg))
		at(n.startEnd)
	case ModeMember:
		if n.majority() && !n.suspended {
			at(n.leaseAt + n.lease() + 1)
		}
		for _, w := range [...]*dropWait{n.regenWait, n.dropWait} {
			if w != nil && w.renewAt < w.at {
				at(w.renewAt) // tickRenewals
			}
		}
		if w := n.dropWait; w != nil {
			at(w.at)
		} else if n.holding {
			at(n.holdEnd)
		} else if !n.passing && n.query == nil {
			at(max(n.lastSeen, n.waitFrom) + n.tokLoss + 1)
		}
	case ModeLimbo:
		if n.query == nil {
			at(n.lastQry + n.tokLoss + 1)
		}
	}
	if n.query != nil {
		at(n.query.deadline)
	}
	return int(min(max(next-n.now-1, 0), maxIdleTicks))
}

// seenNow stamps seenAt with the wall clock, if the node has one.
func (n *Node) seenNow() {
	if n.cfg.Clock != nil {
		n.seenAt = n.cfg.Clock()
	}
}
