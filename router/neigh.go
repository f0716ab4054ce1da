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
	pendingMax  int           // unresolved next hops at once; 0: defaultNeighPending
	queueBytes  int           // bytes of queued packets across all next hops; 0: defaultNeighQueueBytes
	entries     int           // resolved hosts held; 0: defaultNeighEntries
}

// Defaults of the pending-resolution bounds (Config.NeighPending,
// Config.NeighQueueBytes).
const (
	defaultNeighPending    = 1024
	defaultNeighQueueBytes = 4 << 20
	defaultNeighEntries    = 8192
)

// neighTable is the ARP cache of one link. Lookups on the hot path are
// lock-free: resolved entries live in a boundedTable (fixed size, O(1) per
// new host, the least recently confirmed entry of a full bucket evicted), and
// a confirmation of an unchanged MAC only stores a timestamp. It was a
// copy-on-write map, which an ARP flood from made-up addresses turned into a
// copy per frame. Unresolved next hops and their small packet queues live
// under a mutex, capped in number and bytes; they are off the fast path by
// nature.
//
// Time is an argument (nanoseconds on a monotonic clock of the caller's
// choosing), so the table is deterministic under test.
type neighTable struct {
	cfg      neighConfig                        // reachable and queueLen: see reach and qlen
	resolved *boundedTable[[4]byte, neighEntry] // used: the last confirmation, ns

	// reach and qlen are cfg.reachable (ns) and cfg.queueLen as they are
	// now: a reload changes them (setTunables) while workers read them.
	reach, qlen atomic.Int64

	mu      sync.Mutex
	pending map[[4]byte]*neighPending
	queued  int // bytes held in pending queues

	// wake, when set, gets a non-blocking send whenever the table creates
	// work for tick (a new pending resolution, a new or changed entry), so a
	// timer sleeping until nextAt learns of the earlier deadline.
	wake chan<- struct{}
}

type neighEntry struct {
	mac    MAC          // immutable: a changed MAC makes a new entry
	probed atomic.Int64 // last probe sent, ns
}

type neighPending struct {
	lastReq int64
	tries   int
	queue   [][]byte
}

func newNeighTable(cfg neighConfig) *neighTable {
	if cfg.pendingMax <= 0 {
		cfg.pendingMax = defaultNeighPending
	}
	if cfg.queueBytes <= 0 {
		cfg.queueBytes = defaultNeighQueueBytes
	}
	if cfg.entries <= 0 {
		cfg.entries = defaultNeighEntries
	}
	t := &neighTable{cfg: cfg, pending: map[[4]byte]*neighPending{}, resolved: newBoundedTable[[4]byte, neighEntry](cfg.entries)}
	t.setTunables(cfg.reachable, cfg.queueLen)
	return t
}

// setTunables changes how long a resolved entry is used without question
// and how many packets wait per unresolved next hop (a reload). Entries
// keep their last confirmation time: a shorter reachable makes some stale
// (re-probed) at once; queues already longer than queueLen keep what they
// hold and take no more.
func (t *neighTable) setTunables(reachable time.Duration, queueLen int) {
	t.reach.Store(int64(reachable))
	t.qlen.Store(int64(queueLen))
	t.notify()
}

// lookup returns the MAC of ip. probe is true when the entry is stale and
// the caller should send one ARP request to re-confirm it (at most once per
// retry interval across all callers).
func (t *neighTable) lookup(ip netip.Addr, now int64) (mac MAC, ok, probe bool) {
	e := t.resolved.get(ip.As4())
	if e == nil {
		return MAC{}, false, false
	}
	age, reach := now-e.used.Load(), t.reach.Load()
	if age < reach {
		return e.val.mac, true, false
	}
	if age >= reach+int64(t.cfg.probeWindow) {
		return MAC{}, false, false
	}
	last := e.val.probed.Load()
	if now-last >= int64(t.cfg.retry) && e.val.probed.CompareAndSwap(last, now) {
		probe = true
	}
	return e.val.mac, true, probe
}

// enqueue holds a copy of pkt until ip resolves. request is true when the
// caller should send an ARP request now (the first packet for ip). A refused
// packet is not copied and reason says why: DropNeighPendingFull when ip
// would be a new resolution beyond pendingMax (refused, not evicted: a
// resolution ends by itself within tries × retry, so the table drains, and
// evicting would let a flood of made-up next hops cancel the real ones and
// drop their packets), DropNeighQueueFull when ip's queue or the table's
// byte budget is full. Both bounds keep what one host can make the router
// hold: 20,000 unresolved next hops on a /16 held 87 MiB before.
func (t *neighTable) enqueue(ip netip.Addr, pkt []byte, now int64) (request bool, reason DropReason) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := ip.As4()
	p := t.pending[k]
	if p == nil {
		if len(t.pending) >= t.cfg.pendingMax {
			return false, DropNeighPendingFull
		}
		p = &neighPending{lastReq: now, tries: 1}
		t.pending[k] = p
		request = true
		t.notify()
	}
	if int64(len(p.queue)) >= t.qlen.Load() || t.queued+len(pkt) > t.cfg.queueBytes {
		return request, DropNeighQueueFull
	}
	p.queue = append(p.queue, append([]byte(nil), pkt...))
	t.queued += len(pkt)
	return request, DropNone
}

// unqueue accounts for a pending queue leaving the table (t.mu held).
func (t *neighTable) unqueue(q [][]byte) {
	for _, b := range q {
		t.queued -= len(b)
	}
}

// pendingLen returns the number of unresolved next hops.
func (t *neighTable) pendingLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// learn records that ip is at mac, as allowed by mode (RFC 826 merge:
// learnUpdate only refreshes a known or awaited host). It returns the packets
// queued for ip, now sendable.
func (t *neighTable) learn(ip netip.Addr, mac MAC, mode learnMode, now int64) [][]byte {
	if mode == learnNone {
		return nil
	}
	k := ip.As4()
	if e := t.resolved.get(k); e != nil && e.val.mac == mac {
		e.used.Store(now)
		if !t.hasPending(k) {
			return nil
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[k]
	if e := t.resolved.get(k); e == nil && p == nil && mode != learnCreate {
		return nil
	} else if e == nil || e.val.mac != mac {
		ne := &boundedEntry[[4]byte, neighEntry]{key: k}
		ne.val.mac = mac
		ne.used.Store(now)
		ne.val.probed.Store(now)
		t.resolved.put(ne)
		t.notify()
	}
	if p == nil {
		return nil
	}
	delete(t.pending, k)
	t.unqueue(p.queue)
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
			t.unqueue(p.queue)
			delete(t.pending, k)
			continue
		}
		p.tries++
		p.lastReq = now
		requests = append(requests, netip.AddrFrom4(k))
	}
	for e := range t.resolved.all() {
		if now-e.used.Load() >= t.reach.Load()+int64(t.cfg.probeWindow) {
			t.resolved.remove(e)
		}
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
	life := t.reach.Load() + int64(t.cfg.probeWindow)
	for e := range t.resolved.all() {
		at, ok = min(at, e.used.Load()+life), true
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
	for e := range t.resolved.all() {
		out = append(out, NeighborEntry{IP: netip.AddrFrom4(e.key), MAC: e.val.mac.String(), Age: time.Duration(now - e.used.Load())})
	}
	return out
}

// resolvedLen returns the number of resolved hosts.
func (t *neighTable) resolvedLen() int { return t.resolved.len() }
