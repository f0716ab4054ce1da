package ringstate

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

func vip(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(90 + i)}) }

func initial(t *testing.T) vipstate.Table {
	t.Helper()
	tb, err := vipstate.New(3, []vipstate.Row{{VIP: vip(1)}, {VIP: vip(2)}, {VIP: vip(3)},
		{VIP: vip(4), Preferred: 3, Persistence: vipstate.PersistPreferred}})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func owners(t *testing.T, cs []ring.Carriage) []vipstate.Node {
	t.Helper()
	tb, ok, err := Table(cs)
	if !ok {
		t.Fatalf("no table in carriages: %v", err)
	}
	var out []vipstate.Node
	for _, r := range tb.Rows() {
		out = append(out, r.Current)
	}
	return out
}

// cars runs one turn and returns its carriages.
func cars(h *Holder, v ring.TokenView) []ring.Carriage { return h.OnToken(v).Carriages }

// vipProp and nodeProp encode an operator's operation as the core hands
// it to the Holder.
func vipProp(t *testing.T, id uint64, o VIPOp) ring.Proposal {
	t.Helper()
	k, b, err := ProposeVIPOp(o)
	if err != nil {
		t.Fatal(err)
	}
	return ring.Proposal{ID: id, Kind: k, Data: b}
}

func nodeProp(t *testing.T, id uint64, o NodeOp) ring.Proposal {
	t.Helper()
	k, b, err := ProposeNodeOp(o)
	if err != nil {
		t.Fatal(err)
	}
	return ring.Proposal{ID: id, Kind: k, Data: b}
}

func TestOnToken(t *testing.T) {
	h := New(Config{Initial: initial(t), Balance: vipstate.DefaultBalanceConfig()})
	// Cold start alone: node 1 owns every VIP.
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 1}, owners(t, cs)); diff != "" {
		t.Fatalf("alone (-want +got):\n%s", diff)
	}
	// Node 3 joins and holds the token: its preferred VIP returns only
	// when its current owner (node 1) holds the token.
	cs = cars(h, ring.TokenView{Self: 3, Members: []ring.NodeID{1, 3}, Joined: []ring.NodeID{3}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 1}, owners(t, cs)); diff != "" {
		t.Fatalf("joiner holding (-want +got):\n%s", diff)
	}
	cs = cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1, 3}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 3}, owners(t, cs)); diff != "" {
		t.Fatalf("preference return (-want +got):\n%s", diff)
	}
	// Node 1 leaves: everything it had moves to node 3.
	cs = cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{3}, Leaving: []ring.NodeID{1}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{3, 3, 3, 3}, owners(t, cs)); diff != "" {
		t.Fatalf("leave (-want +got):\n%s", diff)
	}
	// Other carriages ride along in order.
	cs = append(cs, ring.Carriage{Kind: 3, Data: []byte{7}})
	out := cars(h, ring.TokenView{Self: 3, Members: []ring.NodeID{3}, Carriages: cs})
	if k := out[len(out)-1]; k.Kind != 3 || string(k.Data) != "\x07" {
		t.Errorf("config epoch carriage lost: %+v", out)
	}
	// An undecodable table is left alone.
	bad := []ring.Carriage{{Kind: KindVIPTable, Data: []byte{0xff}}}
	if got := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Carriages: bad}); !cmp.Equal(bad, got) {
		t.Errorf("bad table changed to %+v", got)
	}
}

func TestOwned(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	cs := cars(h, ring.TokenView{Self: 2, Members: []ring.NodeID{2}, Alone: true})
	all := []netip.Addr{vip(1), vip(2), vip(3), vip(4)}
	for _, tc := range []struct {
		name string
		s    *ring.State
		want []netip.Addr
	}{
		{"member", &ring.State{Members: []ring.NodeID{2}, Carriages: cs}, all},
		{"not a member", &ring.State{Members: []ring.NodeID{1}, Carriages: cs}, nil},
		{"between rings", &ring.State{Carriages: cs}, nil},
		{"no quorum", &ring.State{Members: []ring.NodeID{2}, Carriages: cs, NoQuorum: true}, nil},
		{"nil", nil, nil},
	} {
		got, err := Owned(tc.s, 2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestLoadRoundTrip(t *testing.T) {
	l := Load{vip(2): 5, vip(1): 1 << 40}
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Load
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for i := 0; i < len(b); i++ {
		if err := got.UnmarshalBinary(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d: %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
}

// FuzzLoad: no panic, no allocation beyond the input's size; what decodes
// re-encodes identically (entries sorted, no duplicates).
func FuzzLoad(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 203, 0, 113, 91, 0, 0, 0, 0, 0, 0, 0, 9}) // one entry: 203.0.113.91 → 9 B/s
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})                              // 4 billion entries claimed, none present
	f.Fuzz(func(t *testing.T, b []byte) {
		var l Load
		if err := l.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := l.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > len(b) {
			t.Fatalf("re-encoding grew: %d > %d", len(out), len(b))
		}
	})
}

// An operator's move applies at the turn the core hands it over, records
// intent, and the VIP moves at its owner's turn; a move of an unknown VIP
// is refused with the reason.
func TestProposals(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	turn := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2}, Carriages: cs, Proposals: []ring.Proposal{
		vipProp(t, 1, VIPOp{Action: VIPMove, VIP: vip(1), Node: 2}),
		vipProp(t, 2, VIPOp{Action: VIPMove, VIP: vip(9), Node: 2}),
		{ID: 3, Kind: 99, Data: []byte{1}},
	}})
	if len(turn.Results) != 3 || turn.Results[0] != (ring.Result{ID: 1}) ||
		turn.Results[1].ID != 2 || !strings.Contains(turn.Results[1].Err, vipstate.ErrUnknownVIP.Error()) ||
		turn.Results[2].ID != 3 || turn.Results[2].Err == "" {
		t.Fatalf("results %+v, want #1 applied, #2 refused (unknown VIP), #3 refused (unknown kind)", turn.Results)
	}
	if got := owners(t, turn.Carriages)[0]; got != 2 {
		t.Errorf("VIP 1 on node %d after its owner applied the move, want 2", got)
	}
	// Every proposal is refused when the table cannot be read.
	bad := []ring.Carriage{{Kind: KindVIPTable, Data: []byte{0xff}}}
	turn = h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Carriages: bad,
		Proposals: []ring.Proposal{vipProp(t, 4, VIPOp{Action: VIPClose, VIP: vip(1)})}})
	if len(turn.Results) != 1 || turn.Results[0].Err == "" {
		t.Errorf("results over an unreadable table %+v, want #4 refused", turn.Results)
	}
}

// Successive tokens of a steady ring differ only in the table's rotation
// counter: SameService lets the driver skip them. A change of owner,
// membership or load is news.
func TestSameService(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2}
	state := func(cs []ring.Carriage) *ring.State {
		return &ring.State{RingID: 7, Members: members, Carriages: cs}
	}
	cs1 := cars(h, ring.TokenView{Self: 1, Members: members})
	cs2 := cars(h, ring.TokenView{Self: 1, Members: members, Carriages: cs1})
	t1, _, _ := Table(cs1)
	t2, _, _ := Table(cs2)
	if t1.Rotation() == t2.Rotation() {
		t.Fatalf("rotation did not advance (%d): the test needs it to", t1.Rotation())
	}
	if !SameService(state(cs1), state(cs2)) {
		t.Error("two tokens that differ only in the rotation counter are not the same service")
	}
	moved := cars(h, ring.TokenView{Self: 1, Members: members, Carriages: cs2,
		Proposals: []ring.Proposal{vipProp(t, 1, VIPOp{Action: VIPMove, VIP: vip(1), Node: 2})}})
	if SameService(state(cs2), state(moved)) {
		t.Error("a moved VIP is the same service")
	}
	other := state(cs2)
	other.Members = []ring.NodeID{1}
	if SameService(state(cs2), other) {
		t.Error("a membership change is the same service")
	}
	load, _ := Load{vip(1): 100}.MarshalBinary()
	withLoad := state(append(append([]ring.Carriage(nil), cs2...), ring.Carriage{Kind: KindLoad, Data: load}))
	if SameService(state(cs2), withLoad) {
		t.Error("a new load carriage is the same service")
	}
}

// Urgent is set when this node gave a VIP it served to another node
// (an operator's move here), and not on an ordinary token.
func TestUrgent(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2}
	cs := cars(h, ring.TokenView{Self: 1, Members: members})
	turn := h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if turn.Urgent {
		t.Fatal("urgent on a steady token")
	}
	cs = turn.Carriages
	var mine netip.Addr
	for i, o := range owners(t, cs) {
		if o == 1 {
			mine = vip(i + 1)
			break
		}
	}
	if !mine.IsValid() {
		t.Fatalf("node 1 owns nothing: %v", owners(t, cs))
	}
	turn = h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs,
		Proposals: []ring.Proposal{vipProp(t, 1, VIPOp{Action: VIPMove, VIP: mine, Node: 2})}})
	if !turn.Urgent {
		t.Errorf("not urgent after moving %s from node 1 to node 2", mine)
	}
	cs = turn.Carriages
	if h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs}).Urgent {
		t.Error("still urgent on the next, steady token")
	}
	// Node 2 holding the token: node 2 gave nothing away.
	h2 := New(Config{Initial: initial(t)})
	if h2.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: cs}).Urgent {
		t.Error("urgent at a node that lost nothing")
	}
}

// The VIP and node operation encodings round-trip, and the decoders accept
// nothing else.
func TestProposalEncoding(t *testing.T) {
	for _, o := range []VIPOp{{Action: VIPMove, VIP: vip(1), Node: 3}, {Action: VIPOpen, VIP: vip(2)}} {
		b, err := o.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got VIPOp
		if err := got.UnmarshalBinary(b); err != nil || got != o {
			t.Errorf("%+v round-trips to %+v, %v", o, got, err)
		}
	}
	for _, o := range []VIPOp{{Action: VIPMove, VIP: vip(1)}, {Action: VIPClose, VIP: vip(1), Node: 2}, {Action: 0, VIP: vip(1)}, {Action: VIPOpen}} {
		if _, err := o.MarshalBinary(); err == nil {
			t.Errorf("%+v encodes", o)
		}
	}
	var o VIPOp
	if err := o.UnmarshalBinary([]byte{1, 1}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short VIP op: %v, want ErrUnexpectedEOF", err)
	}
	var n NodeOp
	if err := n.UnmarshalBinary([]byte{1, 0, 2, 2}); err == nil {
		t.Error("node op with close byte 2 decodes")
	}
	if a, err := ParseVIPAction("stick"); err != nil || a != VIPStick {
		t.Errorf("ParseVIPAction(stick) = %v, %v", a, err)
	}
	if _, err := ParseVIPAction("teleport"); err == nil {
		t.Error("ParseVIPAction(teleport) succeeds")
	}
}

// FuzzProposals: the operation decoders never panic, and what they accept
// re-encodes to the same bytes.
func FuzzProposals(f *testing.F) {
	f.Add([]byte{1, 1, 203, 0, 113, 91, 0, 2}) // move 203.0.113.91 to node 2
	f.Add([]byte{1, 6, 203, 0, 113, 91, 0, 0}) // close 203.0.113.91
	f.Add([]byte{1, 0, 3, 1})                  // close node 3
	f.Add([]byte{1, 0, 3})                     // short
	f.Fuzz(func(t *testing.T, b []byte) {
		var o VIPOp
		if o.UnmarshalBinary(b) == nil {
			again, err := o.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("VIP op % x re-encodes to % x, %v", b, again, err)
			}
		}
		var n NodeOp
		if n.UnmarshalBinary(b) == nil {
			again, err := n.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("node op % x re-encodes to % x, %v", b, again, err)
			}
		}
	})
}

// A member's own load (TokenView.Local) lands on the token for the VIPs it
// owns, and only those: a node cannot speak for another's VIPs.
func TestLocalLoad(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2}
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true}) // node 1 owns all
	mine, _ := Load{vip(1): 500, netip.MustParseAddr("192.0.2.1"): 7}.MarshalBinary()
	cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs, Local: ring.Local{Load: mine}})
	if loadOf(t, cs) != nil {
		t.Errorf("node 2, which owns nothing, wrote load %v", loadOf(t, cs))
	}
	cs = cars(h, ring.TokenView{Self: 1, Members: members, Carriages: cs, Local: ring.Local{Load: mine}})
	if diff := cmp.Diff(Load{vip(1): 500}, loadOf(t, cs)); diff != "" {
		t.Errorf("load on the token after node 1's turn (-want +got):\n%s", diff)
	}
}

func loadOf(t *testing.T, cs []ring.Carriage) Load {
	t.Helper()
	for _, c := range cs {
		if c.Kind == KindLoad {
			var l Load
			if err := l.UnmarshalBinary(c.Data); err != nil {
				t.Fatal(err)
			}
			return l
		}
	}
	return nil
}
