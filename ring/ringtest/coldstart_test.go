package ringtest

import "testing"

// A cold start of 64 nodes at once forms one ring. Seed 64023 used to end
// with two token lines over all 64 nodes for good: n1 formed the ring, but
// its token needed 200 ms to reach n61 and n63, which had waited their one
// extra JoinTimeout and formed rings of their own at the same start-up seq;
// the lines then overtook each other at every node. Three rules keep it
// from happening (docs/ring.md, "Join"): a starting node waits as long as
// it hears a live ring, a node's first token is passed on without a hold,
// and a node never goes back to a line it left.
func TestColdStart64(t *testing.T) {
	for _, seed := range []uint64{64023, 64034, 64061, 64076} {
		s := New(Options{Seed: seed, N: 64, Paths: 2, Link: LAN})
		s.StartAll()
		at, ok := s.RunUntilConverged(2_000_000)
		if !ok {
			t.Errorf("seed %d: no single ring after 2 s: %v", seed, s.Converged())
			continue
		}
		if at > 1_000_000 {
			t.Errorf("seed %d: one ring only after %d ms", seed, at/1000)
		}
		if err := s.Err(); err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
	}
}
