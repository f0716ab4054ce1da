package ringtest

import (
	"testing"

	"github.com/ringway/ringway/ring"
)

// A rolling restart (each node in turn leaves gracefully, restarts and
// rejoins) drops nobody, regenerates no token, and always has every VIP
// answered once the ring has settled.
func TestRollingRestart(t *testing.T) {
	s := New(Options{Seed: 9, N: 4, Paths: 2, Link: LAN, Trace: true, TraceTokens: true})
	drops, limbo := 0, 0
	s.OnEvent = func(_ int64, e ring.Event) {
		switch e.Kind {
		case ring.EventDropped:
			drops++
		case ring.EventLimbo:
			limbo++
		}
	}
	s.StartAll()
	if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
		t.Fatalf("no ring: %v", s.Converged())
	}
	for id := ring.NodeID(1); id <= 4; id++ {
		s.Leave(id)
		if !s.RunUntil(func() bool { _, up := s.Status(id); return !up }, 500_000) {
			t.Fatalf("n%d did not leave", id)
		}
		if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
			t.Fatalf("after n%d left: %v", id, s.Converged())
		}
		s.Start(id)
		if _, ok := s.RunUntilConverged(MergeBound(s.Config())); !ok {
			t.Fatalf("after n%d restarted: %v", id, s.Converged())
		}
	}
	if drops != 0 || limbo != 0 {
		for _, l := range s.Transcript() {
			t.Log(l)
		}
		t.Errorf("%d drops and %d nodes in limbo during a rolling restart, want none", drops, limbo)
	}
	if r := s.Stats().Regenerations; r != 0 {
		t.Errorf("%d regenerations during a rolling restart, want 0", r)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}
