package ringstate

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringway/ringway/ring"
)

// TestFilledNodes: each node writes itself in the filled set at its turn
// once its fill is done, and out of it while it fills; a node no longer a
// member is struck by whoever holds the token; other holders leave its
// word alone; a holder without Filling passes the carriage on untouched.
func TestFilledNodes(t *testing.T) {
	filling := map[ring.NodeID]bool{1: false, 2: false, 3: true}
	hs := map[ring.NodeID]*Holder{}
	for id := range filling {
		hs[id] = New(Config{Initial: initial(t), Filling: func() bool { return filling[id] }})
	}
	members := []ring.NodeID{1, 2, 3}
	var cs []ring.Carriage
	round := func(ms []ring.NodeID) {
		for _, id := range ms {
			cs = cars(hs[id], ring.TokenView{Self: id, Members: ms, Carriages: cs})
		}
	}
	round(members)
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1, 2}) {
		t.Fatalf("n3 filling: filled %v, want [1 2]", got)
	}
	filling[3] = false
	cs = cars(hs[1], ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1, 2}) {
		t.Fatalf("n1 wrote n3's word: filled %v", got)
	}
	cs = cars(hs[3], ring.TokenView{Self: 3, Members: members, Carriages: cs})
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1, 2, 3}) {
		t.Fatalf("n3 filled, after its turn: %v, want [1 2 3]", got)
	}
	// n3 leaves (killed): n1 strikes it; it comes back and fills again.
	round([]ring.NodeID{1, 2})
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1, 2}) {
		t.Fatalf("n3 gone: filled %v, want [1 2]", got)
	}
	filling[3] = true
	cs = cars(hs[1], ring.TokenView{Self: 1, Members: members, Carriages: cs, Joined: []ring.NodeID{3}})
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1, 2}) {
		t.Fatalf("n3 back: filled %v, want [1 2]", got)
	}
	// A holder without Filling (the simulator's) passes it on as it is.
	plain := New(Config{Initial: initial(t)})
	before := slices.IndexFunc(cs, func(c ring.Carriage) bool { return c.Kind == KindFilledNodes })
	out := cars(plain, ring.TokenView{Self: 2, Members: []ring.NodeID{2}, Carriages: cs})
	if got := Filled(out); before < 0 || !cmp.Equal(got, NodeSet{1, 2}) {
		t.Errorf("a plain holder changed the filled set: %v", got)
	}
	// ... even behind a full load of foreign carriages (the cap is for
	// those), and only once.
	var crowded []ring.Carriage
	for k := range MaxForeignCarriages + 2 {
		crowded = append(crowded, ring.Carriage{Kind: 200 + uint16(k), Data: []byte{1}})
	}
	crowded = append(crowded, cs[before], cs[before])
	out = cars(plain, ring.TokenView{Self: 2, Members: []ring.NodeID{2}, Carriages: crowded})
	if n := len(slices.DeleteFunc(slices.Clone(out), func(c ring.Carriage) bool { return c.Kind != KindFilledNodes })); n != 1 {
		t.Errorf("behind %d foreign carriages, a plain holder passed %d filled sets on, want 1", MaxForeignCarriages+2, n)
	}
	// Nobody filled: no carriage.
	filling[1], filling[2] = true, true
	round(members)
	if i := slices.IndexFunc(cs, func(c ring.Carriage) bool { return c.Kind == KindFilledNodes }); i >= 0 {
		t.Errorf("everybody filling, carriage still there: %v", Filled(cs))
	}
	// Unreadable: taken as empty, rewritten.
	filling[1] = false
	cs = append(cs, ring.Carriage{Kind: KindFilledNodes, Data: []byte{9}})
	cs = cars(hs[1], ring.TokenView{Self: 1, Members: members, Carriages: cs})
	if got := Filled(cs); !cmp.Equal(got, NodeSet{1}) {
		t.Errorf("after an unreadable set: %v, want [1]", got)
	}
}
