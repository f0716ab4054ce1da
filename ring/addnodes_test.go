package ring

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAddNodes: a running ring of three appends node 4 to its node map (a
// reload) and node 4, started with the longer map, joins; nodes already in
// the map cannot be added again.
func TestAddNodes(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	members := func(want []NodeID) bool {
		for id := range w.nodes {
			if st := w.states[id]; st == nil || !slices.Equal(st.Members, want) {
				return false
			}
		}
		return true
	}
	for i := 0; i < 2000 && !members([]NodeID{1, 2, 3}); i++ {
		w.tick()
	}
	if !members([]NodeID{1, 2, 3}) {
		t.Fatal("no ring of three")
	}
	if err := w.nodes[1].Step(4, 0, []byte{1}); err == nil {
		t.Fatal("a datagram from node 4 accepted before it is in the map")
	}
	if err := w.nodes[1].AddNodes(3); err == nil {
		t.Error("node 3 added twice")
	}
	for id := NodeID(1); id <= 3; id++ {
		if err := w.nodes[id].AddNodes(4); err != nil {
			t.Fatal(err)
		}
	}
	c := TestConfig()
	c.ID, c.Nodes = 4, []NodeID{1, 2, 3, 4}
	c.Rand = rand.New(rand.NewPCG(4, 1)).Uint64
	n4, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	w.nodes[4] = n4
	for i := 0; i < 4000 && !members([]NodeID{1, 2, 3, 4}); i++ {
		w.tick()
	}
	if !members([]NodeID{1, 2, 3, 4}) {
		for id, st := range w.states {
			t.Logf("node %d: %v", id, st.Members)
		}
		t.Fatal("node 4 did not join")
	}
	if w.nodes[1].tokLoss < int64(c.TokenLossTicks()) {
		t.Errorf("node 1's token-loss timeout %d, want at least the 4-node map's %d", w.nodes[1].tokLoss, c.TokenLossTicks())
	}
}

// TestSetTimers: a running node takes new timers that validate, refuses
// others, and its token-loss timeout follows.
func TestSetTimers(t *testing.T) {
	w := newNet(t, []NodeID{1, 2, 3}, nil)
	n := w.nodes[1]
	old := n.Timers()
	bad := old
	bad.AckTimeout = 0
	if err := n.SetTimers(bad); err == nil || n.Timers() != old {
		t.Fatalf("ack timeout 0: %v, timers now %+v", err, n.Timers())
	}
	next := old
	next.MinRotation *= 2
	if err := n.SetTimers(next); err != nil {
		t.Fatal(err)
	}
	c := TestConfig()
	c.MinRotation = next.MinRotation
	if n.Timers() != next || n.tokLoss < int64(c.TokenLossTicks()) {
		t.Errorf("timers %+v, token loss %d; want %+v, at least %d", n.Timers(), n.tokLoss, next, c.TokenLossTicks())
	}
	// The ring keeps running on them.
	for range 500 {
		w.tick()
	}
	if st := w.states[1]; st == nil || !slices.Equal(st.Members, []NodeID{1, 2, 3}) {
		t.Errorf("after new timers: %+v", st)
	}
}
