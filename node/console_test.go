package node

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// moves names the reason of each owner change from two committed states.
func TestMoveReasons(t *testing.T) {
	n, err := newNode(Config{File: lcConfig(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	n.names.Store(&[]string{"n1", "n2", "n3"}) // lcConfig has two
	v := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, 90 + i}) }
	state := func(members []ring.NodeID, closed ringstate.NodeSet, rows ...vipstate.Row) *ring.State {
		tb, err := vipstate.New(3, rows)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := tb.MarshalBinary()
		cs := []ring.Carriage{{Kind: ringstate.KindVIPTable, Data: b}}
		if len(closed) > 0 {
			cb, _ := closed.MarshalBinary()
			cs = append(cs, ring.Carriage{Kind: ringstate.KindClosedNodes, Data: cb})
		}
		return &ring.State{Members: members, Carriages: cs}
	}
	all := []ring.NodeID{1, 2, 3}
	none, pref := vipstate.PersistNone, vipstate.PersistPreferred
	prev := state(all, nil,
		vipstate.Row{VIP: v(1), Current: 1},
		vipstate.Row{VIP: v(2), Current: 2},
		vipstate.Row{VIP: v(3), Current: 3, Preferred: 1, Persistence: pref},
		vipstate.Row{VIP: v(4), Current: 1},
		vipstate.Row{VIP: v(5)},
		vipstate.Row{VIP: v(6), Current: 3},
	)
	now := time.Unix(1000, 0)
	// n2 fails; the operator moved VIP 4 to n3 (its preference changed);
	// VIP 3 went home to n1; VIP 5 got its first owner; n3 balanced VIP 6.
	cur := state([]ring.NodeID{1, 3}, nil,
		vipstate.Row{VIP: v(1), Current: 1},
		vipstate.Row{VIP: v(2), Current: 3},
		vipstate.Row{VIP: v(3), Current: 1, Preferred: 1, Persistence: pref},
		vipstate.Row{VIP: v(4), Current: 3, Preferred: 3, Persistence: pref},
		vipstate.Row{VIP: v(5), Current: 1},
		vipstate.Row{VIP: v(6), Current: 1, Persistence: none},
	)
	want := []mgmt.VIPMove{
		{Time: now, VIP: v(2), From: "n2", To: "n3", Reason: "failover"},
		{Time: now, VIP: v(3), From: "n3", To: "n1", Reason: "preference"},
		{Time: now, VIP: v(4), From: "n1", To: "n3", Reason: "operator"},
		{Time: now, VIP: v(5), From: "", To: "n1", Reason: "assign"},
		{Time: now, VIP: v(6), From: "n3", To: "n1", Reason: "balancing"},
	}
	if diff := cmp.Diff(want, n.moves(prev, cur, now), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("moves (-want +got):\n%s", diff)
	}
	// n1 closed: what it owned is handed over.
	closed := state(all, ringstate.NodeSet{1},
		vipstate.Row{VIP: v(1), Current: 2},
		vipstate.Row{VIP: v(2), Current: 2},
		vipstate.Row{VIP: v(3), Current: 3, Preferred: 1, Persistence: pref},
		vipstate.Row{VIP: v(4), Current: 1},
		vipstate.Row{VIP: v(5)},
		vipstate.Row{VIP: v(6), Current: 3},
	)
	if got := n.moves(prev, closed, now); len(got) != 1 || got[0].Reason != "handover" {
		t.Errorf("moves after closing n1: %+v, want one handover", got)
	}
	if got := n.moves(nil, cur, now); got != nil {
		t.Errorf("moves without a previous state: %+v", got)
	}
}
