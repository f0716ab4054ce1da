// Package replay is a sliding anti-replay window over 64-bit packet
// counters, in the style of RFC 6479 ("IPsec Anti-Replay Algorithm without
// Bit Shifting"): a ring of 64-bit words with the newest counter's word
// last, so that advancing the window clears whole words instead of shifting
// a bitmap.
//
// A receiver of authenticated datagrams numbered by a per-sender counter
// keeps one Window per sender: Check before the (costly) authentication,
// Mark after it succeeded, so a forgery never moves the window.
package replay

import "math/bits"

// Window remembers which counters near the newest it has accepted. A
// window of size S (New) accepts each counter at most once; accepts every
// counter not yet accepted that is at most S-64 behind the newest accepted
// one (or newer than it); and refuses every counter S or more behind it.
// Between the two bounds the answer depends on where the newest counter
// falls within its 64-bit word. Counter 0 is never accepted: senders start
// at 1.
//
// A Window is not safe for concurrent use; the zero Window refuses
// everything (use New).
type Window struct {
	top  uint64   // newest counter accepted; 0 = none yet
	bits []uint64 // ring of words; counter c lives at bit c%64 of word (c/64) & mask
	mask uint64   // len(bits) - 1
}

// MinSize is the smallest window: two words, so that at least 64 counters
// behind the newest are always remembered.
const MinSize = 128

// New returns an empty window of at least size counters, rounded up to a
// power of two and to MinSize. It allocates size/8 bytes.
func New(size int) *Window {
	n := uint64(MinSize)
	if size > MinSize {
		n = 1 << bits.Len64(uint64(size)-1)
	}
	words := n / 64
	return &Window{bits: make([]uint64, words), mask: words - 1}
}

// Size returns the window's size S: counters S or more behind the newest
// are refused.
func (w *Window) Size() int { return len(w.bits) * 64 }

// Top returns the newest counter accepted, 0 if none.
func (w *Window) Top() uint64 { return w.top }

// Check reports whether counter c would be accepted: not 0, not accepted
// yet, and recent enough to tell. It does not change the window.
func (w *Window) Check(c uint64) bool {
	if c == 0 || len(w.bits) == 0 {
		return false
	}
	if c > w.top {
		return true
	}
	if w.top/64-c/64 > w.mask {
		return false // its word has left the ring: too old to tell, so a replay
	}
	return w.bits[(c/64)&w.mask]&(1<<(c%64)) == 0
}

// Mark records counter c as accepted, sliding the window forward when c is
// the newest. Call it only for a counter Check accepted, once the datagram
// it numbers has been authenticated.
func (w *Window) Mark(c uint64) {
	if c == 0 || len(w.bits) == 0 {
		return
	}
	if c > w.top {
		// Clear the words between the old newest word and c's, at most the
		// whole ring (RFC 6479 section 2: no bit shifting).
		cur, next := w.top/64, c/64
		d := min(next-cur, uint64(len(w.bits)))
		for i := uint64(1); i <= d; i++ {
			w.bits[(cur+i)&w.mask] = 0
		}
		w.top = c
	}
	w.bits[(c/64)&w.mask] |= 1 << (c % 64)
}

// Accept is Check and, if it passes, Mark: for callers that have already
// authenticated the datagram.
func (w *Window) Accept(c uint64) bool {
	if !w.Check(c) {
		return false
	}
	w.Mark(c)
	return true
}

// Reset forgets every counter, as for a sender's new boot.
func (w *Window) Reset() {
	w.top = 0
	clear(w.bits)
}
