package ringstate

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Closing a node: it hands its VIPs over at its own turn (not before: it
// answers them until then), receives none while closed, and gets its
// preferred VIP back once opened.
func TestCloseAndOpenNode(t *testing.T) {
	h1 := New(Config{Initial: initial(t)})
	h2 := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2, 3}
	var urgent bool
	turn := func(h *Holder, self ring.NodeID, cs []ring.Carriage, ps ...ring.Proposal) []ring.Carriage {
		tn := h.OnToken(ring.TokenView{Self: self, Members: members, Carriages: cs, Proposals: ps})
		urgent = tn.Urgent
		return tn.Carriages
	}
	// One rotation places every VIP; VIP 4 prefers node 3, which is up.
	cs := turn(h1, 1, nil)
	cs = turn(h2, 2, cs)
	cs = turn(New(Config{Initial: initial(t)}), 3, cs)
	count := func(cs []ring.Carriage, n vipstate.Node) int {
		k := 0
		for _, o := range owners(t, cs) {
			if o == n {
				k++
			}
		}
		return k
	}
	if count(cs, 1) == 0 {
		t.Fatalf("node 1 owns nothing to begin with: %v", owners(t, cs))
	}

	// The operator closes node 1 through node 2's API: applied at node 2's
	// turn, which must not take node 1's VIPs (node 1 still answers them).
	before := owners(t, cs)
	cs = turn(h2, 2, cs, nodeProp(t, 1, NodeOp{Node: 1, Close: true}))
	if !cmp.Equal(Closed(cs), NodeSet{1}) {
		t.Fatalf("close not applied: closed %v", Closed(cs))
	}
	if diff := cmp.Diff(before, owners(t, cs)); diff != "" {
		t.Errorf("node 2 moved VIPs when node 1 was closed (-before +after):\n%s", diff)
	}
	// Node 1's turn: it gives everything away, and says so (Urgent).
	cs = turn(h1, 1, cs)
	if n := count(cs, 1); n != 0 || !urgent {
		t.Errorf("after its own turn closed node 1 owns %d VIPs (urgent %v), want 0 and urgent", n, urgent)
	}
	// Node 2 then node 3: nothing goes back to node 1.
	cs = turn(h2, 2, cs)
	cs = turn(New(Config{Initial: initial(t)}), 3, cs)
	if n := count(cs, 1); n != 0 {
		t.Errorf("closed node 1 received %d VIPs", n)
	}

	// Open it again: it stays open, and the table may give it VIPs again.
	cs = turn(h2, 2, cs, nodeProp(t, 2, NodeOp{Node: 1, Close: false}))
	if c := Closed(cs); len(c) != 0 {
		t.Errorf("node 1 still closed after open: %v", c)
	}
	for _, c := range cs {
		if c.Kind == KindClosedNodes {
			t.Errorf("an empty closed-nodes carriage rides on the token: % x", c.Data)
		}
	}
}

// With every member closed, closed nodes keep serving: serving beats not
// serving.
func TestAllClosedStillServes(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true,
		Proposals: []ring.Proposal{nodeProp(t, 1, NodeOp{Node: 1, Close: true})}})
	for i, o := range owners(t, cs) {
		if o != 1 {
			t.Errorf("VIP %d on node %d with node 1 alone and closed, want node 1", i+1, o)
		}
	}
}

func TestClosedNodesEncoding(t *testing.T) {
	b, err := NodeSet{3, 1, 3}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 1, 3}; !bytes.Equal(b, want) {
		t.Errorf("encoding % x, want % x", b, want)
	}
	var c NodeSet
	if err := c.UnmarshalBinary(b); err != nil || !cmp.Equal(c, NodeSet{1, 3}) {
		t.Errorf("decode: %v, %v", c, err)
	}
	for _, bad := range [][]byte{nil, {2, 0}, {1}, {1, 1}, {1, 2, 3, 1}, {1, 1, 0}, {1, 1, 1, 9}, {1, 0x80, 0}, {1, 1, 0x81, 0}} {
		if err := c.UnmarshalBinary(bad); err == nil {
			t.Errorf("% x decoded to %v, want an error", bad, c)
		}
	}
	if _, err := (NodeSet{0}).MarshalBinary(); err == nil {
		t.Error("node 0 encoded")
	}
}

func FuzzClosedNodes(f *testing.F) {
	f.Add([]byte{1, 2, 1, 3})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c NodeSet
		if c.UnmarshalBinary(b) != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", c, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: % x vs % x", again, b)
		}
	})
}

// A node whose monitors fail marks itself unhealthy at its turn and hands
// its VIPs over; healthy again, it clears the mark and may receive VIPs.
func TestUnhealthyNode(t *testing.T) {
	h1 := New(Config{Initial: initial(t)})
	h2 := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2}
	cs := cars(h1, ring.TokenView{Self: 1, Members: members})
	cs = cars(h2, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	mine := func(cs []ring.Carriage) int {
		k := 0
		for _, o := range owners(t, cs) {
			if o == 1 {
				k++
			}
		}
		return k
	}
	if mine(cs) == 0 {
		t.Fatalf("node 1 owns nothing to begin with: %v", owners(t, cs))
	}
	tn := h1.OnToken(ring.TokenView{Self: 1, Members: members, Carriages: cs, Local: ring.Local{Unhealthy: true}})
	cs = tn.Carriages
	if !cmp.Equal(Unhealthy(cs), NodeSet{1}) || mine(cs) != 0 || !tn.Urgent {
		t.Errorf("unhealthy node 1 after its turn: unhealthy %v, owns %d, urgent %v", Unhealthy(cs), mine(cs), tn.Urgent)
	}
	cs = cars(h2, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	if mine(cs) != 0 || !cmp.Equal(Unhealthy(cs), NodeSet{1}) {
		t.Errorf("node 2's turn undid node 1's mark or gave it VIPs: %v %v", Unhealthy(cs), owners(t, cs))
	}
	cs = cars(h1, ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if len(Unhealthy(cs)) != 0 {
		t.Errorf("healthy again, still marked: %v", Unhealthy(cs))
	}
}
