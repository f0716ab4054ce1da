package vipstate

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBalance(t *testing.T) {
	// Rows 10.0.0.1.. on the given hosts and persistence, with loads in
	// bytes/s; node map of 3, members 1 2 3 unless live says otherwise.
	type vip struct {
		on   Node
		load uint64
		p    Persistence
	}
	on := func(n Node, load uint64) vip { return vip{n, load, PersistNone} }
	cfg := BalanceConfig{Enabled: true, Threshold: 25, MinRate: 1000, Cooldown: 3}
	tests := []struct {
		name string
		vips []vip
		self Node
		live []Node
		cfg  BalanceConfig
		want []Move
	}{{
		name: "largest VIP that does not overshoot",
		// n1 900, n2 100, n3 400: gap to n2 is 800, so L ≤ 400: 300 wins.
		vips: []vip{on(1, 500), on(1, 300), on(1, 100), on(2, 100), on(3, 400)},
		self: 1, cfg: cfg,
		want: []Move{mv("10.0.0.2", 1, 2, ReasonBalance)},
	}, {
		name: "holder not the most loaded does nothing",
		vips: []vip{on(1, 500), on(1, 300), on(1, 100), on(2, 100), on(3, 400)},
		self: 3, cfg: cfg,
	}, {
		name: "tie for most loaded: either may give",
		vips: []vip{on(1, 600), on(2, 600), on(3, 100), on(3, 100)},
		self: 2, cfg: cfg,
		// gap 400 → L ≤ 200; n2 has only a 600 VIP: nothing fits.
	}, {
		name: "tie for most loaded, a VIP fits",
		vips: []vip{on(1, 600), on(2, 400), on(2, 200), on(3, 100)},
		self: 2, cfg: cfg,
		want: []Move{mv("10.0.0.3", 2, 3, ReasonBalance)},
	}, {
		name: "least loaded tie goes to ring order",
		// gap 4000 to both n2 and n3; n3 comes first in this ring.
		vips: []vip{on(1, 3000), on(1, 2000), on(2, 1000), on(3, 1000)},
		self: 1, live: []Node{1, 3, 2}, cfg: cfg,
		want: []Move{mv("10.0.0.2", 1, 3, ReasonBalance)},
	}, {
		name: "below MinRate",
		vips: []vip{on(1, 500), on(1, 300), on(2, 100)},
		self: 1, cfg: BalanceConfig{Enabled: true, Threshold: 25, MinRate: 900, Cooldown: 3},
	}, {
		name: "imbalance within threshold",
		// n1 550, n2 450, n3 500: gap 100 ≤ 25% of mean 500.
		vips: []vip{on(1, 300), on(1, 250), on(2, 450), on(3, 500)},
		self: 1, cfg: cfg,
	}, {
		name: "imbalance just over threshold",
		// Threshold 10: gap 100 > 10% of 500.
		vips: []vip{on(1, 300), on(1, 40), on(1, 210), on(2, 450), on(3, 500)},
		self: 1, cfg: BalanceConfig{Enabled: true, Threshold: 10, MinRate: 0, Cooldown: 1},
		want: []Move{mv("10.0.0.2", 1, 2, ReasonBalance)},
	}, {
		name: "one big VIP would overshoot: never moved",
		vips: []vip{on(1, 1000), on(2, 0), on(3, 0)},
		self: 1, cfg: cfg,
	}, {
		name: "sticky VIPs are never balanced",
		vips: []vip{{1, 300, PersistCurrent}, {1, 300, PersistPreferred}, on(1, 5000), on(2, 0), on(3, 0)},
		self: 1, cfg: cfg,
	}, {
		name: "disabled",
		vips: []vip{on(1, 500), on(1, 300), on(1, 100), on(2, 100)},
		self: 1, cfg: BalanceConfig{Threshold: 25, MinRate: 1000, Cooldown: 3},
	}, {
		name: "dead nodes are neither givers nor receivers",
		// n2 (load 0) is dead: the receiver is n3.
		vips: []vip{on(1, 5000), on(1, 3000), on(3, 1000)},
		self: 1, live: []Node{1, 3}, cfg: cfg,
		want: []Move{mv("10.0.0.2", 1, 3, ReasonBalance)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := make([]Row, len(tt.vips))
			load := map[netip.Addr]uint64{}
			for i, v := range tt.vips {
				rows[i] = Row{VIP: ip(fmt.Sprintf("10.0.0.%d", i+1)), Current: v.on, Persistence: v.p}
				if v.p != PersistNone {
					rows[i].Preferred = v.on
				}
				load[rows[i].VIP] = v.load
			}
			tab, err := New(3, rows)
			if err != nil {
				t.Fatal(err)
			}
			live := tt.live
			if live == nil {
				live = []Node{1, 2, 3}
			}
			_, moves := tab.Step(Input{Self: tt.self, Live: live, VIPLoad: load, Balance: tt.cfg})
			if diff := cmp.Diff(tt.want, moves, addrs); diff != "" {
				t.Errorf("moves (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBalanceCooldown: after a balancing move nothing else is balanced for
// Cooldown rotations, even though the imbalance remains.
func TestBalanceCooldown(t *testing.T) {
	rows := make([]Row, 8)
	load := map[netip.Addr]uint64{}
	for i := range rows {
		rows[i] = Row{VIP: ip(fmt.Sprintf("10.0.0.%d", i+1)), Current: 1}
		load[rows[i].VIP] = 1000
	}
	tab, err := New(2, rows)
	if err != nil {
		t.Fatal(err)
	}
	cfg := BalanceConfig{Enabled: true, Threshold: 25, MinRate: 0, Cooldown: 3}
	var at []uint64 // rotations at which a balancing move happened
	for range 20 {
		for _, self := range []Node{1, 2} {
			var moves []Move
			tab, moves = tab.Step(Input{Self: self, Live: []Node{1, 2}, VIPLoad: load, Balance: cfg})
			for _, m := range moves {
				if m.Reason != ReasonBalance || m.From != 1 || m.To != 2 {
					t.Fatalf("unexpected move %+v", m)
				}
				at = append(at, tab.Rotation())
			}
		}
	}
	// 8 VIPs of equal load on node 1: four moves reach 4/4, each 3
	// rotations after the previous one.
	if diff := cmp.Diff([]uint64{1, 4, 7, 10}, at); diff != "" {
		t.Errorf("balancing rotations (-want +got):\n%s", diff)
	}
	if got := len(tab.OwnedBy(2)); got != 4 {
		t.Errorf("node 2 owns %d VIPs after balancing, want 4", got)
	}
}
