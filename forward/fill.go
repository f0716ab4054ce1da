package forward

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The fill (issue 12: "a node that joins fills its rows before it
// becomes authoritative for any"). A node that starts, restarts or comes
// back to the ring after it was out of it holds none of the replicas of
// the rows it will own. The node calls StartFill; until the fill is done,
// Filling reports true, the node's ring holder leaves it out of the
// token's set of filled nodes (ringstate carriage kind 7), and every
// member builds the flow directory with it ranked after the filled
// members (NewFillingDirectory): it is authoritative for no row while a
// filled member exists.
//
// The filling node asks every other member of its directory for a copy
// (a fill request: a control record in a sync batch, so it is sequenced,
// acknowledged and resent like any record). Each member asked walks, in
// the sync goroutine and a shard at a time, its replica store and its own
// flow table, and queues for the asker every replica (as a bulk record)
// and every flow it handles whose row the asker will own, as
// authoritative node or standby, once filled (Directory.TargetOwners);
// it walks on only while the asker's queue has room. When the walk is
// over and every record it queued has been acknowledged, it sends a fill
// done. Meanwhile handlers send each change to the rows' future owners
// too (replicasOf), so nothing changed behind the walk is missed. The
// fill is done when every other member has answered done, or at
// Config.FillTimeout (DefaultFillTimeout) from its start, whichever comes
// first; a fill that ended at the timeout is counted (FillStats.Timeouts)
// and the node logs it. A node alone in its directory waits for the
// timeout too, for members may yet join it (a restarted node forms a ring
// of its own before it merges), and ends it without counting it.

// DefaultFillTimeout is how long a fill waits for the other members'
// copies before the node counts as filled anyway.
const DefaultFillTimeout = 5 * time.Second

// fillPerStep bounds the records one SyncMessages call queues for one
// asker (it walks whole shards, so it may go over by one shard's worth):
// the sync goroutine also sends everything else.
const fillPerStep = 2048

// FillStats are the fill's state and counters.
type FillStats struct {
	Filling  bool   // this node's fill runs (StartFill, not done yet)
	Waiting  int    // members whose fill done has not come yet (while filling)
	Started  int64  // when the running or last fill started (filter clock); 0 not yet: not a member of a directory
	Finished int64  // when the last fill ended (filter clock); 0 never
	Took     int64  // ns the last fill took
	TimedOut bool   // the last fill ended at the timeout, with members still to answer
	Fills    uint64 // fills ended
	Timeouts uint64 // fills ended at the timeout with members still to answer
	Serving  int    // other nodes' fills this node is walking for or waiting acks of
	Served   uint64 // other nodes' fills answered done
}

// fills is a node's own fill and the fills it serves.
type fills struct {
	filling  atomic.Bool // Filling; written under mu
	mu       sync.Mutex
	timeout  int64
	id       uint64          // the running fill's id: in its requests, echoed by the dones
	gen      uint32          // directory generation the requests were queued under
	start    int64           // when it started (valid with started)
	started  bool            // false until this node is a member of a directory
	asked    map[uint16]bool // members a request was queued to (under gen)
	done     map[uint16]bool // members that answered done
	waiting  int
	last     FillStats // Finished, Took, TimedOut of the last fill
	serve    map[uint16]*serving
	served   uint64
	fills    uint64
	timeouts uint64
}

// serving is the walk for one asker's fill.
type serving struct {
	id    uint64
	pos   int // next shard: replica store 0..numShards-1, flow table numShards..2*numShards-1
	done  bool
	asked int64 // when the request came
}

// StartFill begins this node's fill, or begins it again (the node calls
// it at start and when it finds itself out of the ring): Filling reports
// true until every other member of the directory has sent it a copy of
// the rows it will own, or FillTimeout has passed since it became a
// member of a directory. Without Config.Self, or with NoReplication
// (nobody holds replicas to copy), it does nothing.
func (f *Filter) StartFill() {
	s := f.sym
	if s == nil || s.noRepl {
		return
	}
	fl := &s.fill
	fl.mu.Lock()
	fl.id = rand.Uint64() | 1
	fl.start, fl.started, fl.gen = 0, false, 0
	fl.asked, fl.done = map[uint16]bool{}, map[uint16]bool{}
	fl.filling.Store(true)
	fl.mu.Unlock()
	s.repl.signal()
}

// Filling reports whether this node's fill runs: the node is not to be
// authoritative for any row yet (the ring holder reads it at every turn).
// It does not block.
func (f *Filter) Filling() bool {
	return f.sym != nil && f.sym.fill.filling.Load()
}

// fillStep advances this node's fill and the fills it serves at now (the
// sync goroutine: SyncMessages). It returns when the running fill times
// out (0: no fill runs).
func (f *Filter) fillStep(now int64) (deadline int64) {
	s := f.sym
	fl := &s.fill
	d := s.dir.Load()
	type walk struct {
		peer uint16
		sv   serving
	}
	var walks []walk
	fl.mu.Lock()
	if fl.filling.Load() && d.isMember(s.self) {
		if !fl.started {
			fl.start, fl.started = now, true
		}
		if g := s.gen.Load(); g != fl.gen {
			clear(fl.asked) // a peer that left and came back lost the request
			fl.gen = g
		}
		fl.waiting = 0
		for _, m := range d.members {
			if m == s.self || fl.done[m] {
				continue
			}
			fl.waiting++
			if !fl.asked[m] {
				fl.asked[m] = true
				s.repl.queueCtl(m, SyncRecord{Fill: FillRequest, FillID: fl.id, Handler: s.self})
			}
		}
		others := len(d.members) > 1
		switch {
		case others && fl.waiting == 0:
			fl.finish(now, false)
		case now-fl.start >= fl.timeout:
			fl.finish(now, fl.waiting > 0)
		default:
			deadline = fl.start + fl.timeout
		}
	}
	for p, sv := range fl.serve {
		switch {
		case sv.done:
		case d.isMember(p): // the directory must rank it to tell its rows
			walks = append(walks, walk{p, *sv})
		case now-sv.asked > 2*fl.timeout:
			delete(fl.serve, p) // it never became a member here: its fill has ended anyway
		}
	}
	fl.mu.Unlock()
	for _, w := range walks {
		sv := w.sv
		for n := 0; n < fillPerStep && sv.pos < 2*numShards && s.repl.fillRoom(w.peer); sv.pos++ {
			n += f.fillShard(w.peer, sv.pos, d, now)
		}
		if sv.pos == 2*numShards && s.repl.fillAcked(w.peer) {
			s.repl.queueCtl(w.peer, SyncRecord{Fill: FillDone, FillID: sv.id, Handler: s.self})
			sv.done = true
		} else if sv.pos < 2*numShards && s.repl.fillRoom(w.peer) {
			s.repl.signal() // more to walk: come back at once
		}
		fl.mu.Lock()
		if cur := fl.serve[w.peer]; cur != nil && cur.id == sv.id {
			*cur = sv
			if sv.done {
				fl.served++
			}
		}
		fl.mu.Unlock()
	}
	return deadline
}

// finish ends the running fill at now. The caller holds fl.mu.
func (fl *fills) finish(now int64, timedOut bool) {
	fl.filling.Store(false)
	fl.last = FillStats{Started: fl.start, Finished: now, Took: now - fl.start, TimedOut: timedOut}
	fl.fills++
	if timedOut {
		fl.timeouts++
	}
}

// fillShard queues for peer the records of shard pos of the walk (the
// replica store's shards, then the flow table's) whose rows peer will own
// once filled (d.TargetOwners), and returns how many. It holds one
// shard's lock while it looks and none while it queues.
func (f *Filter) fillShard(peer uint16, pos int, d *Directory, now int64) int {
	s := f.sym
	var recs []pendingRec
	ranks := func(k Key) bool {
		a, st := d.TargetOwners(d.Row(k))
		return a == peer || st == peer
	}
	if pos < numShards {
		sh := &s.replicas.shards[pos]
		sh.mu.Lock()
		for k, r := range sh.m {
			if now < r.expires && ranks(k) {
				recs = append(recs, pendingRec{rec: SyncRecord{Flow: k, State: r.state, OrigIsA: r.flags&entryOrigIsA != 0,
					FinOrig: r.flags&entryFinOrig != 0, Handler: r.handler, Rule: r.rule, Bulk: true}, expires: r.expires})
			}
		}
		sh.mu.Unlock()
	} else {
		sh := &f.tab.shards[pos-numShards]
		sh.mu.Lock()
		for i := range sh.slab {
			e := &sh.slab[i]
			if e.flags&entryUsed != 0 && e.state != StateNone && now < e.expires && ranks(e.key) {
				recs = append(recs, pendingRec{rec: s.recordOf(e), expires: e.expires})
			}
		}
		sh.mu.Unlock()
	}
	for i := range recs {
		s.repl.queueRec(peer, &recs[i].rec, recs[i].expires, now, true)
	}
	s.bulkSent.Add(uint64(len(recs)))
	return len(recs)
}

// fillControl takes a fill request or done from node from at now.
func (s *symmetric) fillControl(from uint16, rec *SyncRecord, now int64) {
	fl := &s.fill
	fl.mu.Lock()
	switch rec.Fill {
	case FillRequest:
		if sv := fl.serve[from]; sv == nil || sv.id != rec.FillID { // a resent request is the same fill
			if fl.serve == nil {
				fl.serve = map[uint16]*serving{}
			}
			fl.serve[from] = &serving{id: rec.FillID, asked: now}
		}
	case FillDone:
		if fl.filling.Load() && rec.FillID == fl.id {
			fl.done[from] = true
		}
	}
	fl.mu.Unlock()
	s.repl.signal()
}

// peerRestarted forgets that peer was asked for this node's fill: its
// new boot does not know the request.
func (s *symmetric) fillPeerRestarted(peer uint16) {
	s.fill.mu.Lock()
	delete(s.fill.asked, peer)
	delete(s.fill.serve, peer) // it asks again itself, with a new id
	s.fill.mu.Unlock()
}

func (s *symmetric) fillStats() FillStats {
	fl := &s.fill
	fl.mu.Lock()
	defer fl.mu.Unlock()
	st := fl.last
	st.Filling = fl.filling.Load()
	if st.Filling {
		st.Started, st.Waiting = fl.start, fl.waiting
	}
	st.Fills, st.Timeouts, st.Served = fl.fills, fl.timeouts, fl.served
	for _, sv := range fl.serve {
		if !sv.done {
			st.Serving++
		}
	}
	return st
}
