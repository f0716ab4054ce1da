package vipstate

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pairTable: gateway pair group 1 (203.0.113.91 ext, 198.51.100.91 int) on
// node 1, a lone VIP 203.0.113.92 on node 2, and an unplaced 203.0.113.93.
func pairTable(t *testing.T) Table {
	t.Helper()
	tab, err := New(3, []Row{
		{VIP: ip("203.0.113.91"), Subnet: 0, Current: 1, Group: 1},
		{VIP: ip("198.51.100.91"), Subnet: 1, Current: 1, Group: 1},
		{VIP: ip("203.0.113.92"), Subnet: 0, Current: 2},
		{VIP: ip("203.0.113.93"), Subnet: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestAdmin(t *testing.T) {
	g1int := Row{VIP: ip("198.51.100.91"), Subnet: 1, Current: 1, Group: 1}
	g1ext := Row{VIP: ip("203.0.113.91"), Subnet: 0, Current: 1, Group: 1}
	lone := Row{VIP: ip("203.0.113.92"), Subnet: 0, Current: 2}
	unplaced := Row{VIP: ip("203.0.113.93"), Subnet: 0}
	with := func(r Row, f func(*Row)) Row { f(&r); return r }
	tests := []struct {
		name    string
		op      func(Table) (Table, error)
		want    []Row
		wantErr error
	}{{
		name: "move sets the preference of the whole group",
		op:   func(t Table) (Table, error) { return t.Move(ip("203.0.113.91"), 3) },
		want: []Row{
			with(g1int, func(r *Row) { r.Preferred, r.Persistence = 3, PersistPreferred }),
			with(g1ext, func(r *Row) { r.Preferred, r.Persistence = 3, PersistPreferred }),
			lone, unplaced,
		},
	}, {
		name:    "move to an unknown node",
		op:      func(t Table) (Table, error) { return t.Move(ip("203.0.113.91"), 4) },
		wantErr: ErrUnknownNode,
	}, {
		name:    "move to nobody",
		op:      func(t Table) (Table, error) { return t.Move(ip("203.0.113.91"), None) },
		wantErr: ErrUnknownNode,
	}, {
		name:    "move an unknown VIP",
		op:      func(t Table) (Table, error) { return t.Move(ip("203.0.113.99"), 1) },
		wantErr: ErrUnknownVIP,
	}, {
		name: "prefer the current host",
		op:   func(t Table) (Table, error) { return t.Prefer(ip("203.0.113.92")) },
		want: []Row{g1int, g1ext, with(lone, func(r *Row) { r.Preferred, r.Persistence = 2, PersistPreferred }), unplaced},
	}, {
		name:    "prefer with no host",
		op:      func(t Table) (Table, error) { return t.Prefer(ip("203.0.113.93")) },
		wantErr: ErrNoHost,
	}, {
		name: "unprefer clears the preference",
		op: func(t Table) (Table, error) {
			t, _ = t.Move(ip("203.0.113.92"), 3)
			return t.Unprefer(ip("203.0.113.92"))
		},
		want: []Row{g1int, g1ext, lone, unplaced},
	}, {
		name: "stick to the current host",
		op:   func(t Table) (Table, error) { return t.Stick(ip("198.51.100.91")) },
		want: []Row{
			with(g1int, func(r *Row) { r.Preferred, r.Persistence = 1, PersistCurrent }),
			with(g1ext, func(r *Row) { r.Preferred, r.Persistence = 1, PersistCurrent }),
			lone, unplaced,
		},
	}, {
		name: "unstick keeps the host as a hint",
		op: func(t Table) (Table, error) {
			t, _ = t.Stick(ip("203.0.113.92"))
			return t.Unstick(ip("203.0.113.92"))
		},
		want: []Row{g1int, g1ext, with(lone, func(r *Row) { r.Preferred = 2 }), unplaced},
	}, {
		name: "close clears the host of the whole group",
		op:   func(t Table) (Table, error) { return t.Close(ip("198.51.100.91")) },
		want: []Row{
			with(g1int, func(r *Row) { r.Current, r.Closed = None, true }),
			with(g1ext, func(r *Row) { r.Current, r.Closed = None, true }),
			lone, unplaced,
		},
	}, {
		name: "open leaves placement to Step",
		op: func(t Table) (Table, error) {
			t, _ = t.Close(ip("198.51.100.91"))
			return t.Open(ip("203.0.113.91"))
		},
		want: []Row{
			with(g1int, func(r *Row) { r.Current = None }),
			with(g1ext, func(r *Row) { r.Current = None }),
			lone, unplaced,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := pairTable(t)
			orig := before.Rows()
			got, err := tt.op(before)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(orig, before.Rows(), addrs); diff != "" {
				t.Errorf("the receiver changed (-before +after):\n%s", diff)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got.Rows(), addrs); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if _, err := New(got.Nodes(), got.Rows()); err != nil {
				t.Errorf("result is not a valid table: %v", err)
			}
		})
	}
}

// TestAdminMoveHappensAtOwnersTurn: the patent's drag and drop records the
// preference; the VIP moves only when its current owner holds the token.
func TestAdminMoveHappensAtOwnersTurn(t *testing.T) {
	tab, err := pairTable(t).Move(ip("203.0.113.91"), 3)
	if err != nil {
		t.Fatal(err)
	}
	all := []Node{1, 2, 3}
	tab = step(t, tab, Input{Self: 2, Live: all}, []Move{mv("203.0.113.93", None, 3, ReasonAssign)})
	tab = step(t, tab, Input{Self: 3, Live: all}, nil)
	tab = step(t, tab, Input{Self: 1, Live: all}, []Move{
		mv("198.51.100.91", 1, 3, ReasonPreference),
		mv("203.0.113.91", 1, 3, ReasonPreference),
	})
	if got := tab.OwnedBy(3); !cmp.Equal(got, []netip.Addr{ip("198.51.100.91"), ip("203.0.113.91"), ip("203.0.113.93")}, addrs) {
		t.Errorf("OwnedBy(3) = %v", got)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		rows  []Row
		want  string
	}{
		{"IPv6", 2, []Row{{VIP: ip("2001:db8::1")}}, "only IPv4"},
		{"zero VIP", 2, []Row{{}}, "only IPv4"},
		{"unspecified", 2, []Row{{VIP: ip("0.0.0.0")}}, "unspecified"},
		{"duplicate", 2, []Row{{VIP: ip("10.0.0.1")}, {VIP: ip("10.0.0.1")}}, "appears twice"},
		{"current beyond map", 2, []Row{{VIP: ip("10.0.0.1"), Current: 3}}, "current host 3 is not in the node map of 2"},
		{"preferred beyond map", 2, []Row{{VIP: ip("10.0.0.1"), Preferred: 3}}, "preferred host 3"},
		{"persistence 2", 2, []Row{{VIP: ip("10.0.0.1"), Persistence: 2}}, "persistence 2"},
		{"preferred without host", 2, []Row{{VIP: ip("10.0.0.1"), Persistence: PersistPreferred}}, "needs a preferred host"},
		{"closed with host", 2, []Row{{VIP: ip("10.0.0.1"), Current: 1, Closed: true}}, "closed but has current host"},
		{"group on one subnet", 2, []Row{{VIP: ip("10.0.0.1"), Group: 1}, {VIP: ip("10.0.0.2"), Group: 1}}, "both on subnet 0"},
		{"group split", 2, []Row{{VIP: ip("10.0.0.1"), Group: 1, Current: 1}, {VIP: ip("10.0.1.1"), Subnet: 1, Group: 1, Current: 2}}, "a group moves as one"},
		{"group policy", 2, []Row{{VIP: ip("10.0.0.1"), Group: 1, Preferred: 1}, {VIP: ip("10.0.1.1"), Subnet: 1, Group: 1}}, "same preference"},
		{"too many nodes", MaxNodes + 1, nil, "nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.nodes, tt.rows)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
