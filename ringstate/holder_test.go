package ringstate

import (
	"errors"
	"io"
	"net/netip"
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

func TestOnToken(t *testing.T) {
	h := New(Config{Initial: initial(t), Balance: vipstate.DefaultBalanceConfig()})
	// Cold start alone: node 1 owns every VIP.
	cs := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 1}, owners(t, cs)); diff != "" {
		t.Fatalf("alone (-want +got):\n%s", diff)
	}
	// Node 3 joins and holds the token: its preferred VIP returns only
	// when its current owner (node 1) holds the token.
	cs = h.OnToken(ring.TokenView{Self: 3, Members: []ring.NodeID{1, 3}, Joined: []ring.NodeID{3}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 1}, owners(t, cs)); diff != "" {
		t.Fatalf("joiner holding (-want +got):\n%s", diff)
	}
	cs = h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1, 3}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{1, 1, 1, 3}, owners(t, cs)); diff != "" {
		t.Fatalf("preference return (-want +got):\n%s", diff)
	}
	// Node 1 leaves: everything it had moves to node 3.
	cs = h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{3}, Leaving: []ring.NodeID{1}, Carriages: cs})
	if diff := cmp.Diff([]vipstate.Node{3, 3, 3, 3}, owners(t, cs)); diff != "" {
		t.Fatalf("leave (-want +got):\n%s", diff)
	}
	// Other carriages ride along in order.
	cs = append(cs, ring.Carriage{Kind: 3, Data: []byte{7}})
	out := h.OnToken(ring.TokenView{Self: 3, Members: []ring.NodeID{3}, Carriages: cs})
	if k := out[len(out)-1]; k.Kind != 3 || string(k.Data) != "\x07" {
		t.Errorf("config epoch carriage lost: %+v", out)
	}
	// An undecodable table is left alone.
	bad := []ring.Carriage{{Kind: KindVIPTable, Data: []byte{0xff}}}
	if got := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Carriages: bad}); !cmp.Equal(bad, got) {
		t.Errorf("bad table changed to %+v", got)
	}
}

func TestOwned(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	cs := h.OnToken(ring.TokenView{Self: 2, Members: []ring.NodeID{2}, Alone: true})
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

// An operator's move waits for a token at a member, records intent, and
// the VIP moves at its owner's turn.
func TestEnqueue(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	cs := h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true})
	var done []error
	h.Enqueue(Op{Apply: func(tb vipstate.Table) (vipstate.Table, error) { return tb.Move(vip(1), 2) },
		Done: func(err error) { done = append(done, err) }})
	h.Enqueue(Op{Apply: func(tb vipstate.Table) (vipstate.Table, error) { return tb.Move(vip(9), 2) },
		Done: func(err error) { done = append(done, err) }})
	// Not applied while this node is between rings.
	h.OnToken(ring.TokenView{Self: 1, Carriages: cs})
	if len(done) != 0 {
		t.Fatalf("ops applied outside a ring: %v", done)
	}
	cs = h.OnToken(ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2}, Carriages: cs})
	if len(done) != 2 || done[0] != nil || !errors.Is(done[1], vipstate.ErrUnknownVIP) {
		t.Fatalf("done = %v, want [nil, ErrUnknownVIP]", done)
	}
	if got := owners(t, cs)[0]; got != 2 {
		t.Errorf("VIP 1 on node %d after its owner applied the move, want 2", got)
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
	cs1 := h.OnToken(ring.TokenView{Self: 1, Members: members})
	cs2 := h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs1})
	t1, _, _ := Table(cs1)
	t2, _, _ := Table(cs2)
	if t1.Rotation() == t2.Rotation() {
		t.Fatalf("rotation did not advance (%d): the test needs it to", t1.Rotation())
	}
	if !SameService(state(cs1), state(cs2)) {
		t.Error("two tokens that differ only in the rotation counter are not the same service")
	}
	h.Enqueue(Op{Apply: func(tb vipstate.Table) (vipstate.Table, error) { return tb.Move(vip(1), 2) }})
	moved := h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs2})
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
	cs := h.OnToken(ring.TokenView{Self: 1, Members: members})
	cs = h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if h.Urgent() {
		t.Fatal("urgent on a steady token")
	}
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
	h.Enqueue(Op{Apply: func(tb vipstate.Table) (vipstate.Table, error) { return tb.Move(mine, 2) }})
	cs = h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if !h.Urgent() {
		t.Errorf("not urgent after moving %s from node 1 to node 2", mine)
	}
	h.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if h.Urgent() {
		t.Error("still urgent on the next, steady token")
	}
	// Node 2 holding the token: node 2 gave nothing away.
	h2 := New(Config{Initial: initial(t)})
	h2.OnToken(ring.TokenView{Self: 2, Members: members, Carriages: cs})
	if h2.Urgent() {
		t.Error("urgent at a node that lost nothing")
	}
}
