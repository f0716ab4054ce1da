package ringtest

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/ringway/ringway/ring"
)

var (
	flagSeed  = flag.Uint64("seed", 0, "run only this seed of TestSim (replay)")
	flagSeeds = flag.Int("seeds", 0, "number of random seeds for TestSim (default 50, or $RING_SIM_SEEDS)")
	flagFrom  = flag.Uint64("seed-from", 1, "first seed of TestSim")
)

// TestSim runs random seeds of mixed faults (make sim SEEDS=N runs many).
func TestSim(t *testing.T) {
	seeds := 50
	if v, err := strconv.Atoi(os.Getenv("RING_SIM_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	if *flagSeeds > 0 {
		seeds = *flagSeeds
	}
	first := *flagFrom
	if *flagSeed != 0 {
		first, seeds = *flagSeed, 1
	}
	failed := 0
	for i := 0; i < seeds; i++ {
		seed := first + uint64(i)
		s, err := RandomScenario(seed, "go test ./ring/ringtest -run 'TestSim$' -seed=%d -v")
		if err != nil {
			failed++
			if *flagSeed != 0 || testing.Verbose() && failed == 1 {
				t.Log(FormatTranscript(s, 80))
			}
			t.Error(err)
			if failed >= 5 {
				t.Fatalf("stopping after %d failed seeds", failed)
			}
		}
	}
	t.Logf("%d seeds from %d, %d failed", seeds, first, failed)
}

// TestSimTimers runs random seeds with other timer settings an operator
// may choose: the invariants do not depend on the defaults.
func TestSimTimers(t *testing.T) {
	for _, tc := range []struct {
		name                                 string
		hop, minRot, ack, retries, tokenLoss int
	}{
		{"fast", 1, 20, 1, 3, 0},
		{"slow", 5, 20, 3, 1, 0},
		{"long-token-loss", 2, 20, 2, 2, 200},
		{"no-min-rotation", 2, 0, 2, 2, 0},
		{"long-rotation", 2, 60, 2, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := func(c *ring.Config) {
				c.HopInterval, c.MinRotation, c.AckTimeout, c.AckRetries, c.TokenLoss = tc.hop, tc.minRot, tc.ack, tc.retries, tc.tokenLoss
			}
			for seed := uint64(1); seed <= 20; seed++ {
				if _, err := RandomScenarioWith(seed, "go test ./ring/ringtest -run TestSimTimers/"+tc.name+" -v # seed %d", mod); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestSimLarge runs random seeds of mixed faults on larger rings, where a
// rotation is longer than MinRotation and many nodes start, fail and merge
// at once.
func TestSimLarge(t *testing.T) {
	for _, n := range []int{16, 32} {
		for seed := uint64(1); seed <= 4; seed++ {
			if _, err := RandomScenarioSized(seed, n, fmt.Sprintf("go test ./ring/ringtest -run TestSimLarge -v # N=%d, seed %%d", n)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
