package forward

import "sync"

// fragTimeout is how long a first fragment's verdict is kept for the rest
// of its datagram: the kernel's ipfrag_time default.
const fragTimeout = 30_000_000_000 // 30 s in ns

// fragKey identifies one fragmented datagram (RFC 791: source,
// destination, protocol and identification).
type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
}

type fragEntry struct {
	pass    bool
	to      uint16 // symmetric routing: the first fragment was redirected to this node, and so are the others
	expires int64
}

// frags remembers the verdict of each first fragment so the datagram's
// other fragments follow it without an L4 header of their own. Bounded:
// at max entries, a new datagram's first fragment is refused (the sender's
// datagram is lost, the table is not grown); expired entries go first.
type frags struct {
	mu  sync.Mutex
	m   map[fragKey]fragEntry
	max int
}

func (f *frags) key(p *packet) fragKey {
	return fragKey{src: p.src, dst: p.dst, id: p.ipID, proto: p.proto}
}

// record stores the verdict for p's datagram; false when the tracker is
// full.
func (f *frags) record(p *packet, pass bool, now int64) bool {
	return f.store(p, fragEntry{pass: pass, expires: now + fragTimeout}, now)
}

// recordTo stores that p's datagram, whose first fragment is p, was
// redirected to node to: its other fragments go there too (they have no
// L4 header to find their flow by). False when the tracker is full.
func (f *frags) recordTo(p *packet, to uint16, now int64) bool {
	return f.store(p, fragEntry{to: to, expires: now + fragTimeout}, now)
}

// store puts e for p's datagram, expiring old entries when the tracker is
// full; false when it stays full.
func (f *frags) store(p *packet, e fragEntry, now int64) bool {
	k := f.key(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[k]; !ok && len(f.m) >= f.max {
		f.expire(now)
		if len(f.m) >= f.max {
			return false
		}
	}
	f.m[k] = e
	return true
}

// redirected returns the node p's datagram was redirected to, 0 if none
// (or its first fragment was not seen).
func (f *frags) redirected(p *packet, now int64) uint16 {
	k := f.key(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.m[k]; ok && now < e.expires {
		return e.to
	}
	return 0
}

// verdict returns the recorded verdict of p's datagram: found is false
// when its first fragment was not seen (or has expired). The entry stays
// until it expires, not until the last fragment: fragments may arrive in
// any order, and a later datagram with the same id overwrites it.
func (f *frags) verdict(p *packet, now int64) (pass, found bool) {
	k := f.key(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[k]
	if !ok || now >= e.expires {
		return false, false
	}
	return e.pass, true
}

// expire drops expired entries. The caller holds f.mu; the map is small
// (MaxFragments), and this runs only when it is full or from Sweep.
func (f *frags) expire(now int64) {
	for k, e := range f.m {
		if now >= e.expires {
			delete(f.m, k)
		}
	}
}

func (f *frags) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
