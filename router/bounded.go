package router

import (
	"hash/maphash"
	"iter"
	"math"
	"sync"
	"sync/atomic"
)

// boundedWays is the number of slots per bucket of a boundedTable.
const boundedWays = 8

// boundedTable is a fixed-size, set-associative hash table for the router's
// tables that any host on a subnet can grow (the sender MACs of load
// attribution, the ARP cache): bounded memory and O(1) work per operation,
// whatever the number of keys a sender makes up. A key lives in one bucket of
// boundedWays slots, chosen by a keyed hash (maphash, seeded per table), so a
// sender cannot aim its keys at one bucket to push out a victim. It replaces
// copy-on-write maps that copied themselves on every new key: 8,000 random
// MACs cost 259 µs per frame.
//
// A new key that finds its bucket full evicts the entry of that bucket used
// least recently (LRU within the bucket, by the entry's used stamp). The
// tables it serves have no other bound on what a flood leaves behind, so
// refusing new keys would lock real hosts out until restart (attribution) or
// until expiry (ARP cache); evicting lets them back in at their next ARP.
//
// Lookups are lock-free: slots hold pointers to entries whose key and value
// never change after put (only atomics inside them do); writers serialize on
// mu. An entry removed or evicted may still be used by a reader that loaded
// it just before: harmless for a counter or a MAC that was valid a moment
// ago.
type boundedTable[K comparable, V any] struct {
	seed    maphash.Seed
	buckets uint64
	slots   []atomic.Pointer[boundedEntry[K, V]] // buckets × boundedWays
	evicted atomic.Uint64                        // entries pushed out by a new key

	mu sync.Mutex // writers
	n  int        // occupied slots
}

// boundedEntry is one key with its value. The value may hold atomics: an
// entry is allocated once and never copied.
type boundedEntry[K comparable, V any] struct {
	key  K
	used atomic.Int64 // last use, ns: the LRU order within a bucket
	val  V
}

// newBoundedTable returns a table of at least n slots (n rounded up to a
// multiple of boundedWays).
func newBoundedTable[K comparable, V any](n int) *boundedTable[K, V] {
	b := max(1, (n+boundedWays-1)/boundedWays)
	return &boundedTable[K, V]{seed: maphash.MakeSeed(), buckets: uint64(b), slots: make([]atomic.Pointer[boundedEntry[K, V]], b*boundedWays)}
}

// bucket returns the slots k may live in.
func (t *boundedTable[K, V]) bucket(k K) []atomic.Pointer[boundedEntry[K, V]] {
	i := maphash.Comparable(t.seed, k) % t.buckets
	return t.slots[i*boundedWays : (i+1)*boundedWays : (i+1)*boundedWays]
}

// get returns k's entry or nil, without locking or allocating.
func (t *boundedTable[K, V]) get(k K) *boundedEntry[K, V] {
	b := t.bucket(k)
	for i := range b {
		if e := b[i].Load(); e != nil && e.key == k {
			return e
		}
	}
	return nil
}

// put stores e, replacing the entry of the same key, or taking an empty slot
// of its bucket, or else evicting the bucket's least recently used entry.
func (t *boundedTable[K, V]) put(e *boundedEntry[K, V]) {
	b := t.bucket(e.key)
	t.mu.Lock()
	defer t.mu.Unlock()
	victim, oldest := -1, int64(math.MaxInt64)
	for i := range b {
		x := b[i].Load()
		switch {
		case x == nil:
			if victim < 0 || b[victim].Load() != nil {
				victim, oldest = i, math.MinInt64
			}
		case x.key == e.key:
			b[i].Store(e)
			return
		case x.used.Load() < oldest:
			victim, oldest = i, x.used.Load()
		}
	}
	if b[victim].Load() == nil {
		t.n++
	} else {
		t.evicted.Add(1)
	}
	b[victim].Store(e)
}

// remove deletes e if it is still in the table.
func (t *boundedTable[K, V]) remove(e *boundedEntry[K, V]) {
	b := t.bucket(e.key)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range b {
		if b[i].CompareAndSwap(e, nil) {
			t.n--
			return
		}
	}
}

// all yields every entry (a concurrent put or remove may or may not be seen).
func (t *boundedTable[K, V]) all() iter.Seq[*boundedEntry[K, V]] {
	return func(yield func(*boundedEntry[K, V]) bool) {
		for i := range t.slots {
			if e := t.slots[i].Load(); e != nil && !yield(e) {
				return
			}
		}
	}
}

// len returns the number of entries.
func (t *boundedTable[K, V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// cap returns the number of slots: the most entries the table holds.
func (t *boundedTable[K, V]) cap() int { return len(t.slots) }

// attribTable maps the sender MACs seen on one link to the counters of the
// VIP each uses as its gateway (the VIP it ARPed for), so forwarded packets
// are counted on that VIP for load balancing, and to the address the
// sender gave in that request (GatewayHosts: a reload's --drop-flows). used
// is the sender's last ARP request. Bounded (Config.AttribMACs): a flood of
// made-up MACs evicts (boundedTable); attribution only feeds load
// statistics and a best-effort flow purge, so a flood costs accuracy,
// never connectivity.
type attribTable = boundedTable[MAC, attrib]

// attrib is one sender's gateway: the VIP's counters and the sender's
// address in its request.
type attrib struct {
	c    *vipCounters
	host [4]byte
}

func newAttribTable(n int) *attribTable { return newBoundedTable[MAC, attrib](n) }

// lookupAttrib returns the counters of the VIP mac uses as its gateway, or
// nil. Once per forwarded frame: no lock, no allocation.
func lookupAttrib(t *attribTable, mac MAC) *vipCounters {
	if e := t.get(mac); e != nil {
		return e.val.c
	}
	return nil
}

// setAttrib records that mac, with address host, uses the VIP counted by
// c, at now (ns).
func setAttrib(t *attribTable, mac MAC, c *vipCounters, host [4]byte, now int64) {
	a := attrib{c: c, host: host}
	if e := t.get(mac); e != nil && e.val == a {
		e.used.Store(now) // the common case: a host re-confirming its gateway
		return
	}
	e := &boundedEntry[MAC, attrib]{key: mac, val: a}
	e.used.Store(now)
	t.put(e)
}
