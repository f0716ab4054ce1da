package ringnet

// WindowSize is the number of packet counters behind the newest one that the
// replay window remembers. Datagrams older than that are dropped as replays.
// 1024 covers the reordering two paths can produce at ring rates by a wide
// margin (a hop is a handful of datagrams).
const WindowSize = 1024

const windowWords = WindowSize / 64

// window is a sliding replay window over 64-bit packet counters in the style
// of RFC 6479: a ring of 64-bit words, the newest counter's word last. It
// remembers at least WindowSize-63 counters behind the newest. Counter 0 is
// never valid.
type window struct {
	top  uint64 // newest counter accepted; 0 = none yet
	bits [windowWords]uint64
}

// check reports whether counter c has not been accepted yet and is recent
// enough to be tracked. It does not change the window.
func (w *window) check(c uint64) bool {
	if c == 0 {
		return false
	}
	if c > w.top {
		return true
	}
	if w.top/64-c/64 >= windowWords {
		return false // too old to tell: treat as a replay
	}
	return w.bits[(c/64)%windowWords]&(1<<(c%64)) == 0
}

// mark records counter c as accepted. Call it only after check(c) and after
// the datagram authenticated.
func (w *window) mark(c uint64) {
	if c > w.top {
		cur, next := w.top/64, c/64
		d := next - cur
		if d > windowWords {
			d = windowWords
		}
		for i := uint64(1); i <= d; i++ {
			w.bits[(cur+i)%windowWords] = 0
		}
		w.top = c
	}
	w.bits[(c/64)%windowWords] |= 1 << (c % 64)
}
