package vipstate

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReconfigure: VIPs that stay keep their host, new ones start
// unplaced, removed ones are gone, a changed preference is taken, an
// operator's move on an untouched VIP survives.
func TestReconfigure(t *testing.T) {
	a := netip.MustParseAddr
	row := func(vip string, pref Node, p Persistence, g uint16) Row {
		return Row{VIP: a(vip), Subnet: 0, Preferred: pref, Persistence: p, Group: g}
	}
	from, err := New(3, []Row{
		row("192.0.2.1", 1, PersistPreferred, 0),
		row("192.0.2.2", 0, PersistNone, 0),
		row("192.0.2.3", 0, PersistNone, 0),
		{VIP: a("198.51.100.1"), Subnet: 1, Preferred: 2, Persistence: PersistPreferred, Group: 1},
		{VIP: a("192.0.2.4"), Subnet: 0, Preferred: 2, Persistence: PersistPreferred, Group: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The running table: everything placed, .3 moved by an operator to 3.
	cur := from
	cur, _ = cur.Step(Input{Self: 1, Live: []Node{1, 2, 3}})
	cur, _ = cur.Step(Input{Self: 2, Live: []Node{1, 2, 3}})
	cur, err = cur.Move(a("192.0.2.3"), 3)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ = cur.Step(Input{Self: cur.Owner(a("192.0.2.3")), Live: []Node{1, 2, 3}})
	if cur.Owner(a("192.0.2.3")) != 3 {
		t.Fatalf("setup: .3 on %d", cur.Owner(a("192.0.2.3")))
	}
	// The new file: .1 prefers 2 now, .2 removed, .5 added; the group and
	// .3 untouched.
	desired, err := New(3, []Row{
		row("192.0.2.1", 2, PersistPreferred, 0),
		row("192.0.2.3", 0, PersistNone, 0),
		row("192.0.2.5", 0, PersistNone, 0),
		{VIP: a("198.51.100.1"), Subnet: 1, Preferred: 2, Persistence: PersistPreferred, Group: 1},
		{VIP: a("192.0.2.4"), Subnet: 0, Preferred: 2, Persistence: PersistPreferred, Group: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cur.Reconfigure(from, desired)
	if err != nil {
		t.Fatal(err)
	}
	type vip struct {
		Current, Preferred Node
		Persistence        Persistence
	}
	view := func(tb Table) map[string]vip {
		m := map[string]vip{}
		for _, r := range tb.Rows() {
			m[r.VIP.String()] = vip{r.Current, r.Preferred, r.Persistence}
		}
		return m
	}
	g := cur.Owner(a("192.0.2.4"))
	want := map[string]vip{
		"192.0.2.1":    {cur.Owner(a("192.0.2.1")), 2, PersistPreferred}, // not moved by the change itself
		"192.0.2.3":    {3, 3, PersistPreferred},                         // the operator's move kept
		"192.0.2.4":    {g, 2, PersistPreferred},
		"192.0.2.5":    {None, None, PersistNone},
		"198.51.100.1": {g, 2, PersistPreferred},
	}
	if diff := cmp.Diff(want, view(got)); diff != "" {
		t.Fatalf("Reconfigure (-want +got):\n%s", diff)
	}
	if got.Rotation() != cur.Rotation() {
		t.Errorf("rotation %d, want %d", got.Rotation(), cur.Rotation())
	}
	// The next steps place .5 and take .1 to its new preferred host, once.
	for range 3 {
		for _, self := range []Node{1, 2, 3} {
			got, _ = got.Step(Input{Self: self, Live: []Node{1, 2, 3}})
		}
	}
	if got.Owner(a("192.0.2.1")) != 2 || got.Owner(a("192.0.2.5")) == None {
		t.Errorf("after steps: .1 on %d (want 2), .5 on %d", got.Owner(a("192.0.2.1")), got.Owner(a("192.0.2.5")))
	}
}
