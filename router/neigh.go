package router

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// neighConfig tunes the userspace ARP cache.
type neighConfig struct {
	reachable   time.Duration // an entry is used without question this long after its last confirmation
	probeWindow time.Duration // after that it is still used while being re-probed, then forgotten
	retry       time.Duration // interval between ARP requests for an unresolved or stale host
	tries       int           // requests for an unresolved host before its queue is dropped
	queueLen    int           // packets held per unresolved next hop
}

// neighTable is the ARP cache of one link. Lookups on the hot path are
// lock-free: resolved entries live in an immutable map swapped atomically
// (copy on write, since entries change rarely), and a confirmation of an
// unchanged MAC only stores a timestamp. Unresolved next hops and their small
// packet queues live under a mutex; they are off the fast path by nature.
//
// Time is an argument (nanoseconds on a monotonic clock of the caller's
// choosing), so the table is deterministic under test.
type neighTable struct {
	cfg      neighConfig
	resolved atomic.Pointer[map[[4]byte]*neighEntry]

	mu      sync.Mutex
	pending map[[4]byte]*neighPending

	// wake, when set, gets a non-blocking send whenever the table creates
	// work for tick (a new pending resolution, a new or changed entry), so a
	// timer sleeping until nextAt learns of the earlier deadline.
	wake chan<- struct{}
}

type neighEntry struct {
	mac       MAC          // immutable: a changed MAC makes a new entry
	confirmed atomic.Int64 // last confirmation, ns
	probed    atomic.Int64 // last probe sent, ns
}

type neighPending struct {
	lastReq int64
	tries   int
	queue   [][]byte
}

func newNeighTable(cfg neighConfig) *neighTable {
	t := &neighTable{cfg: cfg, pending: map[[4]byte]*neighPending{}}
	m := map[[4]byte]*neighEntry{}
	t.resolved.Store(&m)
	return t
}

// lookup returns the MAC of ip. probe is true when the entry is stale and
// the caller should send one ARP request to re-confirm it (at most once per
// retry interval across all callers).
func (t *neighTable) lookup(ip netip.Addr, now int64) (mac MAC, ok, probe bool) {
	e := (*t.resolved.Load())[ip.As4()]
	if e == nil {
		return MAC{}, false, false
	}
	age := now - e.confirmed.Load()
	if age < int64(t.cfg.reachable) {
		return e.mac, true, false
	}
	if age >= int64(t.cfg.reachable+t.cfg.probeWindow) {
		return MAC{}, false, false
	}
	last := e.probed.Load()
	if now-last >= int64(t.cfg.retry) && e.probed.CompareAndSwap(last, now) {
		probe = true
	}
	return e.mac, true, probe
}

// enqueue holds pkt (copied by the caller into a buffer the table now owns)
// until ip resolves. request is true when the caller should send an ARP
// request now (the first packet for ip). When the queue is full the packet is
// refused: ok false, and the caller keeps its buffer.
func (t *neighTable) enqueue(ip netip.Addr, pkt []byte, now int64) (request, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := ip.As4()
	p := t.pending[k]
	if p == nil {
		p = &neighPending{lastReq: now, tries: 1}
		t.pending[k] = p
		request = true
		t.notify()
	}
	if len(p.queue) >= t.cfg.queueLen {
		return request, false
	}
	p.queue = append(p.queue, pkt)
	return request, true
}

// learn records that ip is at mac, as allowed by mode (RFC 826 merge:
// learnUpdate only refreshes a known or awaited host). It returns the packets
// queued for ip, now sendable.
func (t *neighTable) learn(ip netip.Addr, mac MAC, mode learnMode, now int64) [][]byte {
	if mode == learnNone {
		return nil
	}
	k := ip.As4()
	if e := (*t.resolved.Load())[k]; e != nil && e.mac == mac {
		e.confirmed.Store(now)
		if !t.hasPending(k) {
			return nil
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.resolved.Load()
	p := t.pending[k]
	if e := old[k]; e == nil && p == nil && mode != learnCreate {
		return nil
	} else if e == nil || e.mac != mac {
		n := make(map[[4]byte]*neighEntry, len(old)+1)
		for a, x := range old {
			n[a] = x
		}
		ne := &neighEntry{mac: mac}
		ne.confirmed.Store(now)
		ne.probed.Store(now)
		n[k] = ne
		t.resolved.Store(&n)
		t.notify()
	}
	if p == nil {
		return nil
	}
	delete(t.pending, k)
	return p.queue
}

// notify tells the timer that tick has new work (see wake).
func (t *neighTable) notify() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *neighTable) hasPending(k [4]byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending[k] != nil
}

// tick runs the table's timers: it returns the hosts to send an ARP request
// for now, and the queued packets of hosts that never answered (the caller
// counts them as DropNeighUnresolved and recycles their buffers). Entries
// past their probe window are forgotten.
func (t *neighTable) tick(now int64) (requests []netip.Addr, failed [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, p := range t.pending {
		if now-p.lastReq < int64(t.cfg.retry) {
			continue
		}
		if p.tries >= t.cfg.tries {
			failed = append(failed, p.queue...)
			delete(t.pending, k)
			continue
		}
		p.tries++
		p.lastReq = now
		requests = append(requests, netip.AddrFrom4(k))
	}
	old := *t.resolved.Load()
	var expired int
	for _, e := range old {
		if now-e.confirmed.Load() >= int64(t.cfg.reachable+t.cfg.probeWindow) {
			expired++
		}
	}
	if expired > 0 {
		n := make(map[[4]byte]*neighEntry, len(old)-expired)
		for a, e := range old {
			if now-e.confirmed.Load() < int64(t.cfg.reachable+t.cfg.probeWindow) {
				n[a] = e
			}
		}
		t.resolved.Store(&n)
	}
	return requests, failed
}

// nextAt returns when tick next has work, never before now: the next retry
// or failure of a pending resolution, or the expiry of a resolved entry. The
// data path refreshes confirmations without telling the timer, so the moment
// may come early (tick then finds nothing and the caller asks again); it is
// never late. ok is false when the table is empty.
func (t *neighTable) nextAt(now int64) (at int64, ok bool) {
	at = math.MaxInt64
	t.mu.Lock()
	for _, p := range t.pending {
		at, ok = min(at, p.lastReq+int64(t.cfg.retry)), true
	}
	t.mu.Unlock()
	life := int64(t.cfg.reachable + t.cfg.probeWindow)
	for _, e := range *t.resolved.Load() {
		at, ok = min(at, e.confirmed.Load()+life), true
	}
	if !ok {
		return 0, false
	}
	return max(at, now), true
}

// NeighborEntry is one resolved host in a link's ARP cache (Stats).
type NeighborEntry struct {
	IP  netip.Addr
	MAC string
	Age time.Duration // since the last confirmation
}

func (t *neighTable) snapshot(now int64) []NeighborEntry {
	var out []NeighborEntry
	for k, e := range *t.resolved.Load() {
		out = append(out, NeighborEntry{IP: netip.AddrFrom4(k), MAC: e.mac.String(), Age: time.Duration(now - e.confirmed.Load())})
	}
	return out
}
