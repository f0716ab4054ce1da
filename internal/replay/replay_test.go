package replay

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestNewSize(t *testing.T) {
	for _, c := range []struct{ in, want int }{{0, 128}, {1, 128}, {128, 128}, {129, 256}, {1024, 1024}, {1025, 2048}, {8192, 8192}} {
		if got := New(c.in).Size(); got != c.want {
			t.Errorf("New(%d).Size() = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestWindow(t *testing.T) {
	type step struct {
		c    uint64
		want bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"zero never", []step{{0, false}, {1, true}, {0, false}}},
		{"once each", []step{{1, true}, {1, false}, {2, true}, {2, false}, {1, false}}},
		{"reorder inside", []step{{5, true}, {3, true}, {4, true}, {3, false}, {1, true}, {2, true}, {5, false}}},
		{"jump ahead", []step{{1, true}, {100000, true}, {1, false}, {99999, true}, {100000 - 960, true}, {100000 - 960, false}}},
		// Size 1024: 1024 behind the newest is refused, 960 behind accepted.
		{"too old", []step{{2048, true}, {1024, false}, {1025, false}, {2048 - 960, true}, {2047, true}}},
		{"word reuse", []step{{64, true}, {64 + 1024, true}, {64, false}, {65, false}, {64 + 1024 - 1, true}}},
		{"max", []step{{^uint64(0), true}, {^uint64(0), false}, {^uint64(0) - 1, true}, {1, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := New(1024)
			for i, s := range tc.steps {
				if got := w.Accept(s.c); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v (top %d)", i, s.c, got, s.want, w.Top())
				}
			}
		})
	}
}

func TestCheckDoesNotMark(t *testing.T) {
	w := New(128)
	for range 2 {
		if !w.Check(7) {
			t.Fatal("Check refused a fresh counter")
		}
	}
	if w.Top() != 0 {
		t.Fatal("Check moved the window")
	}
	w.Mark(7)
	if w.Check(7) {
		t.Fatal("a marked counter passes Check")
	}
	w.Reset()
	if !w.Accept(7) {
		t.Fatal("Reset did not forget")
	}
}

func TestZeroWindow(t *testing.T) {
	var w Window
	w.Mark(3)
	if w.Check(1) || w.Accept(3) {
		t.Fatal("the zero Window accepted a counter")
	}
}

// model is the slow, obviously right window: every counter accepted, in a
// map, and the two bounds of the Window contract.
type model struct {
	size int
	top  uint64
	seen map[uint64]bool
}

// verdict checks an Accept answer against the contract: it returns a
// complaint, or "" when the answer is allowed.
func (m *model) verdict(c uint64, got bool) string {
	switch {
	case got && (c == 0 || m.seen[c]):
		return "accepted twice (or 0)"
	case got && c <= m.top && m.top-c >= uint64(m.size):
		return "accepted a counter a whole window behind"
	case !got && c != 0 && !m.seen[c] && (c > m.top || m.top-c <= uint64(m.size-64)):
		return "refused a fresh counter within the window"
	}
	if got {
		m.seen[c] = true
		m.top = max(m.top, c)
	}
	return ""
}

// check runs counters through a window and the model.
func check(t *testing.T, size int, cs []uint64) {
	t.Helper()
	w := New(size)
	m := &model{size: w.Size(), seen: map[uint64]bool{}}
	for i, c := range cs {
		if bad := m.verdict(c, w.Accept(c)); bad != "" {
			t.Fatalf("step %d: counter %d (top %d, size %d): %s", i, c, m.top, m.size, bad)
		}
	}
}

// TestModel: senders that reorder, duplicate and skip, at random.
func TestModel(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 99))
		size := []int{128, 1024, 8192}[seed%3]
		var cs []uint64
		next := uint64(1)
		for range 20000 {
			switch r.IntN(10) {
			case 0: // a duplicate of something recent
				cs = append(cs, next-uint64(r.IntN(int(min(next, 2*uint64(size))))))
			case 1: // a late one, near the edge of the window
				back := uint64(size - 80 + r.IntN(160))
				if back < next {
					cs = append(cs, next-back)
				}
			case 2: // a gap
				next += uint64(r.IntN(3 * size))
			default:
				cs = append(cs, next)
				next++
			}
		}
		check(t, size, cs)
	}
}

// FuzzWindow: any sequence of counters (8 bytes each, big-endian; the top
// byte of each also picks whether it is taken as a small delta back from
// the newest, to reach the interesting edge of the window) keeps the
// contract: each counter at most once, fresh recent ones always.
func FuzzWindow(f *testing.F) {
	f.Add([]byte{})                                                                       // nothing
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})                         // 1 twice
	f.Add([]byte{0, 0, 0, 0, 0, 0, 8, 0, 0x80, 0, 0, 0, 0, 0, 3, 0xc0})                   // 2048, then 960 back
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}) // max, then 0
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs []uint64
		var top uint64
		for ; len(b) >= 8; b = b[8:] {
			v := binary.BigEndian.Uint64(b)
			c := v
			if b[0]&0x80 != 0 { // a delta back from the newest so far
				c = top - min(top, v&0xffff)
			}
			cs = append(cs, c)
			top = max(top, c)
		}
		check(t, 1024, cs)
	})
}

func BenchmarkAccept(b *testing.B) {
	w := New(8192)
	c := uint64(0)
	for b.Loop() {
		c++
		w.Accept(c)
	}
}
