package mgmt

import "testing"

func TestLagQuantile(t *testing.T) {
	b := []uint32{100, 200, 500, 1000}
	for _, c := range []struct {
		h    []uint64
		q    float64
		us   int
		over bool
	}{
		{nil, 0.99, 0, false},
		{[]uint64{98, 1, 1, 0, 0}, 0.99, 200, false},
		{[]uint64{98, 1, 0, 1, 0}, 0.999, 1000, false},
		{[]uint64{1, 0, 0, 0, 99}, 0.99, 1000, true},
		{[]uint64{100, 0, 0, 0, 0}, 0.5, 100, false},
	} {
		r := ReplicationStatus{LagUs: c.h, LagBoundsUs: b}
		if us, over := r.LagQuantile(c.q); us != c.us || over != c.over {
			t.Errorf("%v q%v: %d %v, want %d %v", c.h, c.q, us, over, c.us, c.over)
		}
	}
}

// A status from a node older than the lag bounds: powers of two, as
// before, not "≥ 0 µs".
func TestLagQuantileWithoutBounds(t *testing.T) {
	r := ReplicationStatus{LagUs: []uint64{0, 0, 98, 2}}
	if us, over := r.LagQuantile(0.5); us != 4 || over {
		t.Errorf("p50 of a power-of-two histogram without bounds: %d %v, want 4 false", us, over)
	}
}
