package forward

import (
	"sync"
	"sync/atomic"
	"time"
)

// Symmetric routing (DESIGN.md "Symmetric routing and stateful fail-over";
// the patent's Figures 16-17). The handler of a flow is the node whose
// filter accepted its first packet: it alone keeps the flow's state. It
// registers the flow with the flow's authoritative node (Directory) unless
// it is that node. A node that gets a packet it has no state for, and may
// not start a flow with, redirects it through the tunnel:
//
//   - to the handler a hint names (TypeHint, received earlier), else
//   - to the authoritative node (hops 1), which sends it on to the handler
//     it has registered (hops 2) and tells the arriving node the handler
//     (a hint: the patent's "optimization step", Figure 17 arrow 1722);
//     when the authoritative node is the arriving node itself, it sends the
//     packet straight to the registered handler.
//
// A packet that came through the tunnel is passed if this node has its
// flow's state; otherwise only the authoritative node sends it on, and only
// a packet of hops 1: at most one redirect per packet. Nothing that came
// through the tunnel starts a flow: the flow's filter decision was taken,
// once, by the node it first arrived at.
//
// Everything here is pure: the router asks Decide per packet, the node's
// tunnel driver hands received registers and hints to Step and takes the
// datagrams to send from TunnelMessages; time comes in as now.

// Symmetric-routing defaults.
const (
	// DefaultRegistryTTL is how long the authoritative node remembers a
	// flow's handler after its last register. The handler registers again
	// every TTL/4 while the flow carries packets, so an idle flow is
	// forgotten by its authoritative node after at most this long (until
	// state replication adds refreshes for idle flows).
	DefaultRegistryTTL = 10 * time.Minute
	// DefaultHintTTL is how long a hint is believed from its arrival. It is
	// not extended by use: after it the next packet goes to the
	// authoritative node again, which answers with a fresh hint if the
	// handler still has the flow. A stale hint costs at most this long.
	DefaultHintTTL = 30 * time.Second
	// outboxLen bounds the register and hint datagrams waiting for the
	// tunnel driver; at the bound new ones are dropped and counted.
	outboxLen = 4096
)

// SymStats are the counters and gauges of symmetric routing.
type SymStats struct {
	Redirects       uint64 // packets this node sent through the tunnel instead of forwarding them
	Registered      uint64 // registers queued (flows this node handles, for their authoritative node)
	Hinted          uint64 // hints queued (for nodes that sent a packet the long way)
	Registry        int    // flows this node knows the handler of, as their authoritative node
	RegistryRefused uint64 // registers refused at MaxRegistry
	Hints           int    // hints held now
	HintsRefused    uint64 // hints refused at MaxHints
	OutboxDropped   uint64 // registers, hints and acks dropped because the tunnel driver fell behind
	Generation      uint32 // directories installed (SetDirectory)
	Epoch           uint64 // this node's membership epoch (SetMembership), 0 before one
	HintsStale      uint64 // hints refused: from an older epoch, or naming a node not a member here
	ViaPrevious     uint64 // packets of flows unknown here, as authoritative node, sent to the node authoritative before the last directory change
	Acked           uint64 // acks queued (registers taken, as authoritative node)
	Defer           DeferStats
	Repl            ReplStats // state replication and adoption (replicate.go, adopt.go)
}

// symmetric is the filter's symmetric-routing state; nil when Config.Self
// is 0.
type symmetric struct {
	self       uint16
	dir        atomic.Pointer[Directory]
	gen        atomic.Uint32 // bumped by SetDirectory
	reg        flowMap       // authoritative side: flow → handler
	hints      flowMap       // arriving side: flow → handler
	regTTL     int64         // ns
	hintTTL    int64         // ns
	refreshSec uint32        // register again after this many seconds of activity
	out        outbox
	defers     *deferrals
	repl       *replicator    // replicate.go
	noRepl     bool           // Config.NoReplication
	replicas   *replicaStore  // replicate.go
	resyncAt   [numShards]int // adopt.go: resyncSome's place in each shard
	// resyncSome's pass over the table after a directory change, under
	// resyncMu (Sweep and Resync may run at once), but for the two
	// atomics Stats reads.
	resyncMu    sync.Mutex
	resyncGen   atomic.Uint32
	resyncLeft  int
	resyncStart int64
	resyncTook  atomic.Int64 // ns the last pass took; -1 while it runs

	redirects, registered, hinted, acked, adoptions, resyncs atomic.Uint64
	viaPrev                                                  atomic.Uint64 // unknown flows sent to the previous directory's authoritative node (redirect)
	bootMu                                                   sync.Mutex    // guards boots and adoptedFrom
	bulkSent                                                 atomic.Uint64
	resyncDue                                                atomic.Bool    // a peer restarted: Resync at the next SyncMessages (adopt.go PeerBoot)
	fill                                                     fills          // fill.go
	adoptedFrom                                              map[Key]origin // adopted flows' former handlers, under bootMu (adopt.go giveBack)
	givenBack                                                atomic.Uint64
	boots                                                    map[uint16]uint64 // peers' newest boot ids seen (adopt.go PeerBoot)
	staleHints                                               atomic.Uint64

	epoch atomic.Uint64           // SetMembership's; 0: none
	view  atomic.Pointer[dirView] // the last two directories (refresh)
}

func newSymmetric(c Config) *symmetric {
	s := &symmetric{self: c.Self, regTTL: int64(c.RegistryTTL), hintTTL: int64(c.HintTTL),
		refreshSec: uint32(max(1, c.RegistryTTL/4/time.Second)),
		reg:        flowMap{m: map[Key]route{}, max: c.MaxRegistry},
		hints:      flowMap{m: map[Key]route{}, max: c.MaxHints},
		out:        outbox{ready: make(chan struct{}, 1)},
		defers:     newDeferrals(c.Defer),
		repl:       newReplicator(c), noRepl: c.NoReplication,
		replicas: newReplicaStore(c.MaxReplicas), boots: map[uint16]uint64{}, adoptedFrom: map[Key]origin{}}
	s.fill.timeout = int64(c.FillTimeout)
	return s
}

// auth returns the authoritative node of k, 0 while there is no directory.
func (s *symmetric) auth(k Key) uint16 {
	a, _ := s.dir.Load().Lookup(k)
	return a
}

// known returns the handler of k another node told this one about, or
// that this node registered as k's authoritative node; 0 when none is
// known or it is this node.
func (s *symmetric) known(k Key, auth uint16, now int64) uint16 {
	if h := s.hints.get(k, now); h != 0 && h != s.self {
		return h
	}
	if auth == s.self {
		if h := s.handlerOf(k, now); h != s.self {
			return h
		}
	}
	return 0
}

// redirect returns where to send a packet of flow k that this node neither
// has state for nor may start a flow with; 0: drop it. v says how the
// packet came.
func (s *symmetric) redirect(k Key, auth uint16, v via, now int64, hint bool) uint16 {
	if v.from == 0 {
		if auth != 0 && auth != s.self {
			return auth
		}
		// This node is the flow's authoritative node and does not know
		// it. Right after a directory change that is the rule, not an
		// attack: the handler registered the flow with the node that
		// was authoritative before (its own view changed later, or it
		// has not re-registered yet: it does on the flow's next packet
		// through it), so the reply goes there, which knows the handler.
		// One hop; that node sends it on at hops 2 or drops it.
		if a := s.prevAuth(k); a != 0 && a != s.self {
			s.viaPrev.Add(1)
			return a
		}
		return 0
	}
	// Any node that knows the handler sends a packet of hops 1 on, not
	// only the authoritative node: a sender still on the previous
	// membership (an older epoch) sends to the node that was
	// authoritative then, whose registry still has the flow until it
	// expires.
	if v.hops != 1 {
		return 0
	}
	h := s.handlerOf(k, now)
	if h == 0 || h == s.self || h == v.from {
		return 0
	}
	if hint {
		s.hinted.Add(1)
		s.out.push(TunnelHeader{Type: TypeHint, Receiver: v.from, Handler: h, Flow: k})
	}
	return h
}

// register queues the register of flow k, which this node handles, for
// k's authoritative node, and notes when in e. It reports whether it
// queued one (the authoritative node is another node).
func (s *symmetric) register(e *entry, k Key, now int64) bool {
	e.regGen, e.regAt = uint16(s.gen.Load()), uint32(now/int64(time.Second))
	if auth := s.auth(k); auth != 0 && auth != s.self {
		s.registered.Add(1)
		s.out.push(TunnelHeader{Type: TypeRegister, Receiver: auth, Handler: s.self, Flow: k})
		return true
	}
	return false
}

// refresh registers flow k again, and replicates its state, when a
// refresh is due (refreshDue: a quarter of the flow's timeout or of the
// registry's TTL, of activity; idle flows are refreshed by resyncSome) or
// when the directory changed since its last register and gave k's row
// another authoritative node (register and replicate) or only another
// standby (replicate): a membership change costs work for the rows it
// moved only (about 1/N of the flows for each role). It reports whether it
// sent anything.
func (s *symmetric) refresh(e *entry, k Key, now, timeout int64) bool {
	if s.refreshDue(e, now, timeout) {
		s.register(e, k, now)
		s.replicate(e, now)
		return true
	}
	g := uint16(s.gen.Load())
	if e.regGen == g {
		return false
	}
	if v := s.view.Load(); v != nil && uint16(v.gen) == g && e.regGen == g-1 {
		a, sa := v.prev.Lookup(k)
		b, sb := v.cur.Lookup(k)
		if a == b {
			e.regGen = g
			if sa == sb {
				return false
			}
			s.replicate(e, now)
			return true
		}
	}
	s.register(e, k, now)
	s.replicate(e, now)
	return true
}

// prevAuth is k's authoritative node in the directory before the current
// one, if it is still a member (0: none).
func (s *symmetric) prevAuth(k Key) uint16 {
	v := s.view.Load()
	if v == nil || v.prev == nil || v.cur == nil {
		return 0
	}
	if a, _ := v.prev.Lookup(k); v.cur.isMember(a) {
		return a
	}
	return 0
}

// dirView is the directory installed by SetDirectory generation gen and
// the one before it, so that refresh can tell which rows moved.
type dirView struct {
	prev, cur *Directory
	gen       uint32
}

// via says how a packet reached the filter: from == 0 on a link, else
// through the tunnel from node from, after hops tunnel hops. redirect is
// false when the caller cannot send through the tunnel (Forward, Pass),
// nor hold a packet. hold is set by the filter: the ticket of a first
// packet to hold (defer.go).
type via struct {
	from     uint16
	hops     uint8
	redirect bool
	hold     uint64
}

// route is one flow's handler and when the knowledge expires (ns).
type route struct {
	node    uint16
	expires int64
}

// flowMap is a bounded, expiring map from flow to node.
type flowMap struct {
	mu      sync.Mutex
	m       map[Key]route
	max     int
	refused atomic.Uint64
}

func (f *flowMap) get(k Key, now int64) uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[k]
	if !ok {
		return 0
	}
	if now >= r.expires {
		delete(f.m, k)
		return 0
	}
	return r.node
}

// put sets k's node until expires; at the bound a new flow is refused
// (counted) and false returned.
func (f *flowMap) put(k Key, node uint16, expires int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[k]; !ok && len(f.m) >= f.max {
		f.refused.Add(1)
		return false
	}
	f.m[k] = route{node, expires}
	return true
}

// sweep removes expired entries among at most budget it looks at (a
// map's walk starts at a random place, so repeated sweeps cover it).
func (f *flowMap) sweep(now int64, budget int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, r := range f.m {
		if budget--; budget < 0 {
			break
		}
		if now >= r.expires {
			delete(f.m, k)
		}
	}
}

// forget removes the entries whose node keep refuses.
func (f *flowMap) forget(keep func(uint16) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, r := range f.m {
		if !keep(r.node) {
			delete(f.m, k)
		}
	}
}

// del removes k's entry if its node is node.
func (f *flowMap) del(k Key, node uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.m[k]; ok && r.node == node {
		delete(f.m, k)
	}
}

func (f *flowMap) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

// outbox holds the registers and hints for the tunnel driver: a fixed
// ring, so queuing one on the packet path allocates nothing.
type outbox struct {
	mu      sync.Mutex
	q       [outboxLen]TunnelHeader
	head, n int
	dropped atomic.Uint64
	ready   chan struct{} // capacity 1: something was queued
}

func (o *outbox) push(h TunnelHeader) {
	o.mu.Lock()
	if o.n == len(o.q) {
		o.mu.Unlock()
		o.dropped.Add(1)
		return
	}
	o.q[(o.head+o.n)%len(o.q)] = h
	o.n++
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

func (o *outbox) drain(dst []TunnelHeader) []TunnelHeader {
	o.mu.Lock()
	defer o.mu.Unlock()
	for ; o.n > 0; o.n-- {
		dst = append(dst, o.q[o.head])
		o.head = (o.head + 1) % len(o.q)
	}
	return dst
}

// SetDirectory installs the flow directory built from the committed
// membership (NewDirectory, off the packet path). Flows handled here
// register again with their authoritative node on their next packet, and
// hints naming a node that is no longer a member are dropped. Without
// Config.Self it does nothing.
func (f *Filter) SetDirectory(d *Directory) {
	s := f.sym
	if s == nil {
		return
	}
	old := s.dir.Swap(d)
	s.view.Store(&dirView{prev: old, cur: d, gen: s.gen.Add(1)})
	s.repl.signal() // a fill may have peers to ask or to wait for no longer (fill.go)
	members := map[uint16]bool{}
	for _, m := range d.Members() {
		members[m] = true
	}
	s.hints.forget(func(n uint16) bool { return members[n] })
	s.repl.retain(func(n uint16) bool { return members[n] })
}

// SetMembership installs the flow directory d of the committed membership
// whose epoch is epoch (MembershipEpoch): SetDirectory, and the epoch this
// node puts in its tunnel datagrams and judges received ones by (Step).
func (f *Filter) SetMembership(d *Directory, epoch uint64) {
	if f.sym == nil {
		return
	}
	f.sym.epoch.Store(epoch)
	f.SetDirectory(d)
}

// Epoch returns this node's membership epoch, 0 before SetMembership.
func (f *Filter) Epoch() uint64 {
	if f.sym == nil {
		return 0
	}
	return f.sym.epoch.Load()
}

// Step takes a register, a hint or an ack that the tunnel brought (opened
// by an Opener, so Sender is set) at time now. A register taken queues an
// ack for its sender. Other types are not for it and are ignored.
func (f *Filter) Step(h TunnelHeader, now int64) {
	s := f.sym
	if s == nil || h.Handler == 0 {
		return
	}
	switch h.Type {
	case TypeRegister:
		// Taken even when the directory here says another node is
		// authoritative: during a membership change the sender may know
		// the new directory first. Acknowledged once taken: the sender
		// may be holding the flow's first packet until then (defer.go);
		// a register refused at MaxRegistry is not, and its packet goes
		// when its deferral runs out.
		if h.Handler == h.Sender {
			f.giveBack(h.Flow, h.Sender, h.Boot, now) // adopt.go
		}
		if s.reg.put(h.Flow, h.Handler, now+s.regTTL) && h.Sender != 0 && h.Sender != s.self {
			s.acked.Add(1)
			s.out.push(TunnelHeader{Type: TypeAck, Receiver: h.Sender, Handler: h.Handler, Flow: h.Flow})
		}
	case TypeHint:
		// A hint from an older epoch may name a handler that has left
		// and come back without the flow since; one naming a node that
		// is not a member here would be dropped by the next
		// SetDirectory anyway. Refused: the flow's next packet goes the
		// long way and its authoritative node hints again.
		if CompareEpoch(s.epoch.Load(), h.Epoch) == EpochStale || !s.dir.Load().has(h.Handler) {
			s.staleHints.Add(1)
			return
		}
		if h.Handler != s.self {
			s.hints.put(h.Flow, h.Handler, now+s.hintTTL)
		}
	case TypeAck:
		if h.Handler == s.self {
			s.defers.ack(h.Flow, now)
		}
	}
}

// TunnelMessages appends the registers, hints and acks waiting to be sent to
// dst and returns it; each has Type, Receiver, Handler and Flow set (the
// Sealer sets the rest). TunnelReady signals when there are some.
func (f *Filter) TunnelMessages(dst []TunnelHeader) []TunnelHeader {
	if f.sym == nil {
		return dst
	}
	return f.sym.out.drain(dst)
}

// TunnelReady receives a value after a register, hint or ack was queued. nil
// (never ready) without Config.Self.
func (f *Filter) TunnelReady() <-chan struct{} {
	if f.sym == nil {
		return nil
	}
	return f.sym.out.ready
}

// Decide is Forward with symmetric routing, as the router asks it
// (router.Redirector): ip arrived on link in (from == 0), or through the
// tunnel from node from after hops tunnel hops (in is then the link its
// source is routed by), and would leave by link out. It returns pass to
// forward the packet; else to != 0 to send it through the tunnel to node
// to (with hops + 1); else drop. With pass, hold != 0 asks the caller to
// hold the packet (the first of a new flow whose authoritative node is
// another node, Config.Defer set: defer.go) and forward it once Released
// returns hold. It does not allocate.
func (f *Filter) Decide(ip []byte, in, out int, from uint16, hops uint8, now int64) (pass bool, to uint16, hold uint64) {
	v := via{from: from, hops: hops, redirect: f.sym != nil}
	r, to := f.forward(ip, in, out, &v, now)
	if to != 0 {
		f.sym.redirects.Add(1)
		return false, to, 0
	}
	return f.count(r) == ReasonNone, 0, v.hold
}

func (f *Filter) symStats() SymStats {
	s := f.sym
	if s == nil {
		return SymStats{}
	}
	return SymStats{ViaPrevious: s.viaPrev.Load(), Redirects: s.redirects.Load(), Registered: s.registered.Load(), Hinted: s.hinted.Load(),
		Registry: s.reg.len(), RegistryRefused: s.reg.refused.Load(), Hints: s.hints.len(),
		HintsRefused: s.hints.refused.Load(), OutboxDropped: s.out.dropped.Load(), Generation: s.gen.Load(),
		Acked: s.acked.Load(), Defer: s.defers.stats(), Epoch: s.epoch.Load(), HintsStale: s.staleHints.Load(),
		Repl: s.replStats()}
}
