package ringtest

import (
	"fmt"
	"testing"

	"github.com/ringway/ringway/ring"
)

// Issue 13, chaos finding 3: a node that hears nothing but can still send
// (one-way deaf) made the healthy ring flap for as long as it lasted: its
// 911s and probes reached the ring, which added it back (a join request,
// or a merge with the ring it formed alone), and the hop to it failed
// again, every 25-50 ms. The healthy ring must drop it once and then stay
// as it is until the node can hear again; then take it back.
func TestDeafNodeDroppedOnce(t *testing.T) {
	for _, q := range []ring.Quorum{ring.Availability, ring.Majority} {
		for seed := uint64(1); seed <= 4; seed++ {
			s := New(Options{Seed: seed, N: 4, Paths: 2, Link: LAN, Quorum: q, Trace: true})
			changes := 0
			var deafFrom int64 = -1
			s.OnEvent = func(at int64, e ring.Event) {
				if deafFrom >= 0 && e.Node != 3 && e.Kind.Membership() && e.Kind != ring.EventLearnt {
					changes++
				}
			}
			s.StartAll()
			if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
				t.Fatalf("no ring: %v", s.Converged())
			}
			deafFrom = s.Now()
			for _, id := range []ring.NodeID{1, 2, 4} {
				s.Cut(id, 3)
			}
			s.Run(3 * 1000 * 1000)
			what := fmt.Sprintf("%v seed %d", q, seed)
			// One drop (by the node before n3), nothing after.
			if changes > 1 {
				t.Errorf("%s: %d membership changes made by the healthy nodes in 3 s with n3 deaf, want 1\n%s", what, changes, FormatTranscript(s, 30))
			}
			for _, id := range []ring.NodeID{1, 2, 4} {
				if st := s.State(id); st == nil || fmt.Sprint(st.Members) != "[1 2 4]" {
					t.Errorf("%s: n%d's state %+v, want members [1 2 4]", what, id, st)
				}
			}
			s.Heal()
			if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
				t.Errorf("%s: n3 not taken back after it hears again: %v", what, s.Converged())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
