package vipstate

import (
	"fmt"
	"net/netip"
)

// Input is what the token holder knows when it calls Step.
type Input struct {
	// Self is the node holding the token. Only Self may give away a VIP it
	// owns to another live node (preference return, balancing).
	Self Node
	// Live lists the ring's members in ring order. Entries that are None,
	// beyond the node map, or repeated are ignored. When Self is not listed
	// it is treated as not live: its VIPs fail over like any dead node's.
	Live []Node
	// Closed lists live nodes that receive no VIPs (closed by an operator,
	// or unhealthy): fail-over, preference return and balancing pass them
	// over. They keep what they own until their own turn, because a node
	// answers what it owns until it gives it away; at its turn a closed
	// Self hands every VIP over (ReasonHandover). When every live node is
	// closed, closed nodes receive VIPs after all and keep theirs: serving
	// beats not serving.
	Closed []Node
	// VIPLoad is each VIP's traffic in bytes/s, as measured by its owner and
	// carried on the token. Missing VIPs count as 0; nil disables balancing.
	VIPLoad map[netip.Addr]uint64
	// Balance configures dynamic load balancing.
	Balance BalanceConfig
}

// BalanceConfig configures dynamic load balancing (patent "Dynamic Load
// Balancing" 516 and Figure 9 box 910). A node's load is the sum of the loads
// of the VIPs the table gives it, so the effect of a move is visible in the
// very next Step without waiting for the rate counters to catch up.
type BalanceConfig struct {
	// Enabled turns balancing on. The patent enables it by default.
	Enabled bool
	// Threshold is how far apart, in percent of the mean node load, the most
	// and the least loaded live nodes must be before a VIP moves.
	Threshold uint32
	// MinRate is the total load, in bytes/s, below which nothing is balanced:
	// an idle cluster is never reshuffled.
	MinRate uint64
	// Cooldown is the number of token rotations after a balancing move
	// during which no other balancing move happens, so the rate counters see
	// the new placement before the next decision. 0 is taken as 1: at most
	// one balancing move per rotation.
	Cooldown uint32
}

// DefaultBalanceConfig returns the defaults.
func DefaultBalanceConfig() BalanceConfig {
	return BalanceConfig{
		Enabled:   true,    // patent: "Load balancing is enabled as a default condition"
		Threshold: 25,      // percent of the mean node load
		MinRate:   125_000, // bytes/s (1 Mbit/s): below this, no balancing
		Cooldown:  10,      // rotations between two balancing moves
	}
}

// Reason says why a VIP moved.
type Reason uint8

const (
	// ReasonFailover: the VIP's current host is not a live member. It moves at
	// once, at whichever node holds the token.
	ReasonFailover Reason = iota + 1
	// ReasonAssign: an open VIP had no host (start-up, or just opened) and
	// got one.
	ReasonAssign
	// ReasonPreference: a VIP with persistence preferred went back to its
	// live preferred host (after a recovery or an admin Move).
	ReasonPreference
	// ReasonBalance: dynamic load balancing moved the VIP off the most
	// loaded node.
	ReasonBalance
	// ReasonHandover: Self is closed (Input.Closed) and hands its VIPs to
	// open live nodes at its own turn.
	ReasonHandover
)

// String returns the reason in lower case, as shown in logs and metrics.
func (r Reason) String() string {
	switch r {
	case ReasonFailover:
		return "failover"
	case ReasonAssign:
		return "assign"
	case ReasonPreference:
		return "preference"
	case ReasonBalance:
		return "balance"
	case ReasonHandover:
		return "handover"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Move is one VIP changing host. From is None when the VIP had no host; To is
// None only when no member is live.
type Move struct {
	VIP    netip.Addr
	From   Node
	To     Node
	Reason Reason
}

// Step applies the table's policies once, as the token holder in.Self, and
// returns the new table and the moves it made: one Move per VIP that changed
// host, units in the order they were handled (by lowest VIP within each
// policy), a group's VIPs together. With no moves the new table shares the
// receiver's rows. The receiver is not changed. Step is pure: the same
// table and input always give the same result.
//
// In order:
//  1. Fail-over and assignment: every open VIP whose host is not live gets
//     a live host: its preferred host if live, else the live node with the
//     fewest VIPs (ring order breaks ties). A group moves as one. With no
//     live member every VIP is left without a host.
//  2. Preference return: VIPs with persistence preferred that Self holds
//     move to their live preferred host.
//  3. Balancing, only if 1 and 2 moved nothing: see balance.go.
//
// Step also counts a rotation each time Self is the first live member.
func (t Table) Step(in Input) (Table, []Move) {
	var s stepper
	s.init(t, in)
	s.place()
	s.returnPreferred()
	if len(s.moves) == 0 {
		s.balance()
	}
	return s.u, s.moves
}

// liveSet is a bitset of live nodes, small enough for the stack.
type liveSet [MaxNodes/64 + 1]uint64

func (l *liveSet) has(n Node) bool {
	return n != None && int(n/64) < len(l) && l[n/64]&(1<<(n%64)) != 0
}
func (l *liveSet) add(n Node) { l[n/64] |= 1 << (n % 64) }

// stepper holds one Step's working state.
type stepper struct {
	u     Table // the result; its rows are the receiver's until cow is true
	cow   bool
	in    Input
	live  liveSet
	nlive int
	// closed: live nodes that receive nothing (Input.Closed), empty when
	// every live node is closed.
	closed liveSet
	// handover: Self is live and closed, so it gives its VIPs away now.
	handover bool
	first    Node // the first live member in ring order
	self     bool // Self is live
	moves    []Move
}

func (s *stepper) init(t Table, in Input) {
	s.u, s.in = t, in
	for _, n := range in.Live {
		if n == None || int(n) > t.nodes || s.live.has(n) {
			continue
		}
		s.live.add(n)
		if s.first == None {
			s.first = n
		}
		s.nlive++
	}
	nclosed := 0
	for _, n := range in.Closed {
		if s.live.has(n) && !s.closed.has(n) {
			s.closed.add(n)
			nclosed++
		}
	}
	if nclosed == s.nlive {
		s.closed = liveSet{}
	}
	s.self = s.live.has(in.Self)
	s.handover = s.self && s.closed.has(in.Self)
	if s.self && in.Self == s.first {
		s.u.rotation++
	}
}

// eligible reports whether node n may receive a VIP: live and not closed.
func (s *stepper) eligible(n Node) bool { return s.live.has(n) && !s.closed.has(n) }

// needsHost reports whether open row r must be placed now: its host is not
// live, or it is a closed Self handing over.
func (s *stepper) needsHost(r Row) bool {
	return !r.Closed && (!s.live.has(r.Current) || s.handover && r.Current == s.in.Self)
}

// rows returns the result's rows, copying them on the first change.
func (s *stepper) rows() []Row {
	if !s.cow {
		s.u = s.u.derive()
		s.cow = true
	}
	return s.u.rows
}

// moveUnit moves every member of the unit of row i to node to.
func (s *stepper) moveUnit(i int, to Node, why Reason) {
	var buf unitBuf
	rows := s.rows()
	for _, m := range s.u.members(i, &buf) {
		r := &rows[m]
		s.moves = append(s.moves, Move{VIP: r.VIP, From: r.Current, To: to, Reason: why})
		r.Current = to
		if r.Persistence == PersistCurrent && to != None {
			// Sticky to the current host: it becomes sticky to the new one
			// and stays there when the old host recovers (patent flag 1).
			r.Preferred = to
		}
	}
}

// returnPreferred moves the VIPs Self holds with persistence preferred to
// their preferred host when that host is live.
func (s *stepper) returnPreferred() {
	if !s.self {
		return
	}
	self := s.in.Self
	for i := range s.u.rows {
		r := &s.u.rows[i]
		if r.Current != self || r.Persistence != PersistPreferred || r.Preferred == self || !s.eligible(r.Preferred) {
			continue
		}
		if !s.u.firstOfUnit(i) {
			continue
		}
		s.moveUnit(i, r.Preferred, ReasonPreference)
	}
}
