package ringtest

import (
	"fmt"
	"testing"

	"github.com/ringway/ringway/ring"
)

// idleChurn starts n nodes at once on host h, waits up to formLimit µs for
// one ring, then counts the membership changes (drops, joins, merges,
// regenerations, nodes stepping out) made in idle µs of steady state.
func idleChurn(t *testing.T, seed uint64, n int, h Host, formLimit, idle int64, mod func(*ring.Config)) (formUS int64, changes int, byKind map[ring.EventKind]int) {
	t.Helper()
	s := New(Options{Seed: seed, N: n, Paths: 2, Link: LAN, Host: h, Ring: mod,
		Replay: fmt.Sprintf("go test ./ring/ringtest -run %s -seed=%%d -v", t.Name())})
	counting := false
	byKind = map[ring.EventKind]int{}
	s.OnEvent = func(_ int64, e ring.Event) {
		switch e.Kind {
		case ring.EventDropped, ring.EventJoined, ring.EventMerged, ring.EventRegenerated, ring.EventLimbo, ring.EventFormed:
			if counting {
				changes++
				byKind[e.Kind]++
			}
		}
	}
	s.StartAll()
	formUS, ok := s.RunUntilConverged(formLimit)
	if !ok {
		formUS = -1000
	}
	counting = true
	s.Run(idle)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	var busy int64
	for _, ns := range s.nodes {
		busy = max(busy, ns.busyUntil-s.now)
	}
	t.Logf("N=%d at %.1f s: converged: %v; %+v; backlog %d µs", n, float64(s.now)/1e6, s.Converged(), s.Stats(), busy)
	return formUS, changes, byKind
}

// TestLoadedHostScale: 32 full nodes started at once on a loaded 2-core
// host (LoadedHost) form one ring and then stay quiet. The fixed timers'
// row is logged for comparison: this model delays every node alike, so it
// does not reproduce the lab's collapse (docs/ring.md, "The N=32
// collapse"); it shows the start-up, which the fixed timers take longer
// to get through.
func TestLoadedHostScale(t *testing.T) {
	if testing.Short() {
		t.Skip("32 nodes on a simulated loaded host: seconds")
	}
	for _, fixed := range []bool{true, false} {
		form, changes, kinds := idleChurn(t, *flagSeed+1, 32, LoadedHost, 25_000_000, 10_000_000, func(c *ring.Config) { c.FixedTimers = fixed })
		t.Logf("N=32 fixed timers %v: formed in %.0f ms, %d membership changes in 10 s idle %v", fixed, float64(form)/1000, changes, kinds)
		if fixed {
			continue
		}
		if form < 0 {
			t.Errorf("adaptive timers: no single ring within 25 s")
		}
		if changes != 0 {
			t.Errorf("adaptive timers: %d membership changes in 10 s idle, want 0: %v", changes, kinds)
		}
	}
}
