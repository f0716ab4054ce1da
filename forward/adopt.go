package forward

import (
	"slices"
	"time"
)

// Adoption (issue 12; DESIGN.md "Fail-over"). When a flow's handler
// leaves the membership, the flow's packets keep arriving at the nodes
// that own the client's and the server's gateway VIPs now; those nodes
// have no state and send the packets to the flow's authoritative node, as
// they would any packet of a flow handled elsewhere (symmetric.go). The
// authoritative node holds the flow's replica (replicate.go): it adopts
// the flow there and then, entering the replica's state in its own table,
// and handles the flow from then on.
//
// Why the authoritative node adopts, not the node that received the
// packet (docs/forward.md "Adoption"):
//   - it already holds the state: adopting costs no request and no round
//     trip, so the first packet after the fail-over passes at once;
//   - there is exactly one of it per flow, so two receiving nodes (the
//     client's and the server's gateway, split owners) can never adopt the
//     same flow twice: every node agrees on the directory, and every
//     packet without state goes to the authoritative node anyway;
//   - its standby already holds the replica too, and the adopter's first
//     act is to replicate to its (possibly new) standby.
//
// The price: an adopted flow's packets that arrive elsewhere cross the
// tunnel once for the rest of the flow's life (one hop, as any redirected
// packet). The tracker is liberal (tcp.go): an adopted TCP flow passes
// every packet, in window or not, so a take-over never drops one, and
// nothing in ringway ever sends a RST.

// isMember reports whether node id is a member of d.
func (d *Directory) isMember(id uint16) bool {
	if d == nil {
		return false
	}
	_, ok := slices.BinarySearch(d.members, id)
	return ok
}

// adopt enters the state of flow k in the table when this node is k's
// authoritative node, holds k's replica, and k's handler (registered or
// replicated) is no longer a member; it returns the new entry, or nil.
// The caller holds k's shard lock (s) and found no entry.
func (f *Filter) adopt(s *shard, k Key, now int64) *entry {
	sym := f.sym
	d := sym.dir.Load()
	if a, _ := d.Lookup(k); a != sym.self {
		return nil
	}
	r, ok := sym.replicas.get(k, now)
	if !ok {
		return nil
	}
	// The handler is gone: left the membership, or restarted (a newer
	// boot than the one the replica came from), or it is this node in an
	// earlier life (a replica of its own flow can only come back as a
	// bulk copy: fill.go).
	if gone := r.handler == sym.self || !d.isMember(r.handler) ||
		r.sender == r.handler && sym.restarted(r.handler, r.boot); !gone {
		return nil
	}
	if h := sym.reg.get(k, now); h != 0 && h != r.handler && h != sym.self && d.isMember(h) {
		return nil // registered since by a live node: it handles the flow
	}
	e := f.tab.insert(s, k, now)
	if e == nil {
		return nil
	}
	f.tab.setState(e, r.state)
	e.flags |= r.flags&(entryOrigIsA|entryFinOrig) | entryAdopted
	if r.sender == r.handler && r.handler != sym.self {
		sym.bootMu.Lock()
		if len(sym.adoptedFrom) < sym.replicas.max {
			sym.adoptedFrom[k] = origin{r.handler, r.boot, now}
		}
		sym.bootMu.Unlock()
	}
	e.rule = r.rule
	e.expires = now + f.timeout[e.state]
	sym.replicas.del(k)
	sym.reg.put(k, sym.self, now+sym.regTTL)
	sym.adoptions.Add(1)
	sym.register(e, k, now) // notes the generation; this node is authoritative: nothing is sent
	sym.replicate(e, now)   // to the standby
	return e
}

// handlerOf returns the handler of flow k as this node knows it, as k's
// authoritative node: the registered one, else the one of its replica; 0
// when neither is known or the one known has left the membership.
func (s *symmetric) handlerOf(k Key, now int64) uint16 {
	h := s.reg.get(k, now)
	if h == 0 {
		if r, ok := s.replicas.get(k, now); ok {
			h = r.handler
		}
	}
	if h != 0 && h != s.self && !s.dir.Load().isMember(h) {
		return 0
	}
	return h
}

// resyncSome looks at up to budget slots of every shard of the table, in
// turn, and registers and replicates again each flow not registered
// under the current directory or due for a refresh, whether or not it
// carries packets: an idle flow's replicas follow a change of its rows'
// owners (a new authoritative node or standby after a join or a loss)
// and never expire before the flow (refresh). It reports how many it
// sent.
func (f *Filter) resyncSome(now int64, budget int) int {
	sym := f.sym
	sym.resyncMu.Lock()
	defer sym.resyncMu.Unlock()
	g := sym.gen.Load()
	if g != sym.resyncGen.Load() {
		// A new directory: a new pass over the whole table begins.
		slots := 0
		for i := range f.tab.shards {
			sh := &f.tab.shards[i]
			sh.mu.Lock()
			slots += len(sh.slab)
			sh.mu.Unlock()
		}
		sym.resyncLeft, sym.resyncStart = slots, now
		sym.resyncGen.Store(g)
		sym.resyncTook.Store(-1)
	}
	n, looked := 0, 0
	for i := range f.tab.shards {
		sh := &f.tab.shards[i]
		sh.mu.Lock()
		c := sym.resyncAt[i]
		for j := 0; j < budget && len(sh.slab) > 0; j++ {
			if c >= len(sh.slab) {
				c = 0
			}
			e := &sh.slab[c]
			c++
			looked++
			if e.flags&entryUsed == 0 || now >= e.expires {
				continue
			}
			if sym.refresh(e, e.key, now, f.timeout[e.state]) {
				n++
			}
		}
		sym.resyncAt[i] = c
		sh.mu.Unlock()
	}
	sym.resyncs.Add(uint64(n))
	if sym.resyncLeft -= looked; sym.resyncLeft <= 0 && sym.resyncTook.Load() < 0 {
		sym.resyncTook.Store(now - sym.resyncStart)
	}
	return n
}

// refreshDue reports whether e's register and replicas are due for a
// refresh at now: a quarter of the flow's timeout in its state, or of the
// registry's TTL, whichever is shorter, since the last, at least 1 s.
func (s *symmetric) refreshDue(e *entry, now, timeout int64) bool {
	every := min(s.refreshSec, uint32(max(1, timeout/4/int64(time.Second))))
	return uint32(now/int64(time.Second))-e.regAt >= every
}

// Resync registers and replicates again, at now, the flows handled here
// that the current directory has new owners for (or that are due for a
// refresh), looking at a bounded slice of the table (the budget Sweep
// uses); the node calls it right after SetDirectory so that the rows'
// new authoritative nodes and standbys learn the flows at once rather
// than at the next sweep. Sweep goes on with the rest.
func (f *Filter) Resync(now int64) {
	if f.sym == nil {
		return
	}
	f.resyncSome(now, max(256, int(f.tab.max/numShards/8)))
}

// PeerBoot tells the filter that node peer sent a tunnel datagram of boot
// (authentic: the tunnel driver calls it for every boot it opens a
// datagram of, before handing over the datagram). A newer boot than the
// one known means peer restarted and lost its state:
//   - the flows it handled are adopted by their authoritative nodes as if
//     it had left (a restart can be quicker than the ring's detection, or
//     than the flows' next packets: it comes back a member);
//   - the flows handled here are registered and replicated again, every
//     one (it may have been their authoritative node or standby), as after
//     a new directory: by the sync goroutine (SyncMessages), not by the
//     caller, which is the tunnel's receive goroutine.
//
// The restarted node asks for the replicas of its rows itself (its fill,
// fill.go).
func (f *Filter) PeerBoot(peer uint16, boot uint64, now int64) {
	s := f.sym
	if s == nil || peer == s.self {
		return
	}
	s.bootMu.Lock()
	old, known := s.boots[peer]
	if !known || boot > old {
		s.boots[peer] = boot
	}
	s.bootMu.Unlock()
	if !known || boot <= old {
		return // the first boot heard of (this node's own start) or nothing new
	}
	s.view.Store(&dirView{cur: s.dir.Load(), gen: s.gen.Add(1)}) // no prev: every flow is sent again
	s.fillPeerRestarted(peer)
	s.resyncDue.Store(true)
	s.repl.signal()
}

// restarted reports whether node h has a newer boot than boot (the one
// its replica came from).
func (s *symmetric) restarted(h uint16, boot uint64) bool {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	return s.boots[h] > boot
}

// origin is the handler an adopted flow was taken from, and its boot.
type origin struct {
	node uint16
	boot uint64
	at   int64 // when adopted
}

// flapWindow is how long after an adoption the flow may go back to its
// former handler: a node dropped from the ring for a moment is back
// within a second or two; one stopped for longer may have let the flow
// expire meanwhile, and the adopter keeps it.
const flapWindow = 10 * time.Second

// giveBack hands adopted flow k back to node h, which registered it
// again from boot: the node it was adopted from, with the same boot,
// within flapWindow of the adoption. That node was only dropped from the
// membership for a moment (a busy node's missed ring hops) and still has
// the flow: two handlers would each pass packets and replicate. Its
// register is the proof that it still has the flow (a restarted node,
// whose new boot may not have been heard yet when the membership
// changes back, registers only flows it has). The entry is removed
// without telling the replicas (the handler's records are right); the
// registry names h again (Step).
func (f *Filter) giveBack(k Key, h uint16, boot uint64, now int64) {
	s := f.sym
	s.bootMu.Lock()
	o, ok := s.adoptedFrom[k]
	back := ok && o.node == h && o.boot == boot && now-o.at < int64(flapWindow)
	if back {
		delete(s.adoptedFrom, k)
	}
	s.bootMu.Unlock()
	if !back {
		return
	}
	sh := f.tab.shard(k)
	sh.mu.Lock()
	if i, ok := sh.index[k]; ok && sh.slab[i].flags&entryAdopted != 0 {
		sh.slab[i].flags |= entryQuiet
		f.tab.remove(sh, i, now)
		s.givenBack.Add(1)
	}
	sh.mu.Unlock()
}
