package vipstate

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var noBalance = BalanceConfig{}

// step runs one Step and compares its moves with want.
func step(t *testing.T, tab Table, in Input, want []Move) Table {
	t.Helper()
	got, moves := tab.Step(in)
	if diff := cmp.Diff(want, moves, addrs); diff != "" {
		t.Fatalf("Step(self %d, live %v) moves (-want +got):\n%s", in.Self, in.Live, diff)
	}
	return got
}

func wantRows(t *testing.T, tab Table, want []Row) {
	t.Helper()
	if diff := cmp.Diff(want, tab.Rows(), addrs); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
}

func mv(vip string, from, to Node, why Reason) Move {
	return Move{VIP: ip(vip), From: from, To: to, Reason: why}
}

// TestPatentTable1 walks the patent's Table 1 (hosts 1.1.1.5 = node 1 and
// 1.1.1.6 = node 2) through failures and recoveries of each host.
func TestPatentTable1(t *testing.T) {
	tab := table1(t)
	both := []Node{1, 2}

	// Both live: nothing to do, at either holder. Row 1's preference for
	// node 2 has persistence 0, so it does not move the VIP.
	tab = step(t, tab, Input{Self: 1, Live: both}, nil)
	tab = step(t, tab, Input{Self: 2, Live: both}, nil)

	// 1.1.1.6 (node 2) fails: its VIPs move to the survivor at once,
	// whatever their flag, including the preferred-sticky 1.1.1.4.
	tab = step(t, tab, Input{Self: 1, Live: []Node{1}}, []Move{
		mv("1.1.1.3", 2, 1, ReasonFailover),
		mv("1.1.1.4", 2, 1, ReasonFailover),
	})
	// Node 2 recovers. At its own turn it cannot take anything: the VIPs are
	// node 1's to give.
	tab = step(t, tab, Input{Self: 2, Live: both}, nil)
	// At node 1's turn the flag-3 VIP goes home; the flag-0 one stays.
	tab = step(t, tab, Input{Self: 1, Live: both}, []Move{
		mv("1.1.1.4", 1, 2, ReasonPreference),
	})
	wantRows(t, tab, []Row{
		{VIP: ip("1.1.1.1"), Current: 1, Preferred: 2, Persistence: PersistNone},
		{VIP: ip("1.1.1.2"), Current: 1, Preferred: 1, Persistence: PersistCurrent},
		{VIP: ip("1.1.1.3"), Current: 1, Preferred: None, Persistence: PersistNone},
		{VIP: ip("1.1.1.4"), Current: 2, Preferred: 2, Persistence: PersistPreferred},
	})

	// 1.1.1.5 (node 1) fails: all its VIPs go to node 2. The flag-1 VIP
	// becomes sticky to node 2 (Preferred follows).
	tab = step(t, tab, Input{Self: 2, Live: []Node{2}}, []Move{
		mv("1.1.1.1", 1, 2, ReasonFailover),
		mv("1.1.1.2", 1, 2, ReasonFailover),
		mv("1.1.1.3", 1, 2, ReasonFailover),
	})
	// Node 1 recovers: the flag-1 VIP stays on node 2 (patent: "It will
	// stay on that node even if the original Host recovers"), at either turn.
	tab = step(t, tab, Input{Self: 1, Live: both}, nil)
	tab = step(t, tab, Input{Self: 2, Live: both}, nil)
	wantRows(t, tab, []Row{
		{VIP: ip("1.1.1.1"), Current: 2, Preferred: 2, Persistence: PersistNone},
		{VIP: ip("1.1.1.2"), Current: 2, Preferred: 2, Persistence: PersistCurrent},
		{VIP: ip("1.1.1.3"), Current: 2, Preferred: None, Persistence: PersistNone},
		{VIP: ip("1.1.1.4"), Current: 2, Preferred: 2, Persistence: PersistPreferred},
	})
}

// TestFailoverSpreads: a dead node's VIPs go to the survivors with the
// fewest VIPs first, ties to the earlier node in ring order.
func TestFailoverSpreads(t *testing.T) {
	tab, err := New(3, []Row{
		{VIP: ip("10.0.0.1"), Current: 1},
		{VIP: ip("10.0.0.2"), Current: 1},
		{VIP: ip("10.0.0.3"), Current: 2},
		{VIP: ip("10.0.0.4"), Current: 3},
		{VIP: ip("10.0.0.5"), Current: 3},
		{VIP: ip("10.0.0.6"), Current: 3},
		{VIP: ip("10.0.0.7"), Current: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Node 3 is dead; node 2 holds the token (any holder fails over).
	// Counts start at n1=2, n2=1: n2 (1<2), then n1 (2=2, ring order), n2, n1.
	step(t, tab, Input{Self: 2, Live: []Node{1, 2}}, []Move{
		mv("10.0.0.4", 3, 2, ReasonFailover),
		mv("10.0.0.5", 3, 1, ReasonFailover),
		mv("10.0.0.6", 3, 2, ReasonFailover),
		mv("10.0.0.7", 3, 1, ReasonFailover),
	})
	// Ring order, not node number, breaks ties: with members listed 2, 1
	// (a ring starting at node 2), the first tie goes to node 2.
	step(t, tab, Input{Self: 2, Live: []Node{2, 1}}, []Move{
		mv("10.0.0.4", 3, 2, ReasonFailover),
		mv("10.0.0.5", 3, 2, ReasonFailover),
		mv("10.0.0.6", 3, 1, ReasonFailover),
		mv("10.0.0.7", 3, 2, ReasonFailover),
	})
}

// TestGroupMovesAsOne: a group fails over, returns and is balanced as one
// unit, and counts as all its VIPs when spreading.
func TestGroupMovesAsOne(t *testing.T) {
	tab, err := New(3, []Row{
		{VIP: ip("198.51.100.91"), Subnet: 1, Current: 1, Preferred: 1, Persistence: PersistPreferred, Group: 7},
		{VIP: ip("198.51.100.92"), Subnet: 1, Current: 1},
		{VIP: ip("203.0.113.91"), Subnet: 0, Current: 1, Preferred: 1, Persistence: PersistPreferred, Group: 7},
		{VIP: ip("203.0.113.92"), Subnet: 0, Current: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Node 1 dies: the group goes to node 2 or 3 as one (n2 has 1, n3 has 0:
	// n3), then the lone VIP to the node with fewest (n2 has 1, n3 has 2: n2).
	tab = step(t, tab, Input{Self: 3, Live: []Node{2, 3}}, []Move{
		mv("198.51.100.91", 1, 3, ReasonFailover),
		mv("203.0.113.91", 1, 3, ReasonFailover),
		mv("198.51.100.92", 1, 2, ReasonFailover),
	})
	// Node 1 recovers; at node 3's turn the group goes home together.
	step(t, tab, Input{Self: 3, Live: []Node{1, 2, 3}}, []Move{
		mv("198.51.100.91", 3, 1, ReasonPreference),
		mv("203.0.113.91", 3, 1, ReasonPreference),
	})
}

func TestClosedAndOpen(t *testing.T) {
	tab := table1(t)
	tab, err := tab.Close(ip("1.1.1.4"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Owner(ip("1.1.1.4")); got != None {
		t.Fatalf("closed VIP owned by %d, want nobody", got)
	}
	// Closed VIPs are not placed, even when their preferred host is live.
	tab = step(t, tab, Input{Self: 2, Live: []Node{1, 2}}, nil)
	tab = step(t, tab, Input{Self: 1, Live: []Node{1}}, []Move{
		mv("1.1.1.3", 2, 1, ReasonFailover),
	})
	// Opened while its preferred host (2) is dead: fewest VIPs → node 1 only.
	tab, err = tab.Open(ip("1.1.1.4"))
	if err != nil {
		t.Fatal(err)
	}
	tab = step(t, tab, Input{Self: 1, Live: []Node{1}}, []Move{
		mv("1.1.1.4", None, 1, ReasonAssign),
	})
	// Closed and reopened while node 2 is live: it goes straight to node 2.
	tab, _ = tab.Close(ip("1.1.1.4"))
	tab, _ = tab.Open(ip("1.1.1.4"))
	step(t, tab, Input{Self: 1, Live: []Node{1, 2}}, []Move{
		mv("1.1.1.4", None, 2, ReasonAssign),
	})
}

// TestAloneAndNobody: a lone node (Live = [self]) owns every open VIP; with
// no live member nothing is owned.
func TestAloneAndNobody(t *testing.T) {
	rows := []Row{
		{VIP: ip("10.0.0.1")},
		{VIP: ip("10.0.0.2"), Closed: true},
		{VIP: ip("10.0.0.3"), Preferred: 2, Persistence: PersistPreferred},
	}
	tab, err := New(3, rows)
	if err != nil {
		t.Fatal(err)
	}
	tab = step(t, tab, Input{Self: 1, Live: []Node{1}}, []Move{
		mv("10.0.0.1", None, 1, ReasonAssign),
		mv("10.0.0.3", None, 1, ReasonAssign),
	})
	step(t, tab, Input{Self: 1, Live: nil}, []Move{
		mv("10.0.0.1", 1, None, ReasonFailover),
		mv("10.0.0.3", 1, None, ReasonFailover),
	})
	// A holder that is not itself live gives up its VIPs like a dead node.
	step(t, tab, Input{Self: 1, Live: []Node{2}}, []Move{
		mv("10.0.0.1", 1, 2, ReasonFailover),
		mv("10.0.0.3", 1, 2, ReasonFailover),
	})
}

// TestJoinMovesNothing: a node joining gets VIPs only through preference or
// balancing.
func TestJoinMovesNothing(t *testing.T) {
	tab := lab(t, 3, 12) // groups on nodes 1..3; node 3 is the joiner below
	tab = step(t, tab, Input{Self: 1, Live: []Node{1, 2}}, []Move{
		// n1 and n2 hold 4 VIPs each: the first group goes to n1 (ring
		// order), the second to n2, which then has fewer.
		mv("10.0.0.3", 3, 1, ReasonFailover),
		mv("10.0.0.9", 3, 1, ReasonFailover),
		mv("10.0.0.6", 3, 2, ReasonFailover),
		mv("10.0.0.12", 3, 2, ReasonFailover),
	})
	for _, self := range []Node{1, 2, 3} {
		tab = step(t, tab, Input{Self: self, Live: []Node{1, 2, 3}, Balance: noBalance}, nil)
	}
	// With balancing on and 100 kB/s per VIP, nodes 1 and 2 carry 600 kB/s
	// each and node 3 nothing: node 1 (a most loaded node) gives its lowest
	// group (200 kB/s ≤ half the 600 kB/s gap) to the joiner.
	load := map[netip.Addr]uint64{}
	for _, r := range tab.Rows() {
		load[r.VIP] = 100_000
	}
	bal := DefaultBalanceConfig()
	tab = step(t, tab, Input{Self: 1, Live: []Node{1, 2, 3}, VIPLoad: load, Balance: bal}, []Move{
		mv("10.0.0.1", 1, 3, ReasonBalance),
		mv("10.0.0.7", 1, 3, ReasonBalance),
	})
	_ = tab
}

func TestRotationCount(t *testing.T) {
	tab := table1(t)
	for _, s := range []Node{1, 2, 1, 2, 1} {
		tab = step(t, tab, Input{Self: s, Live: []Node{1, 2}}, nil)
	}
	if got := tab.Rotation(); got != 3 {
		t.Errorf("Rotation() = %d after node 1 held the token 3 times, want 3", got)
	}
}

// FuzzStep decodes a table from arbitrary bytes and runs Step with an
// arbitrary holder and membership: it must not panic, and the result must be
// a valid table in which every open VIP has a live owner.
func FuzzStep(f *testing.F) {
	// Table 1 with node 1 as holder and members {1, 2} (mask bits 1 and 2).
	b, _ := table1(f).MarshalBinary()
	f.Add(b, uint16(1), uint64(0b110), true)
	// The same with a holder far beyond the node map and nobody live.
	f.Add(b, uint16(4000), uint64(0), false)
	b, _ = lab(f, 3, 8).MarshalBinary()
	f.Add(b, uint16(3), uint64(0b1010), true)
	f.Fuzz(func(t *testing.T, data []byte, self uint16, mask uint64, balance bool) {
		var tab Table
		if tab.UnmarshalBinary(data) != nil {
			return
		}
		var live []Node
		for n := range 64 {
			if mask&(1<<n) != 0 {
				live = append(live, Node(n))
			}
		}
		load := map[netip.Addr]uint64{}
		for i, r := range tab.Rows() {
			load[r.VIP] = uint64(i*7919) % 1000
		}
		in := Input{Self: Node(self), Live: live, VIPLoad: load, Balance: BalanceConfig{Enabled: balance, Threshold: 10}}
		got, moves := tab.Step(in)
		if _, err := New(got.Nodes(), got.Rows()); err != nil {
			t.Fatalf("Step made an invalid table: %v", err)
		}
		valid := map[Node]bool{}
		for _, n := range live {
			if n != None && int(n) <= tab.Nodes() {
				valid[n] = true
			}
		}
		for _, r := range got.Rows() {
			if !r.Closed && len(valid) > 0 && !valid[r.Current] {
				t.Fatalf("open %s on %d, not live (live %v, moves %v)", r.VIP, r.Current, live, moves)
			}
		}
	})
}

func TestSelfOutsideTheMap(t *testing.T) {
	tab := table1(t)
	step(t, tab, Input{Self: 4000, Live: []Node{1, 2, 4000, 0, 1}}, nil)
}

// A closed first node still counts rotations (balancing's cooldown runs on
// them) and hands its VIPs over at its own turn (found by review: when a
// closed node left itself out of Live, the count stalled while node 1 was
// closed).
func TestClosedFirstNodeRotates(t *testing.T) {
	tab := lab(t, 3, 8)
	live := []Node{1, 2, 3}
	for round := 0; round < 10; round++ {
		for _, self := range live {
			var moves []Move
			tab, moves = tab.Step(Input{Self: self, Live: live, Closed: []Node{1}})
			for _, mv := range moves {
				if mv.From == 1 && (self != 1 || mv.Reason != ReasonHandover) {
					t.Fatalf("move %+v at node %d's turn: only node 1 hands its VIPs over, at its own turn", mv, self)
				}
			}
		}
	}
	if got := tab.Rotation(); got != 10 {
		t.Errorf("rotation %d after 10 rotations with node 1 closed, want 10", got)
	}
	if n := len(tab.OwnedBy(1)); n != 0 {
		t.Errorf("closed node 1 still owns %d VIPs", n)
	}
}
