package ringtest

import (
	"testing"

	"github.com/ringway/ringway/ring"
)

// In quorum mode majority the minority side of a partition serves nothing
// and the majority side serves every VIP; availability mode serves both.
func TestQuorumPartition(t *testing.T) {
	for _, tc := range []struct {
		q             ring.Quorum
		minorityOwns  bool
		majorityAlone bool
	}{
		{ring.Majority, false, true},
		{ring.Availability, true, false},
	} {
		s := New(Options{Seed: 3, N: 5, Paths: 2, Link: LAN, Quorum: tc.q})
		s.StartAll()
		if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
			t.Fatalf("%v: no ring: %v", tc.q, s.Converged())
		}
		s.Partition([]ring.NodeID{1, 2}, []ring.NodeID{3, 4, 5})
		s.Run(DetectBound(s.Config()) * 2)
		own := s.Owners()
		minority, majority := 0, 0
		for _, v := range s.VIPs() {
			for _, id := range own[v] {
				if id <= 2 {
					minority++
				} else {
					majority++
				}
			}
		}
		if (minority > 0) != tc.minorityOwns {
			t.Errorf("%v: minority side owns %d VIPs", tc.q, minority)
		}
		if majority != len(s.VIPs()) {
			t.Errorf("%v: majority side owns %d of %d VIPs", tc.q, majority, len(s.VIPs()))
		}
		s.Heal()
		if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
			t.Errorf("%v: no single ring after the heal: %v", tc.q, s.Converged())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
}
