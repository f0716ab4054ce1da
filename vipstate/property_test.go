package vipstate

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// genRows draws a valid table for a node map of nodes: gateway pairs (one
// group, one VIP on each of subnets 0 and 1) and lone VIPs, with random
// policies, hosts and closed flags.
func genRows(t *rapid.T, nodes int) []Row {
	var rows []Row
	policy := func(label string) Row {
		var r Row
		r.Persistence = rapid.SampledFrom([]Persistence{PersistNone, PersistCurrent, PersistPreferred}).Draw(t, label+" persistence")
		if r.Persistence == PersistPreferred {
			r.Preferred = Node(rapid.IntRange(1, nodes).Draw(t, label+" preferred"))
		} else {
			r.Preferred = Node(rapid.IntRange(0, nodes).Draw(t, label+" hint"))
		}
		r.Closed = rapid.IntRange(0, 4).Draw(t, label+" closed") == 0
		if !r.Closed {
			r.Current = Node(rapid.IntRange(0, nodes).Draw(t, label+" current"))
		}
		return r
	}
	for k := range rapid.IntRange(0, 4).Draw(t, "pairs") {
		r := policy(fmt.Sprintf("pair %d", k))
		r.Group = uint16(k + 1)
		ext, in := r, r
		ext.VIP, ext.Subnet = netip.AddrFrom4([4]byte{203, 0, 113, byte(k + 1)}), 0
		in.VIP, in.Subnet = netip.AddrFrom4([4]byte{198, 51, 100, byte(k + 1)}), 1
		rows = append(rows, ext, in)
	}
	for j := range rapid.IntRange(0, 6).Draw(t, "lone") {
		r := policy(fmt.Sprintf("lone %d", j))
		r.VIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(j + 1)})
		r.Subnet = uint8(rapid.IntRange(0, 3).Draw(t, "subnet"))
		rows = append(rows, r)
	}
	return rows
}

// cluster is the state of one property run: the real table and the model
// side by side, which nodes are up, who held the token last, the loads.
type cluster struct {
	tab    Table
	m      model
	nodes  int
	up     []bool // up[n] for n in 1..nodes; the ring order is node order
	closed []bool // closed[n]: the node receives no VIPs (Input.Closed)
	holder Node
	load   map[netip.Addr]uint64
	cfg    BalanceConfig
	// reasons counts moves by reason across all runs, to show in the log
	// that every policy was exercised.
	reasons map[Reason]int
}

func (c *cluster) live() []Node {
	var l []Node
	for n := 1; n <= c.nodes; n++ {
		if c.up[n] {
			l = append(l, Node(n))
		}
	}
	return l
}

func (c *cluster) closedList() []Node {
	var l []Node
	for n := 1; n <= c.nodes; n++ {
		if c.closed[n] {
			l = append(l, Node(n))
		}
	}
	return l
}

// eligible: n may receive VIPs, the rule of Input.Closed.
func (c *cluster) eligible(n Node) bool {
	if n == None || int(n) > c.nodes || !c.up[n] {
		return false
	}
	for _, m := range c.live() {
		if !c.closed[m] {
			return !c.closed[n]
		}
	}
	return true // every live node is closed
}

// next is the live member after the last holder in ring order.
func (c *cluster) next() Node {
	for k := 1; k <= c.nodes; k++ {
		n := Node((int(c.holder)+k-1)%c.nodes + 1)
		if c.up[n] {
			return n
		}
	}
	return None
}

// step passes the token once and checks the result against the model and
// the invariants that hold after every Step.
func (c *cluster) step(t *rapid.T) {
	live := c.live()
	in := Input{Self: c.next(), Live: live, Closed: c.closedList(), VIPLoad: c.load, Balance: c.cfg}
	pre := c.tab
	got, moves := c.tab.Step(in)
	wantM, wantMoves := c.m.step(in)
	if diff := cmp.Diff(wantMoves, moves, addrs); diff != "" {
		t.Fatalf("Step(self %d, live %v) moves differ from the model (-model +table):\n%s", in.Self, live, diff)
	}
	if diff := cmp.Diff(wantM.rows, got.Rows(), addrs); diff != "" {
		t.Fatalf("Step(self %d, live %v) rows differ from the model (-model +table):\n%s", in.Self, live, diff)
	}
	if got.rotation != wantM.rotation || got.balanceAt != wantM.balanceAt {
		t.Fatalf("rotation/balanceAt %d/%d, model %d/%d", got.rotation, got.balanceAt, wantM.rotation, wantM.balanceAt)
	}
	checkMoves(t, pre, got, in, moves)
	checkOwners(t, got, live)
	for _, mv := range moves {
		c.reasons[mv.Reason]++
	}
	c.tab, c.m, c.holder = got, wantM, in.Self
}

// checkMoves: every change of host is reported by exactly one Move whose
// reason holds in the input, and a VIP leaves a live node only at that
// node's own turn (so no VIP is ever answered by two nodes).
func checkMoves(t *rapid.T, pre, post Table, in Input, moves []Move) {
	isLive := func(n Node) bool { return n != None && slices.Contains(in.Live, n) }
	seen := map[netip.Addr]bool{}
	for _, mv := range moves {
		if seen[mv.VIP] {
			t.Fatalf("%s moved twice in one Step: %v", mv.VIP, moves)
		}
		seen[mv.VIP] = true
		before, _ := pre.Lookup(mv.VIP)
		after, _ := post.Lookup(mv.VIP)
		if mv.From != before.Current || mv.To != after.Current || mv.From == mv.To {
			t.Fatalf("move %+v does not match the rows %+v → %+v", mv, before, after)
		}
		if before.Closed {
			t.Fatalf("closed VIP moved: %+v", mv)
		}
		if mv.To == None && len(in.Live) > 0 || mv.To != None && !isLive(mv.To) {
			t.Fatalf("move %+v: target not live (live %v)", mv, in.Live)
		}
		if mv.To != None && slices.Contains(in.Closed, mv.To) {
			for _, n := range in.Live {
				if !slices.Contains(in.Closed, n) {
					t.Fatalf("move %+v to a closed node while %d is open (live %v, closed %v)", mv, n, in.Live, in.Closed)
				}
			}
		}
		if isLive(mv.From) && mv.From != in.Self {
			t.Fatalf("move %+v between live nodes at holder %d: only the owner may hand a VIP over", mv, in.Self)
		}
		var ok bool
		switch mv.Reason {
		case ReasonFailover:
			ok = mv.From != None && !isLive(mv.From)
		case ReasonAssign:
			ok = mv.From == None
		case ReasonHandover:
			ok = mv.From == in.Self && slices.Contains(in.Closed, in.Self)
		case ReasonPreference:
			ok = before.Persistence == PersistPreferred && mv.To == before.Preferred && mv.From == in.Self
		case ReasonBalance:
			ok = in.Balance.Enabled && before.Persistence == PersistNone && mv.From == in.Self
			// Never overshoots: the giver keeps at least what the receiver
			// ends up with.
			if from, to := nodeLoad(post, in.VIPLoad, mv.From), nodeLoad(post, in.VIPLoad, mv.To); from < to {
				t.Fatalf("balancing move %+v overshoots: giver left with %d, receiver %d", mv, from, to)
			}
		}
		if !ok {
			t.Fatalf("move %+v: its reason does not hold (row before %+v, self %d, live %v)", mv, before, in.Self, in.Live)
		}
	}
	for i := range pre.Len() {
		if a, b := pre.Row(i), post.Row(i); a.Current != b.Current && !seen[a.VIP] {
			t.Fatalf("%s changed host %d → %d without a Move", a.VIP, a.Current, b.Current)
		}
	}
}

func nodeLoad(tab Table, load map[netip.Addr]uint64, n Node) uint64 {
	var sum uint64
	for _, r := range tab.Rows() {
		if r.Current == n {
			sum += load[r.VIP]
		}
	}
	return sum
}

// checkOwners: after a Step, every open VIP has a live owner when any member
// is live, and nothing is owned when none is.
func checkOwners(t *rapid.T, tab Table, live []Node) {
	for _, r := range tab.Rows() {
		switch {
		case r.Closed && r.Current != None:
			t.Fatalf("closed %s owned by %d", r.VIP, r.Current)
		case len(live) == 0 && r.Current != None:
			t.Fatalf("%s owned by %d with no live member", r.VIP, r.Current)
		case len(live) > 0 && !r.Closed && !slices.Contains(live, r.Current):
			t.Fatalf("open %s owned by %d, not a live member of %v", r.VIP, r.Current, live)
		}
	}
}

// checkTable holds after every action: the table is valid (closed VIPs have
// no host, groups share host and policy), and it survives the wire.
func checkTable(t *rapid.T, tab Table) {
	if _, err := New(tab.Nodes(), tab.Rows()); err != nil {
		t.Fatalf("table no longer valid: %v", err)
	}
	b, err := tab.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Table
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if diff := cmp.Diff(tab.Rows(), back.Rows(), addrs); diff != "" || back.rotation != tab.rotation || back.balanceAt != tab.balanceAt {
		t.Fatalf("round trip changed the table:\n%s", diff)
	}
}

// TestPropertyEvents runs random sequences of crashes, recoveries, operator
// actions, load changes and token passes, checking the table against the
// model and the invariants after each.
func TestPropertyEvents(t *testing.T) {
	reasons := map[Reason]int{}
	defer func() { t.Logf("moves checked, by reason: %v", reasons) }()
	rapid.Check(t, func(t *rapid.T) {
		nodes := rapid.IntRange(1, 5).Draw(t, "nodes")
		rows := genRows(t, nodes)
		tab, err := New(nodes, rows)
		if err != nil {
			t.Fatalf("generator made an invalid table: %v", err)
		}
		c := &cluster{
			tab:     tab,
			m:       newModel(nodes, rows),
			nodes:   nodes,
			up:      make([]bool, nodes+1),
			closed:  make([]bool, nodes+1),
			load:    map[netip.Addr]uint64{},
			reasons: reasons,
			cfg: BalanceConfig{
				Enabled:   rapid.Bool().Draw(t, "balance"),
				Threshold: uint32(rapid.IntRange(0, 60).Draw(t, "threshold")),
				MinRate:   uint64(rapid.IntRange(0, 2000).Draw(t, "min rate")),
				Cooldown:  uint32(rapid.IntRange(0, 3).Draw(t, "cooldown")),
			},
		}
		for n := 1; n <= nodes; n++ {
			c.up[n] = rapid.Bool().Draw(t, "up")
		}
		vips := make([]netip.Addr, len(rows))
		for i, r := range rows {
			vips[i] = r.VIP
			c.load[r.VIP] = rapid.Uint64Range(0, 1000).Draw(t, "load")
		}
		pick := func(up bool) (Node, bool) {
			var l []Node
			for n := 1; n <= nodes; n++ {
				if c.up[n] == up {
					l = append(l, Node(n))
				}
			}
			if len(l) == 0 {
				return None, false
			}
			return rapid.SampledFrom(l).Draw(t, "node"), true
		}
		t.Repeat(map[string]func(*rapid.T){
			"crash": func(t *rapid.T) {
				n, ok := pick(true)
				if !ok {
					t.Skip("nobody up")
				}
				c.up[n] = false
			},
			"recover": func(t *rapid.T) {
				n, ok := pick(false)
				if !ok {
					t.Skip("everybody up")
				}
				c.up[n] = true
			},
			"close or open a node": func(t *rapid.T) {
				n := rapid.IntRange(1, nodes).Draw(t, "node")
				c.closed[n] = !c.closed[n]
			},
			"admin": func(t *rapid.T) {
				op := rapid.SampledFrom([]string{"move", "prefer", "unprefer", "stick", "unstick", "close", "open"}).Draw(t, "op")
				vip := rapid.SampledFrom(append(slices.Clone(vips), netip.MustParseAddr("192.0.2.200"))).Draw(t, "vip")
				to := Node(rapid.IntRange(0, nodes+1).Draw(t, "to"))
				got, err := tableAdmin(c.tab, op, vip, to)
				want, werr := c.m.admin(op, vip, to)
				if (err == nil) != (werr == nil) || werr != nil && !errors.Is(err, werr) {
					t.Fatalf("%s %s %d: error %v, model %v", op, vip, to, err, werr)
				}
				if err != nil {
					return
				}
				if diff := cmp.Diff(want.rows, got.Rows(), addrs); diff != "" {
					t.Fatalf("%s %s %d: rows differ from the model (-model +table):\n%s", op, vip, to, diff)
				}
				c.tab, c.m = got, want
			},
			"load": func(t *rapid.T) {
				if len(vips) == 0 {
					t.Skip("no VIPs")
				}
				c.load[rapid.SampledFrom(vips).Draw(t, "vip")] = rapid.Uint64Range(0, 1000).Draw(t, "load")
			},
			"token": func(t *rapid.T) { c.step(t) },
			// A full rotation with nothing else happening: afterwards every
			// preferred VIP sits on its preferred host if that host is live.
			"rotation": func(t *rapid.T) {
				live := c.live()
				for range max(len(live), 1) {
					c.step(t)
				}
				for _, r := range c.tab.Rows() {
					if !r.Closed && r.Persistence == PersistPreferred && c.eligible(r.Preferred) && r.Current != r.Preferred {
						t.Fatalf("after a full rotation %s is on %d, not on its live, open preferred host %d", r.VIP, r.Current, r.Preferred)
					}
					if !r.Closed && r.Current != None && !c.eligible(r.Current) {
						t.Fatalf("after a full rotation %s is still on %d, which is closed (closed %v, live %v)", r.VIP, r.Current, c.closedList(), live)
					}
				}
			},
			"": func(t *rapid.T) { checkTable(t, c.tab) },
		})
	})
}

// TestPropertyBalanceConverges: with fixed loads and membership, balancing
// only ever lowers the sum of squared node loads (so no placement repeats:
// no oscillation) and reaches a fixed point where a further rotation moves
// nothing, within a bounded number of moves.
func TestPropertyBalanceConverges(t *testing.T) {
	var worst int
	rapid.Check(t, func(t *rapid.T) {
		nodes := rapid.IntRange(2, 6).Draw(t, "nodes")
		// Up to 24 pairs and 48 lone VIPs, mostly movable, all placed.
		var rows []Row
		load := map[netip.Addr]uint64{}
		pers := rapid.SampledFrom([]Persistence{PersistNone, PersistNone, PersistNone, PersistCurrent, PersistPreferred})
		for k := range rapid.IntRange(0, 24).Draw(t, "pairs") {
			r := Row{Group: uint16(k + 1), Current: Node(rapid.IntRange(1, nodes).Draw(t, "current"))}
			if r.Persistence = pers.Draw(t, "persistence"); r.Persistence != PersistNone {
				r.Preferred = r.Current
			}
			ext, in := r, r
			ext.VIP, ext.Subnet = netip.AddrFrom4([4]byte{203, 0, 113, byte(k + 1)}), 0
			in.VIP, in.Subnet = netip.AddrFrom4([4]byte{198, 51, 100, byte(k + 1)}), 1
			rows = append(rows, ext, in)
		}
		for j := range rapid.IntRange(1, 48).Draw(t, "lone") {
			r := Row{VIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(j + 1)}), Current: Node(rapid.IntRange(1, nodes).Draw(t, "current"))}
			if r.Persistence = pers.Draw(t, "persistence"); r.Persistence != PersistNone {
				r.Preferred = r.Current
			}
			rows = append(rows, r)
		}
		for _, r := range rows {
			load[r.VIP] = rapid.Uint64Range(0, 1000).Draw(t, "load")
		}
		tab, err := New(nodes, rows)
		if err != nil {
			t.Fatalf("invalid table: %v", err)
		}
		cfg := BalanceConfig{
			Enabled:   true,
			Threshold: uint32(rapid.IntRange(0, 50).Draw(t, "threshold")),
			Cooldown:  uint32(rapid.IntRange(0, 3).Draw(t, "cooldown")),
		}
		live := make([]Node, nodes)
		for i := range live {
			live[i] = Node(i + 1)
		}
		// One rotation without balancing first: preference returns happen
		// there, so every later move is a balancing move.
		for _, self := range live {
			tab, _ = tab.Step(Input{Self: self, Live: live})
		}
		potential := func(tab Table) uint64 {
			per := make([]uint64, nodes+1)
			for _, r := range tab.Rows() {
				per[r.Current] += load[r.VIP]
			}
			var sum uint64
			for _, l := range per {
				sum += l * l
			}
			return sum
		}
		// Bound: each move lowers the potential by 2L(gap−L) ≥ 2 (integer
		// loads), so moves ≤ Φ₀/2; the run is cut far below that.
		const maxRotations = 2000
		moves, quiet := 0, 0
		phi := potential(tab)
		for rot := 0; ; rot++ {
			if rot == maxRotations {
				t.Fatalf("no fixed point after %d rotations (%d moves)", maxRotations, moves)
			}
			moved := false
			for _, self := range live {
				next, mv := tab.Step(Input{Self: self, Live: live, VIPLoad: load, Balance: cfg})
				for _, m := range mv {
					if m.Reason != ReasonBalance {
						t.Fatalf("non-balancing move %+v with all nodes live and placed", m)
					}
				}
				if len(mv) > 0 {
					moved = true
					moves++
					if p := potential(next); p >= phi {
						t.Fatalf("balancing move %v raised the potential %d → %d", mv, phi, p)
					} else {
						phi = p
					}
				}
				tab = next
			}
			if moved {
				quiet = 0
				continue
			}
			// A fixed point: Cooldown+1 rotations in a row without a move.
			if quiet++; quiet > int(max(cfg.Cooldown, 1)) {
				break
			}
		}
		worst = max(worst, moves)
	})
	t.Logf("most balancing moves before a fixed point: %d", worst)
}
