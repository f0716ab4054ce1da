package vipstate

import (
	"fmt"
	"net/netip"
	"testing"
)

// steady returns a table of n VIPs (n/2 gateway pairs) spread evenly over 8
// live nodes, with equal loads: a Step finds nothing to do, but it still
// checks every VIP for fail-over and preference and sums the node loads for
// balancing.
func steady(tb testing.TB, n int) (Table, Input) {
	tab := lab(tb, 8, n)
	load := make(map[netip.Addr]uint64, n)
	for _, r := range tab.Rows() {
		load[r.VIP] = 50_000
	}
	in := Input{Self: 1, Live: []Node{1, 2, 3, 4, 5, 6, 7, 8}, VIPLoad: load, Balance: DefaultBalanceConfig()}
	return tab, in
}

// TestStepSteadyAllocs pins that a Step with nothing to do allocates
// nothing: it runs on every token hop.
func TestStepSteadyAllocs(t *testing.T) {
	tab, in := steady(t, 4096)
	if _, moves := tab.Step(in); len(moves) != 0 {
		t.Fatalf("steady table moved %v", moves)
	}
	allocs := testing.AllocsPerRun(100, func() { tab.Step(in) })
	if allocs != 0 {
		t.Errorf("Step on a steady 4096-VIP table: %v allocations, want 0", allocs)
	}
}

func BenchmarkStep(b *testing.B) {
	for _, n := range []int{1024, 4096} {
		b.Run(fmt.Sprintf("steady/%d", n), func(b *testing.B) {
			tab, in := steady(b, n)
			b.ReportAllocs()
			for b.Loop() {
				tab.Step(in)
			}
		})
		b.Run(fmt.Sprintf("failover/%d", n), func(b *testing.B) {
			// Node 8 has just died: an eighth of the VIPs move.
			tab, in := steady(b, n)
			in.Live = in.Live[:7]
			b.ReportAllocs()
			for b.Loop() {
				tab.Step(in)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, n := range []int{1024, 4096} {
		tab := lab(b, 8, n)
		enc, _ := tab.MarshalBinary()
		b.Run(fmt.Sprintf("marshal/%d", n), func(b *testing.B) {
			buf := make([]byte, 0, len(enc))
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				buf, _ = tab.AppendBinary(buf[:0])
			}
		})
		b.Run(fmt.Sprintf("unmarshal/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				var u Table
				if err := u.UnmarshalBinary(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
