package forward

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State replication (issue 12; DESIGN.md "Replication"; conntrackd's FTFW
// and pfsync). The handler of a flow sends every change of the flow's
// state (created, each TCP or UDP state change, gone) and a refresh now
// and then (refresh in symmetric.go) to the flow's authoritative node and
// its standby (Directory.Lookup), leaving out itself. They keep the last
// state in a bounded replica store; when the handler dies, the flow's
// authoritative node adopts the flow from it (adopt.go), and when the
// authoritative node dies, its standby, which becomes authoritative, has
// it already.
//
// Per receiving peer the sender keeps:
//   - pending: the records not sent yet, one per flow (a newer change of a
//     flow replaces the one waiting: updates collapse);
//   - a window of batches in flight, each under a sequence number (from 1,
//     per boot), resent after Config.SyncResend, then after twice as
//     long each time (up to 64 times), until acknowledged; a
//     batch that is not full waits until nothing is in flight (Nagle's
//     rule, messages).
//
// Every record is the flow's whole state, not a delta, so batches may be
// applied in any order: a receiver keeps, per flow, the record of the
// highest sequence number from the same sender and boot, and takes any
// record from another sender (a new handler after an adoption). A resent
// batch is applied again harmlessly and acknowledged again.
//
// Bounds: pending records (all peers together) Config.MaxSyncQueue, the
// window Config.SyncWindow batches per peer, the replica store
// Config.MaxReplicas flows; beyond them a change or a replica is refused
// and counted (ReplStats.Overflow, ReplicaRefused), and the node logs it.
// A peer that leaves the directory loses its pending records and window.
//
// All of it is pure: the filter queues changes under its shard locks,
// the tunnel driver takes the datagrams to send (SyncMessages) and hands
// over what it received (StepSync); time comes in as now.

// Replication defaults.
const (
	// DefaultSyncQueue bounds the records waiting to be sent.
	DefaultSyncQueue = 1 << 16
	// DefaultSyncWindow bounds the batches in flight to one peer.
	DefaultSyncWindow = 64
	// DefaultSyncResend is how long a batch waits for its ack before it
	// is sent again; a round trip between nodes of a LAN is well under
	// a millisecond.
	DefaultSyncResend = 20 * time.Millisecond
	// lagBuckets is the number of replication lag histogram buckets.
	lagBuckets = len(LagBoundsUs) + 1
)

// LagBoundsUs are the upper bounds (µs, exclusive) of the replication lag
// histogram's buckets (ReplStats.Lag) but the last, which counts
// everything longer: 50 µs steps up to 1 ms, where the target lies (a
// power-of-two histogram could only say "between 1 and 2 ms"), then
// coarser.
var LagBoundsUs = [...]uint32{50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000,
	1250, 1500, 1750, 2000, 3000, 4000, 8000, 16000, 32000, 64000}

// lagBucket is the bucket of a lag of us µs.
func lagBucket(us int64) int {
	i, found := slices.BinarySearch(LagBoundsUs[:], uint32(min(us, 1<<32-1)))
	if found {
		i++ // bounds are exclusive
	}
	return i
}

// ReplStats are replication's counters and gauges.
type ReplStats struct {
	Queued    int    // records waiting to be sent now, all peers
	InFlight  int    // batches sent and not yet acknowledged now, all peers
	Records   uint64 // records sent (first sending)
	Batches   uint64 // batches sent (first sending)
	Bytes     uint64 // payload bytes of sync batches and acks sent, resends included
	Resends   uint64 // batches sent again for want of an ack
	Collapsed uint64 // changes that replaced a change of the same flow still waiting
	Overflow  uint64 // changes refused: MaxSyncQueue records were waiting
	Acked     uint64 // batches acknowledged
	Dropped   uint64 // batches and records given up: their peer left the directory
	Malformed uint64 // sync datagrams received that do not decode
	Applied   uint64 // records received and stored
	Stale     uint64 // records received older than the one stored
	Replicas  int    // flows whose state this node holds for another node now
	Refused   uint64 // replicas refused at MaxReplicas
	Adoptions uint64 // flows this node took over from a handler that left (adopt.go)
	GivenBack uint64 // adopted flows given back to their handler, back in the membership with the same boot (adopt.go giveBack)
	Resyncs   uint64 // flows registered and replicated again by the walk after a directory change or for idleness
	BytesRcvd uint64 // payload bytes of sync batches and acks received
	// Resyncing says the walk after the last directory change has not
	// yet looked at every flow (adopt.go resyncSome); ResyncTook is how
	// long the last complete walk took (ns).
	Resyncing  bool
	ResyncTook int64
	BulkSent   uint64 // records queued by fills' walks for the nodes that asked (fill.go): replicas as bulk copies, and flows handled here
	BulkRcvd   uint64 // replicas received as bulk copies and stored
	Fill       FillStats
	// Lag counts acknowledged batches by the time from the oldest change
	// they carry being queued to their ack (the replica is stored before
	// the ack leaves): bucket i below LagBoundsUs[i] µs (and not below
	// the bound before), the last everything longer. LagSumUs is the sum
	// of those times, µs.
	Lag      [lagBuckets]uint64
	LagSumUs uint64
}

// SyncDatagram is one sync batch or ack to send: the payload of a tunnel
// datagram of Type to node To. Payload stays valid until the next call
// of SyncMessages.
type SyncDatagram struct {
	To      uint16
	Type    TunnelType // TypeSync or TypeSyncAck
	Payload []byte
}

// pendingRec is a record waiting to be sent: expires is absolute (the
// filter's clock), made relative when the batch is built.
type pendingRec struct {
	rec     SyncRecord
	expires int64
	queued  int64 // when the oldest change it carries was queued
	fill    bool  // queued by a fill's walk (fill.go): the fill is done when it is acknowledged
}

// flight is a batch sent and not yet acknowledged.
type flight struct {
	seq    uint64
	queued int64 // oldest change in it
	sent   int64
	tries  uint8  // resends so far
	buf    []byte // the payload, kept for resending
}

// maxBackoff caps the doubling of a batch's resend interval: 2^6 ×
// SyncResend (1.28 s at the default).
const maxBackoff = 6

// rto is how long batch f waits for its ack since it was last sent:
// SyncResend, doubled at every resend (as TCP's RTO, RFC 6298 5.5), so
// a loaded peer whose acks come late is not sent every batch again every
// SyncResend.
func (r *replicator) rto(f *flight) int64 { return r.resend << min(f.tries, maxBackoff) }

// syncPeer is the sending side towards one peer, and the acks owed to it.
type syncPeer struct {
	pending map[Key]pendingRec
	flights []*flight // in sequence order, at most window
	spare   []*flight
	next    uint64
	acks    []uint64 // sequence numbers received from it, to acknowledge
	// The fill (fill.go): control records waiting (at most one of each
	// kind), records of a fill's walk waiting, and the last batch that
	// carried one.
	ctl         []SyncRecord
	fillPending int
	fillLast    uint64
}

// replicator is the sending side of replication.
type replicator struct {
	self     uint16
	maxQueue int
	window   int
	resend   int64
	ready    chan struct{} // capacity 1: something to send
	mu       sync.Mutex
	peers    map[uint16]*syncPeer
	queued   int
	ackBuf   []byte
	// inlineAcks: the driver takes acks right after each batch it hands
	// over (TakeSyncAck), so owing one need not wake the sync goroutine.
	inlineAcks atomic.Bool

	records, batches, bytes, resends, collapsed, overflow, acked, dropped atomic.Uint64
	malformed, bytesRcvd                                                  atomic.Uint64
	lag                                                                   [lagBuckets]atomic.Uint64
	lagSum                                                                atomic.Uint64 // µs
}

func newReplicator(c Config) *replicator {
	return &replicator{self: c.Self, maxQueue: c.MaxSyncQueue, window: c.SyncWindow, resend: int64(c.SyncResend),
		ready: make(chan struct{}, 1), peers: map[uint16]*syncPeer{}}
}

func (r *replicator) peer(id uint16) *syncPeer {
	p := r.peers[id]
	if p == nil {
		p = &syncPeer{pending: map[Key]pendingRec{}, next: 1}
		r.peers[id] = p
	}
	return p
}

// queue queues rec (expiring at expires) for node to.
func (r *replicator) queue(to uint16, rec *SyncRecord, expires, now int64) {
	r.queueRec(to, rec, expires, now, false)
}

// queueRec queues rec for node to; fill says a fill's walk queued it
// (fill.go). A bulk copy never replaces a record waiting: that one is the
// handler's own, or as good.
func (r *replicator) queueRec(to uint16, rec *SyncRecord, expires, now int64, fill bool) {
	r.mu.Lock()
	p := r.peer(to)
	if old, ok := p.pending[rec.Flow]; ok {
		if rec.Bulk {
			r.mu.Unlock()
			return
		}
		if old.fill {
			p.fillPending-- // the newer record goes instead, whenever
		}
		p.pending[rec.Flow] = pendingRec{rec: *rec, expires: expires, queued: old.queued}
		r.mu.Unlock()
		r.collapsed.Add(1)
		return
	}
	if r.queued >= r.maxQueue {
		r.mu.Unlock()
		r.overflow.Add(1)
		return
	}
	p.pending[rec.Flow] = pendingRec{rec: *rec, expires: expires, queued: now, fill: fill}
	if fill {
		p.fillPending++
	}
	r.queued++
	// Wake the sync goroutine only when messages would send a batch to
	// p now (Nagle's rule there): while a batch is in flight the record
	// waits for its ack, which wakes it (ackedBy). Under load that is
	// most changes, each a wake-up for nothing before.
	due := r.sendable(p)
	r.mu.Unlock()
	if due {
		r.signal()
	}
}

// queueCtl queues a fill's control record for node to, replacing one of
// its kind still waiting.
func (r *replicator) queueCtl(to uint16, rec SyncRecord) {
	r.mu.Lock()
	p := r.peer(to)
	i := slices.IndexFunc(p.ctl, func(c SyncRecord) bool { return c.Fill == rec.Fill })
	if i >= 0 {
		p.ctl[i] = rec
	} else {
		p.ctl = append(p.ctl, rec)
	}
	r.mu.Unlock()
	r.signal()
}

// fillRoom reports whether a fill's walk may queue more records for node
// to: fewer than a window's worth wait for it and the queue is less than
// half full (a fill never crowds out the handlers' changes).
func (r *replicator) fillRoom(to uint16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[to]
	return r.queued < r.maxQueue/2 && (p == nil || len(p.pending) < r.window*MaxSyncRecords/2)
}

// fillAcked reports whether every record a fill's walk queued for node
// to has been acknowledged.
func (r *replicator) fillAcked(to uint16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[to]
	if p == nil {
		return true
	}
	if p.fillPending > 0 {
		return false
	}
	for _, f := range p.flights {
		if f.seq <= p.fillLast {
			return false
		}
	}
	return true
}

func (r *replicator) signal() {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// messages appends the datagrams due at now to dst: acks owed, batches
// whose ack is late, new batches while the window has room. next is when
// the first batch in flight is due again (0: none is in flight).
func (r *replicator) messages(now int64, dst []SyncDatagram) (out []SyncDatagram, next int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ackBuf = r.ackBuf[:0]
	for id, p := range r.peers {
		for len(p.acks) > 0 {
			start := len(r.ackBuf)
			r.ackBuf = r.appendAck(p, r.ackBuf)
			dst = append(dst, SyncDatagram{To: id, Type: TypeSyncAck, Payload: r.ackBuf[start:len(r.ackBuf):len(r.ackBuf)]})
		}
		for _, f := range p.flights {
			if now-f.sent >= r.rto(f) {
				f.sent = now
				f.tries++
				r.resends.Add(1)
				r.bytes.Add(uint64(len(f.buf)))
				dst = append(dst, SyncDatagram{To: id, Type: TypeSync, Payload: f.buf})
			}
		}
		// Nagle's rule (RFC 896) for batches: a batch that is not full
		// leaves only when nothing is in flight to the peer. The first
		// change after a quiet time goes at once; under load, changes
		// gather for one round trip and leave together, collapsed (a
		// handshake's three states become one record) and many to a
		// datagram.
		// A fill's control records go at once (window permitting).
		for r.sendable(p) {
			f := r.build(p, now)
			p.flights = append(p.flights, f)
			dst = append(dst, SyncDatagram{To: id, Type: TypeSync, Payload: f.buf})
		}
		for _, f := range p.flights {
			if due := f.sent + r.rto(f); next == 0 || due < next {
				next = due
			}
		}
	}
	return dst, next
}

// build takes up to MaxSyncRecords pending records of p into a new batch.
func (r *replicator) build(p *syncPeer, now int64) *flight {
	var f *flight
	if n := len(p.spare); n > 0 {
		f, p.spare = p.spare[n-1], p.spare[:n-1]
	} else {
		f = &flight{buf: make([]byte, 0, syncBatchHead+MaxSyncRecords*SyncRecordLen)}
	}
	f.seq, f.sent, f.queued, f.tries = p.next, now, now, 0
	p.next++
	b := f.buf[:syncBatchHead]
	binary.BigEndian.PutUint64(b, f.seq)
	b[10], b[11] = 0, 0
	n := 0
	for _, c := range p.ctl {
		b = b[:len(b)+SyncRecordLen]
		c.put(b[len(b)-SyncRecordLen:])
		n++
	}
	p.ctl = p.ctl[:0]
	for k, pr := range p.pending {
		if n == MaxSyncRecords {
			break
		}
		delete(p.pending, k)
		r.queued--
		if pr.fill {
			p.fillPending--
			p.fillLast = f.seq
		}
		rec := pr.rec
		if !rec.Gone {
			rec.Expires = uint32(min(max(0, pr.expires-now)/int64(time.Millisecond), 1<<32-1))
		}
		b = b[:len(b)+SyncRecordLen]
		rec.put(b[len(b)-SyncRecordLen:])
		f.queued = min(f.queued, pr.queued)
		n++
	}
	binary.BigEndian.PutUint16(b[8:], uint16(n))
	f.buf = b
	r.records.Add(uint64(n))
	r.batches.Add(1)
	r.bytes.Add(uint64(len(b)))
	return f
}

// acked removes the batches of seqs from peer from's window at now.
func (r *replicator) ackedBy(from uint16, seqs []uint64, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[from]
	if p == nil {
		return
	}
	for _, s := range seqs {
		for i, f := range p.flights {
			if f.seq != s {
				continue
			}
			us := max(0, now-f.queued) / 1000
			r.lag[lagBucket(us)].Add(1)
			r.lagSum.Add(uint64(us))
			r.acked.Add(1)
			copy(p.flights[i:], p.flights[i+1:])
			p.flights = p.flights[:len(p.flights)-1]
			p.spare = append(p.spare, f)
			break
		}
	}
	if len(p.pending) > 0 || len(seqs) > 0 && slices.Min(seqs) <= p.fillLast {
		r.signal() // what waited for the window (or for Nagle's rule), or a fill's done, may go now
	}
}

// owe notes that batch seq from peer from must be acknowledged. It wakes
// the sync goroutine unless the driver takes the acks on its receiving
// goroutine (takeAck).
func (r *replicator) owe(from uint16, seq uint64) {
	r.mu.Lock()
	p := r.peer(from)
	if len(p.acks) < 4*MaxSyncAcks { // an ack lost or refused is resent by the batch's resend
		p.acks = append(p.acks, seq)
	}
	r.mu.Unlock()
	if !r.inlineAcks.Load() {
		r.signal()
	}
}

// takeAck appends to b the wire form of an ack of up to MaxSyncAcks of
// the batches owed to peer, taking them off what messages would send.
func (r *replicator) takeAck(peer uint16, b []byte) []byte {
	r.inlineAcks.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[peer]
	if p == nil || len(p.acks) == 0 {
		return b
	}
	return r.appendAck(p, b)
}

// appendAck appends to b the wire form of an ack of up to MaxSyncAcks of
// the batches owed to p (at least one), taking them off p.acks. r.mu held.
func (r *replicator) appendAck(p *syncPeer, b []byte) []byte {
	n := min(len(p.acks), MaxSyncAcks)
	a := SyncAck{Seqs: p.acks[:n]}
	start := len(b)
	b, _ = a.AppendBinary(b) // cannot fail: 1..MaxSyncAcks numbers ≥ 1
	p.acks = p.acks[:copy(p.acks, p.acks[n:])]
	r.bytes.Add(uint64(len(b) - start))
	return b
}

// sendable reports whether messages would send p a new batch now:
// Nagle's rule (RFC 896) for batches, a fill's control records at once,
// and room in the window. queueRec wakes the sync goroutine only then.
// r.mu held.
func (r *replicator) sendable(p *syncPeer) bool {
	return len(p.pending)+len(p.ctl) > 0 && len(p.flights) < r.window &&
		(len(p.flights) == 0 || len(p.pending) >= MaxSyncRecords || len(p.ctl) > 0)
}

// retain forgets the peers that are not members (keep).
func (r *replicator) retain(keep func(uint16) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.peers {
		if keep(id) {
			continue
		}
		r.queued -= len(p.pending)
		r.dropped.Add(uint64(len(p.pending) + len(p.flights)))
		delete(r.peers, id)
	}
}

func (r *replicator) gauges() (queued, inFlight int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		inFlight += len(p.flights)
	}
	return r.queued, inFlight
}

// replica is one flow's state held for its handler.
type replica struct {
	handler uint16
	state   State
	flags   uint8 // entryOrigIsA, entryFinOrig
	rule    uint16
	sender  uint16
	boot    uint64
	seq     uint64
	expires int64
}

// replicaStore is the flows' state this node holds as their authoritative
// node or standby: bounded, expiring. It is split in numShards maps by
// the flow key's hash, each behind its own mutex, so that the fill's walk
// (fill.go) holds one shard's lock at a time, never the whole store's.
type replicaStore struct {
	shards                        [numShards]replicaShard
	n                             atomic.Int64 // replicas held, all shards
	max                           int
	applied, stale, refused, bulk atomic.Uint64
}

type replicaShard struct {
	mu   sync.Mutex
	m    map[Key]replica
	next int // sweep: the shard to look at first next time (shard 0's only)
}

func newReplicaStore(max int) *replicaStore {
	s := &replicaStore{max: max}
	for i := range s.shards {
		s.shards[i].m = map[Key]replica{}
	}
	return s
}

func (s *replicaStore) shard(k Key) *replicaShard { return &s.shards[k.hash()&(numShards-1)] }

// apply stores rec, received from sender (boot) in batch seq at now.
func (s *replicaStore) apply(rec *SyncRecord, sender uint16, boot, seq uint64, now int64) {
	sh := s.shard(rec.Flow)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old, ok := sh.m[rec.Flow]
	if ok && old.sender == sender && (boot < old.boot || boot == old.boot && seq < old.seq) || ok && rec.Bulk {
		s.stale.Add(1) // older, or a bulk copy of a flow known already
		return
	}
	if rec.Gone {
		if ok {
			s.drop(sh, rec.Flow)
		}
		s.applied.Add(1)
		return
	}
	if !ok {
		if s.n.Add(1) > int64(s.max) {
			s.n.Add(-1)
			s.refused.Add(1)
			return
		}
	}
	var fl uint8
	if rec.OrigIsA {
		fl |= entryOrigIsA
	}
	if rec.FinOrig {
		fl |= entryFinOrig
	}
	// The replica outlives the flow's timeout by a quarter of it and a
	// second: the handler refreshes it at least every quarter of the
	// timeout while the flow is active (refresh, symmetric.go), so it
	// never expires before the flow does at its handler.
	d := int64(rec.Expires) * int64(time.Millisecond)
	rp := replica{handler: rec.Handler, state: rec.State, flags: fl, rule: rec.Rule, sender: sender,
		boot: boot, seq: seq, expires: now + d + d/4 + int64(time.Second)}
	if rec.Bulk {
		rp.sender, rp.boot, rp.seq = 0, 0, 0 // any record from the handler replaces it
		s.bulk.Add(1)
	}
	sh.m[rec.Flow] = rp
	s.applied.Add(1)
}

func (s *replicaStore) get(k Key, now int64) (replica, bool) {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.m[k]
	if ok && now >= r.expires {
		s.drop(sh, k)
		return replica{}, false
	}
	return r, ok
}

func (s *replicaStore) del(k Key) {
	sh := s.shard(k)
	sh.mu.Lock()
	if _, ok := sh.m[k]; ok {
		s.drop(sh, k)
	}
	sh.mu.Unlock()
}

// drop removes k, held in shard sh, whose lock the caller holds, and
// counts it out.
func (s *replicaStore) drop(sh *replicaShard, k Key) {
	delete(sh.m, k)
	s.n.Add(-1)
}

// dropIf removes every replica whose key hit reports, a shard at a time.
func (s *replicaStore) dropIf(hit func(Key) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if hit(k) {
				s.drop(sh, k)
			}
		}
		sh.mu.Unlock()
	}
}

// sweep removes expired replicas, looking at up to budget of them in
// all, a shard at a time, starting where the last call stopped.
func (s *replicaStore) sweep(now int64, budget int) {
	first := &s.shards[0]
	first.mu.Lock()
	start := first.next
	first.next = (start + 1) % numShards
	first.mu.Unlock()
	per := max(1, budget/numShards)
	for j := range numShards {
		sh := &s.shards[(start+j)%numShards]
		sh.mu.Lock()
		n := per
		for k, r := range sh.m {
			if n--; n < 0 {
				break
			}
			if now >= r.expires {
				s.drop(sh, k)
			}
		}
		sh.mu.Unlock()
	}
}

func (s *replicaStore) len() int { return int(s.n.Load()) }

// recordOf returns e's state as a sync record from this node.
func (s *symmetric) recordOf(e *entry) SyncRecord {
	return SyncRecord{Flow: e.key, State: e.state, OrigIsA: e.flags&entryOrigIsA != 0,
		FinOrig: e.flags&entryFinOrig != 0, Handler: s.self, Rule: e.rule}
}

// replicate queues e's state for its flow's authoritative node and
// standby, leaving out this node. The caller holds e's shard lock.
func (s *symmetric) replicate(e *entry, now int64) {
	if e.state == StateNone || s.noRepl {
		return
	}
	rec := s.recordOf(e)
	for _, to := range s.replicasOf(e.key) {
		if to != 0 {
			s.repl.queue(to, &rec, e.expires, now)
		}
	}
}

// replicasOf returns the nodes that keep k's replicas: its row's
// authoritative node and standby, and while members fill (fill.go) the
// row's owners once they are filled too, so that a filling node misses no
// change made after its fill's walk passed; not this node, each once.
func (s *symmetric) replicasOf(k Key) [4]uint16 {
	d := s.dir.Load()
	row := d.Row(k)
	a, st := d.Owners(row)
	ta, ts := d.TargetOwners(row)
	out := [4]uint16{a, st, ta, ts}
	for i, n := range out {
		if n == s.self || slices.Contains(out[:i], n) {
			out[i] = 0
		}
	}
	return out
}

// gone queues the end of e's flow for the replicas at now. The caller
// holds e's shard lock (table.remove).
func (s *symmetric) gone(e *entry, now int64) {
	if e.flags&entryAdopted != 0 {
		s.bootMu.Lock()
		delete(s.adoptedFrom, e.key)
		s.bootMu.Unlock()
	}
	if e.state == StateNone || s.noRepl || e.flags&entryQuiet != 0 {
		return
	}
	rec := SyncRecord{Flow: e.key, Gone: true, Handler: s.self}
	for _, to := range s.replicasOf(e.key) {
		if to != 0 {
			s.repl.queue(to, &rec, 0, now)
		}
	}
}

// SyncMessages appends to dst the sync batches and acks due at now and
// returns it, with when the next resend is due (0: nothing is in
// flight). SyncReady signals earlier when there is something new. The
// payloads stay valid until the next call. Without Config.Self it returns
// dst and 0.
func (f *Filter) SyncMessages(now int64, dst []SyncDatagram) (out []SyncDatagram, next int64) {
	if f.sym == nil {
		return dst, 0
	}
	deadline := f.fillStep(now)
	if f.sym.resyncDue.Swap(false) {
		f.Resync(now) // a peer restarted (PeerBoot)
	}
	out, next = f.sym.repl.messages(now, dst)
	if deadline != 0 && (next == 0 || deadline < next) {
		next = deadline
	}
	return out, next
}

// TakeSyncAck appends to b the payload of a sync ack (TypeSyncAck) of
// the batches from peer that StepSync took and that are not yet
// acknowledged, up to MaxSyncAcks of them, and returns it (b unchanged:
// none owed). The tunnel driver calls it right after StepSync and sends
// the ack on its receiving goroutine: the sender's replication lag is
// then one round trip without a wake-up of this node's sync goroutine in
// it. Once it has been called, owing an ack no longer signals SyncReady;
// acks left over still go with SyncMessages.
func (f *Filter) TakeSyncAck(peer uint16, b []byte) []byte {
	if f.sym == nil {
		return b
	}
	return f.sym.repl.takeAck(peer, b)
}

// SyncReady receives a value when a change was queued or an ack is owed.
// nil (never ready) without Config.Self.
func (f *Filter) SyncReady() <-chan struct{} {
	if f.sym == nil {
		return nil
	}
	return f.sym.repl.ready
}

// StepSync takes a sync batch or sync ack that the tunnel brought (opened
// by an Opener: Sender and Boot are authentic) at now. A batch's records
// are stored and the batch acknowledged; a malformed payload is counted
// and dropped whole. It never panics on any payload.
func (f *Filter) StepSync(h TunnelHeader, payload []byte, now int64) {
	s := f.sym
	if s == nil || h.Sender == 0 || h.Sender == s.self {
		return
	}
	s.repl.bytesRcvd.Add(uint64(len(payload)))
	switch h.Type {
	case TypeSync:
		seq, n, err := syncBatchHeader(payload)
		if err != nil {
			s.repl.malformed.Add(1)
			return
		}
		for i := range n {
			var rec SyncRecord
			if rec.get(payload[syncBatchHead+i*SyncRecordLen:]) != nil {
				s.repl.malformed.Add(1)
				return // the records before it are applied: each stands alone
			}
			if rec.Handler != h.Sender && (!rec.Bulk || rec.Fill != 0) {
				s.repl.malformed.Add(1) // a node replicates only the flows it handles
				return
			}
			if rec.Fill != 0 {
				s.fillControl(h.Sender, &rec, now)
				continue
			}
			s.replicas.apply(&rec, h.Sender, h.Boot, seq, now)
			if rec.Gone {
				s.reg.del(rec.Flow, h.Sender)
			}
		}
		s.repl.owe(h.Sender, seq)
	case TypeSyncAck:
		var a SyncAck
		var seqs [MaxSyncAcks]uint64
		a.Seqs = seqs[:0]
		if a.UnmarshalBinary(payload) != nil {
			s.repl.malformed.Add(1)
			return
		}
		s.repl.ackedBy(h.Sender, a.Seqs, now)
	}
}

func (s *symmetric) replStats() ReplStats {
	r := s.repl
	q, fl := r.gauges()
	st := ReplStats{Queued: q, InFlight: fl, Records: r.records.Load(), Batches: r.batches.Load(), Bytes: r.bytes.Load(),
		Resends: r.resends.Load(), Collapsed: r.collapsed.Load(), Overflow: r.overflow.Load(), Acked: r.acked.Load(),
		Dropped: r.dropped.Load(), Malformed: r.malformed.Load(), Applied: s.replicas.applied.Load(),
		Stale: s.replicas.stale.Load(), Replicas: s.replicas.len(), Refused: s.replicas.refused.Load(),
		Adoptions: s.adoptions.Load(), Resyncs: s.resyncs.Load(), BytesRcvd: r.bytesRcvd.Load()}
	took := s.resyncTook.Load()
	st.Resyncing = took < 0 || s.resyncGen.Load() != s.gen.Load()
	st.ResyncTook = max(took, 0)
	st.BulkSent, st.BulkRcvd = s.bulkSent.Load(), s.replicas.bulk.Load()
	st.GivenBack = s.givenBack.Load()
	st.Fill = s.fillStats()
	for i := range st.Lag {
		st.Lag[i] = r.lag[i].Load()
	}
	st.LagSumUs = r.lagSum.Load()
	return st
}
