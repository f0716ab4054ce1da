package router

import (
	"net/netip"
	"testing"
)

// TestBoundedTableEvictsLRU fills a one-bucket table and checks that a new
// key replaces the least recently used entry, that a refreshed entry
// survives, and that the table never holds more than its slots.
func TestBoundedTableEvictsLRU(t *testing.T) {
	tb := newBoundedTable[[4]byte, int](boundedWays) // one bucket
	put := func(k byte, used int64) {
		e := &boundedEntry[[4]byte, int]{key: [4]byte{k}, val: int(k)}
		e.used.Store(used)
		tb.put(e)
	}
	for k := range byte(boundedWays) {
		put(k, int64(k)+1)
	}
	tb.get([4]byte{0}).used.Store(100) // key 0 is used again: key 1 is now the oldest
	put(200, 101)
	if tb.get([4]byte{1}) != nil || tb.get([4]byte{0}) == nil || tb.get([4]byte{200}) == nil {
		t.Fatalf("after a put into a full bucket: key 1 (least recently used) %v, key 0 (refreshed) %v, key 200 (new) %v; want evicted, kept, present",
			tb.get([4]byte{1}) != nil, tb.get([4]byte{0}) != nil, tb.get([4]byte{200}) != nil)
	}
	if tb.len() != boundedWays || tb.evicted.Load() != 1 {
		t.Fatalf("len %d evicted %d, want %d and 1", tb.len(), tb.evicted.Load(), boundedWays)
	}
	put(0, 102) // same key: replaced in place, nothing evicted
	if tb.len() != boundedWays || tb.evicted.Load() != 1 || tb.get([4]byte{0}).used.Load() != 102 {
		t.Fatalf("replacing a key: len %d evicted %d", tb.len(), tb.evicted.Load())
	}
	tb.remove(tb.get([4]byte{0}))
	if tb.len() != boundedWays-1 || tb.get([4]byte{0}) != nil {
		t.Fatalf("after remove: len %d, key 0 present %v", tb.len(), tb.get([4]byte{0}) != nil)
	}
	n := 0
	for range tb.all() {
		n++
	}
	if n != tb.len() {
		t.Fatalf("all yields %d entries, len says %d", n, tb.len())
	}
}

// TestBoundedTableNeverExceedsCap puts many more keys than slots.
func TestBoundedTableNeverExceedsCap(t *testing.T) {
	tb := newBoundedTable[[4]byte, struct{}](100)
	if tb.cap() != 104 {
		t.Fatalf("cap %d, want 100 rounded up to a multiple of %d = 104", tb.cap(), boundedWays)
	}
	for i := range 5000 {
		e := &boundedEntry[[4]byte, struct{}]{key: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).As4()}
		e.used.Store(int64(i))
		tb.put(e)
		if tb.len() > tb.cap() {
			t.Fatalf("after %d keys: len %d > cap %d", i+1, tb.len(), tb.cap())
		}
	}
	if tb.len() < tb.cap()*9/10 || tb.evicted.Load() != uint64(5000-tb.len()) {
		t.Fatalf("len %d of %d, evicted %d: want nearly full and every other key evicted", tb.len(), tb.cap(), tb.evicted.Load())
	}
}
