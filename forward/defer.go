package forward

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// First-packet deferral (pfsync's defer; issue 12). When this node starts
// a flow whose authoritative node is another node, the register and the
// flow's first packet leave together, and the first reply can reach the
// authoritative node before the register does: it has no handler to send
// the reply to and drops it (docs/forward.md measured 5 of 20 new UDP
// flows in one lab run). So Decide answers "hold" for that first packet:
// the router keeps a copy and forwards it when the authoritative node's
// ack (TypeAck) arrives, or after Config.Defer at most. The reply can then
// only be sent after the authoritative node knows the handler.
//
// The filter does not keep the packets, only tickets: a ticket names a
// held flow (a 64-bit hash of its key, never 0), so the ack, which carries
// the key, finds it without a table in the router. Released hands the
// router the tickets whose ack came or whose time is up.

const (
	// DefaultDefer is the longest a first packet is held by default
	// (config filter.defer). pfsync holds for at most 20 ms; an ack takes
	// one tunnel round trip, well under a millisecond on a LAN.
	DefaultDefer = 10 * time.Millisecond
	// MaxDeferred bounds the first packets held at once, with the tickets
	// released but not yet taken by the router. At the bound a new flow's
	// first packet is forwarded at once and counted (DeferStats.Overflow).
	MaxDeferred = 256
	// deferBuckets is the number of ack-latency histogram buckets.
	deferBuckets = 16
)

// DeferStats are the deferral's counters and gauge.
type DeferStats struct {
	Deferred        uint64 // first packets held for their register's ack
	ReleasedAck     uint64 // of those, released when the ack came
	ReleasedTimeout uint64 // of those, released when Config.Defer ran out
	Overflow        uint64 // first packets forwarded at once: MaxDeferred were held
	Held            int    // held now
	// AckLatency counts acks by how long their packet was held: bucket 0
	// under 1 µs, bucket i from 2^(i-1) to 2^i µs; the last also counts
	// everything longer.
	AckLatency [deferBuckets]uint64
}

// deferrals holds the tickets of held first packets. Safe for concurrent
// use: Decide holds, the tunnel driver acks, the router releases.
type deferrals struct {
	wait int64 // ns; 0: off
	mu   sync.Mutex
	held map[uint64]int64 // ticket → when held (ns)
	// acked are tickets released by their ack, waiting for Released.
	acked []uint64
	ready chan struct{} // capacity 1: a ticket was acked

	deferred, byAck, byTimeout, overflow atomic.Uint64
	latency                              [deferBuckets]atomic.Uint64
}

func newDeferrals(wait time.Duration) *deferrals {
	return &deferrals{wait: int64(wait), held: make(map[uint64]int64, MaxDeferred),
		acked: make([]uint64, 0, MaxDeferred), ready: make(chan struct{}, 1)}
}

// ticketOf returns the ticket of flow k: FNV-1a (64 bits) of its wire
// form, 0 made 1. Two held flows sharing a ticket (odds 2^-64 per pair)
// only release each other's packet early.
func ticketOf(k Key) uint64 {
	var b [keyLen]byte
	k.put(b[:])
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return max(h, 1)
}

// hold records that the first packet of flow k is held from now on and
// returns its ticket; 0 (forward at once) when deferral is off or at the
// bound (counted).
func (d *deferrals) hold(k Key, now int64) uint64 {
	if d.wait <= 0 {
		return 0
	}
	t := ticketOf(k)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.held[t]; ok {
		return 0 // already held (a duplicate ticket): this one goes at once
	}
	if len(d.held)+len(d.acked) >= MaxDeferred {
		d.overflow.Add(1)
		return 0
	}
	d.held[t] = now
	d.deferred.Add(1)
	return t
}

// ack releases the packet of flow k, if one is held, at now.
func (d *deferrals) ack(k Key, now int64) {
	t := ticketOf(k)
	d.mu.Lock()
	at, ok := d.held[t]
	if ok {
		delete(d.held, t)
		d.acked = append(d.acked, t) // cannot grow: held + acked ≤ MaxDeferred
	}
	d.mu.Unlock()
	if !ok {
		return // a refresh's ack, or one that came after the timeout
	}
	d.byAck.Add(1)
	us := max(0, now-at) / 1000
	d.latency[min(bits.Len64(uint64(us)), deferBuckets-1)].Add(1)
	select {
	case d.ready <- struct{}{}:
	default:
	}
}

// released appends to dst the tickets acked since the last call and those
// held since wait or longer at now, forgetting them; next is when the
// first still held runs out (0: none is held).
func (d *deferrals) released(now int64, dst []uint64) (out []uint64, next int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dst = append(dst, d.acked...)
	d.acked = d.acked[:0]
	for t, at := range d.held {
		switch end := at + d.wait; {
		case now >= end:
			delete(d.held, t)
			dst = append(dst, t)
			d.byTimeout.Add(1)
		case next == 0 || end < next:
			next = end
		}
	}
	return dst, next
}

func (d *deferrals) stats() DeferStats {
	d.mu.Lock()
	held := len(d.held)
	d.mu.Unlock()
	s := DeferStats{Deferred: d.deferred.Load(), ReleasedAck: d.byAck.Load(), ReleasedTimeout: d.byTimeout.Load(),
		Overflow: d.overflow.Load(), Held: held}
	for i := range s.AckLatency {
		s.AckLatency[i] = d.latency[i].Load()
	}
	return s
}

// Released appends to dst the tickets (from Decide's hold) whose packets
// the router must forward now, at now: their ack came, or Config.Defer
// ran out. next is when the next held packet runs out, 0 when none is
// held; DeferReady signals an ack earlier. Without Config.Self or
// Config.Defer it returns dst and 0.
func (f *Filter) Released(now int64, dst []uint64) (out []uint64, next int64) {
	if f.sym == nil {
		return dst, 0
	}
	return f.sym.defers.released(now, dst)
}

// DeferReady receives a value after an ack released a held packet. nil
// (never ready) without Config.Self.
func (f *Filter) DeferReady() <-chan struct{} {
	if f.sym == nil {
		return nil
	}
	return f.sym.defers.ready
}
