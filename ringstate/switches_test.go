package ringstate

import (
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

func switchProp(t *testing.T, id uint64, o SwitchOp) ring.Proposal {
	t.Helper()
	k, b, err := ProposeSwitchOp(o)
	if err != nil {
		t.Fatal(err)
	}
	return ring.Proposal{ID: id, Kind: k, Data: b}
}

func TestSwitchesEncoding(t *testing.T) {
	for _, s := range []Switches{{}, {Balancing: Off}, {Balancing: On, Auto: Off}} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Switches
		if err := got.UnmarshalBinary(b); err != nil || got != s {
			t.Errorf("round trip of %+v: %+v, %v", s, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1, 0}, {2, 0, 0}, {1, 3, 0}, {1, 0, 0, 0}} {
		var s Switches
		if err := s.UnmarshalBinary(b); err == nil {
			t.Errorf("% x decoded as %+v", b, s)
		} else if len(b) < 3 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("short % x: %v, want ErrUnexpectedEOF", b, err)
		}
	}
	for _, b := range [][]byte{{1, 0, 1}, {1, 3, 1}, {1, 1, 3}, {2, 1, 1}, {1, 1}} {
		var o SwitchOp
		if err := o.UnmarshalBinary(b); err == nil {
			t.Errorf("switch op % x decoded as %+v", b, o)
		}
	}
}

func FuzzSwitches(f *testing.F) {
	f.Add([]byte{1, 2, 1}) // balancing off, auto on
	f.Add([]byte{1, 0, 0}) // as configured
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Switches
		if s.UnmarshalBinary(b) == nil {
			out, err := s.MarshalBinary()
			if err != nil || string(out) != string(b) {
				t.Fatalf("% x decoded to %+v, re-encoded % x, %v", b, s, out, err)
			}
		}
		var o SwitchOp
		_ = o.UnmarshalBinary(b)
	})
}

// L.BAL off, set by an operator at one node, rides on the token and stops
// balancing at every holder; on again, balancing resumes.
func TestBalancingSwitch(t *testing.T) {
	bal := vipstate.BalanceConfig{Enabled: true, Threshold: 10, MinRate: 1, Cooldown: 1}
	h := New(Config{Initial: initial(t), Balance: bal})
	members := []ring.NodeID{1, 2, 3}
	cs := cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1}, Alone: true}) // node 1 owns all
	load, _ := Load{vip(1): 1000, vip(2): 1000, vip(3): 1000}.MarshalBinary()
	turn := func(self ring.NodeID, ps ...ring.Proposal) ring.Turn {
		tr := h.OnToken(ring.TokenView{Self: self, Members: members, Carriages: cs, Local: ring.Local{Load: load}, Proposals: ps})
		cs = tr.Carriages
		return tr
	}
	// Node 2 proposes L.BAL off; nodes 3 and 1 follow it from the token.
	if tr := turn(2, switchProp(t, 1, SwitchOp{Switch: SwitchBalancing, To: Off})); len(tr.Results) != 1 || tr.Results[0].Err != "" {
		t.Fatalf("results %+v", tr.Results)
	}
	if got := SwitchesOf(cs); got.Balancing != Off {
		t.Fatalf("switches on the token %+v", got)
	}
	before := owners(t, cs)
	for range 5 {
		turn(3)
		turn(1)
	}
	// VIP 4 prefers node 3 and returns there (preference, not balancing).
	after := owners(t, cs)
	if !slices.Equal(before[:3], after[:3]) {
		t.Errorf("owners %v -> %v with L.BAL off; want no balancing move", before, after)
	}
	turn(2, switchProp(t, 2, SwitchOp{Switch: SwitchBalancing, To: On}))
	for range 5 {
		turn(3)
		turn(1)
	}
	if after := owners(t, cs); slices.Equal(before[:3], after[:3]) {
		t.Errorf("owners %v after L.BAL on again; want a balancing move off node 1", after)
	}
}

// AUTO off: a member that becomes healthy again is closed and waits for an
// operator; with AUTO on it is not.
func TestAutoSwitch(t *testing.T) {
	h := New(Config{Initial: initial(t)})
	members := []ring.NodeID{1, 2, 3}
	cs := cars(h, ring.TokenView{Self: 1, Members: members})
	sick := cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs, Local: ring.Local{Unhealthy: true}})
	if got := Closed(cars(h, ring.TokenView{Self: 2, Members: members, Carriages: sick})); len(got) != 0 {
		t.Errorf("AUTO on: closed %v after node 2 recovered", got)
	}
	cs = cars(h, ring.TokenView{Self: 1, Members: members, Carriages: sick,
		Proposals: []ring.Proposal{switchProp(t, 1, SwitchOp{Switch: SwitchAuto, To: Off})}})
	if got := Closed(cs); len(got) != 0 {
		t.Errorf("closed %v while node 2 is unhealthy", got)
	}
	cs = cars(h, ring.TokenView{Self: 2, Members: members, Carriages: cs})
	if got := Closed(cs); !slices.Equal(got, NodeSet{2}) {
		t.Errorf("AUTO off: closed %v after node 2 recovered, want [2]", got)
	}
	// A node that joins is not closed by the holder (it closes itself).
	cs = cars(h, ring.TokenView{Self: 1, Members: []ring.NodeID{1, 2, 3}, Joined: []ring.NodeID{3}, Carriages: cs})
	if got := Closed(cs); !slices.Equal(got, NodeSet{2}) {
		t.Errorf("closed %v after node 3 joined, want [2]", got)
	}
}
