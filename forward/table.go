package forward

import (
	"sync"
	"sync/atomic"
)

// numShards splits the table so the router's workers rarely wait for each
// other; a power of two.
const numShards = 64

// entry is one tracked flow: 64 bytes, plus its slot in the shard's map
// (docs/forward.md measures the whole cost per flow).
type entry struct {
	key     Key
	state   State
	flags   uint8 // entryOrigIsA, entryFinOrig, entryUsed
	rule    uint16
	regGen  uint16 // symmetric routing: the directory generation the flow was last registered under (symmetric.go)
	regAt   uint32 // symmetric routing: when the flow was last registered (s on the filter's clock); regGen and regAt fill padding
	created int64  // ns
	expires int64  // ns
	pkts    [2]uint32
	bytes   [2]uint64 // [0] from the initiator, [1] from the responder
}

const (
	entryUsed    = 1 << iota // the slot holds a flow
	entryOrigIsA             // the initiator is the key's A side
	entryFinOrig             // the first FIN came from the initiator
	entryAdopted             // taken over from a handler that left (adopt.go)
	entryQuiet               // being removed without telling the replicas (adopt.go giveBack)
)

// shard is one lock's worth of the table: a map from key to slot in a
// slab of entries, and a free list of slots.
type shard struct {
	mu    sync.Mutex
	index map[Key]uint32
	slab  []entry
	free  []uint32
	sweep int // next slot Sweep looks at
}

// table is the connection table.
type table struct {
	shards  [numShards]shard
	count   atomic.Int64
	max     int64
	byState [numStates]atomic.Int64   // flows in each state (StateNone: just inserted)
	gone    func(e *entry, now int64) // called as a flow is removed (replication: replicate.go); may be nil
}

func newTable(max int) *table {
	t := &table{max: int64(max)}
	for i := range t.shards {
		t.shards[i].index = map[Key]uint32{}
	}
	return t
}

func (t *table) shard(k Key) *shard { return &t.shards[k.hash()&(numShards-1)] }

// lookup returns the live entry for k in s, or nil; an expired entry is
// removed. The caller holds s.mu.
func (t *table) lookup(s *shard, k Key, now int64) *entry {
	i, ok := s.index[k]
	if !ok {
		return nil
	}
	e := &s.slab[i]
	if now >= e.expires {
		t.remove(s, i, now)
		return nil
	}
	return e
}

// insert adds a flow for k, or returns nil when the table is full. The
// caller holds s.mu and has checked that k is absent.
func (t *table) insert(s *shard, k Key, now int64) *entry {
	if t.count.Add(1) > t.max {
		t.count.Add(-1)
		return nil
	}
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.slab = append(s.slab, entry{})
		i = uint32(len(s.slab) - 1)
	}
	s.index[k] = i
	e := &s.slab[i]
	*e = entry{key: k, flags: entryUsed, created: now}
	t.byState[StateNone].Add(1)
	return e
}

// setState moves e to state s, keeping the per-state counts.
func (t *table) setState(e *entry, s State) {
	if e.state != s {
		t.byState[e.state].Add(-1)
		t.byState[s].Add(1)
		e.state = s
	}
}

// remove frees slot i of s at now. The caller holds s.mu.
func (t *table) remove(s *shard, i uint32, now int64) {
	e := &s.slab[i]
	if t.gone != nil {
		t.gone(e, now)
	}
	delete(s.index, e.key)
	t.byState[e.state].Add(-1)
	*e = entry{}
	s.free = append(s.free, i)
	t.count.Add(-1)
}

// sweep removes expired entries among the next budget slots of every
// shard and reports how many it removed.
func (t *table) sweepSome(now int64, budget int) int {
	removed := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for n := 0; n < budget && len(s.slab) > 0; n++ {
			if s.sweep >= len(s.slab) {
				s.sweep = 0
			}
			e := &s.slab[s.sweep]
			if e.flags&entryUsed != 0 && now >= e.expires {
				t.remove(s, uint32(s.sweep), now)
				removed++
			}
			s.sweep++
		}
		s.mu.Unlock()
	}
	return removed
}
