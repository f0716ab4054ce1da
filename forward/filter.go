package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Timeouts are how long an idle flow is kept in each state, as the Linux
// kernel's nf_conntrack_*_timeout sysctls (DefaultTimeouts has their
// defaults).
type Timeouts struct {
	TCPSynSent, TCPSynRecv, TCPEstablished, TCPFinWait, TCPCloseWait time.Duration
	TCPLastAck, TCPTimeWait, TCPClose                                time.Duration
	UDP                                                              time.Duration // a flow only its initiator has sent on
	UDPStream                                                        time.Duration // a flow both sides have sent on (assured)
	ICMP                                                             time.Duration // ICMP echo
}

// DefaultTimeouts returns the kernel's defaults (Linux 6.x).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     2 * time.Minute,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 5 * 24 * time.Hour,
		TCPFinWait:     2 * time.Minute,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    2 * time.Minute,
		TCPClose:       10 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      120 * time.Second,
		ICMP:           30 * time.Second,
	}
}

// Link is what the filter knows of one router link (by index).
type Link struct {
	Prefix  netip.Prefix // the connected subnet
	Primary netip.Addr   // this node's address on it
}

// Config configures a Filter.
type Config struct {
	Links   []Link
	VIPs    []netip.Addr
	Rules   []Rule // first match wins
	Default Action // for a new flow no rule matches
	Local   []Service
	// MaxFlows caps the connection table. Default 1 << 20 (about 90 MB
	// at the cap, docs/forward.md).
	MaxFlows int
	// MaxFragments caps the fragment tracker. Default 1024.
	MaxFragments int
	Timeouts     Timeouts // zero fields take DefaultTimeouts' values

	// Self is this node's id for symmetric routing (symmetric.go): with
	// it, Decide redirects packets of flows handled by other nodes. 0
	// (default): off, the filter never redirects.
	Self uint16
	// MaxRegistry caps the flows whose handler this node remembers as
	// their authoritative node. Default MaxFlows.
	MaxRegistry int
	// MaxHints caps the hints this node holds. Default MaxFlows.
	MaxHints int
	// RegistryTTL is how long a register is remembered. Default
	// DefaultRegistryTTL (10 min).
	RegistryTTL time.Duration
	// HintTTL is how long a hint is believed. Default DefaultHintTTL (30 s).
	HintTTL time.Duration
	// Defer is how long Decide has the first packet of a new flow whose
	// authoritative node is another node held, at most, waiting for that
	// node's ack of the register (defer.go). 0 (default): not held. The
	// node sets it from filter.defer (DefaultDefer, 10 ms).
	Defer time.Duration
	// MaxSyncQueue caps the state changes waiting to be replicated, all
	// peers together (replicate.go). Default DefaultSyncQueue (65,536).
	MaxSyncQueue int
	// SyncWindow caps the replication batches in flight to one peer.
	// Default DefaultSyncWindow (64).
	SyncWindow int
	// SyncResend is how long a replication batch waits for its ack
	// before it is sent again. Default DefaultSyncResend (20 ms).
	SyncResend time.Duration
	// MaxReplicas caps the flows whose state this node holds for their
	// handlers. Default MaxFlows.
	MaxReplicas int
	// NoReplication turns state replication off (config
	// filter.replication: false), to measure its cost: a handler's loss
	// then breaks its flows.
	NoReplication bool
	// FillTimeout bounds a node's fill (fill.go): when the other members'
	// copies have not all come by then, the node counts as filled anyway.
	// Default DefaultFillTimeout (5 s).
	FillTimeout time.Duration
}

// Stats are the filter's counters (cumulative) and gauges.
type Stats struct {
	Flows     int64 // in the table now
	MaxFlows  int64
	NewFlows  uint64
	Passed    uint64
	Drops     [numReasons]uint64 // by Reason
	ByState   [numStates]int64   // flows in each state now (index: State)
	Fragments int                // datagrams in the fragment tracker now
	Sym       SymStats           // symmetric routing (zero without Config.Self)
}

// Filter is the stateful filter. Safe for concurrent use.
type Filter struct {
	// policy is what decides a flow's first packet (and every packet of
	// the stateless classes): the rules, the default and the local
	// services. SetRules swaps it whole; a decision loads it once.
	policy  atomic.Pointer[policy]
	links   int // len(Config.Links), for compiling rules
	spoof   spoofer
	timeout [numStates]int64
	tab     *table
	frag    frags
	sym     *symmetric // nil without Config.Self

	newFlows, passed atomic.Uint64
	drops            [numReasons]atomic.Uint64
}

// New checks cfg and returns a Filter.
func New(cfg Config) (*Filter, error) {
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = 1 << 20
	}
	if cfg.MaxFragments == 0 {
		cfg.MaxFragments = 1024
	}
	if cfg.MaxRegistry == 0 {
		cfg.MaxRegistry = cfg.MaxFlows
	}
	if cfg.MaxHints == 0 {
		cfg.MaxHints = cfg.MaxFlows
	}
	if cfg.RegistryTTL <= 0 {
		cfg.RegistryTTL = DefaultRegistryTTL
	}
	if cfg.HintTTL <= 0 {
		cfg.HintTTL = DefaultHintTTL
	}
	if cfg.MaxSyncQueue == 0 {
		cfg.MaxSyncQueue = DefaultSyncQueue
	}
	if cfg.SyncWindow <= 0 {
		cfg.SyncWindow = DefaultSyncWindow
	}
	if cfg.SyncResend <= 0 {
		cfg.SyncResend = DefaultSyncResend
	}
	if cfg.FillTimeout <= 0 {
		cfg.FillTimeout = DefaultFillTimeout
	}
	if cfg.MaxReplicas == 0 {
		cfg.MaxReplicas = cfg.MaxFlows
	}
	if cfg.MaxFlows < 0 || cfg.MaxFragments < 0 || cfg.MaxRegistry < 0 || cfg.MaxHints < 0 || cfg.Defer < 0 ||
		cfg.MaxSyncQueue < 0 || cfg.MaxReplicas < 0 {
		return nil, errors.New("forward: negative table size")
	}
	if len(cfg.Links) > 64 {
		return nil, fmt.Errorf("forward: %d links, at most 64", len(cfg.Links))
	}
	f := &Filter{links: len(cfg.Links), tab: newTable(cfg.MaxFlows),
		frag: frags{m: map[fragKey]fragEntry{}, max: cfg.MaxFragments}}
	if cfg.Self != 0 {
		f.sym = newSymmetric(cfg)
		f.tab.gone = func(e *entry, now int64) { f.sym.gone(e, now) }
	}
	if err := f.SetRules(cfg.Default, cfg.Rules, cfg.Local); err != nil {
		return nil, err
	}
	for _, l := range cfg.Links {
		p, err := compilePrefix(l.Prefix)
		if err != nil {
			return nil, fmt.Errorf("forward: link: %w", err)
		}
		f.spoof.links = append(f.spoof.links, p)
		bc := p.addr | ^p.mask
		if l.Prefix.Bits() >= 31 {
			bc = 0 // RFC 3021: /31 and /32 have no broadcast address
		}
		f.spoof.bcast = append(f.spoof.bcast, bc)
		if l.Primary.Is4() {
			f.spoof.primary = append(f.spoof.primary, u32(l.Primary.As4()))
		}
	}
	f.spoof.setVIPs(cfg.VIPs)
	t := cfg.Timeouts
	d := DefaultTimeouts()
	for _, p := range []struct{ v, def *time.Duration }{
		{&t.TCPSynSent, &d.TCPSynSent}, {&t.TCPSynRecv, &d.TCPSynRecv}, {&t.TCPEstablished, &d.TCPEstablished},
		{&t.TCPFinWait, &d.TCPFinWait}, {&t.TCPCloseWait, &d.TCPCloseWait}, {&t.TCPLastAck, &d.TCPLastAck},
		{&t.TCPTimeWait, &d.TCPTimeWait}, {&t.TCPClose, &d.TCPClose}, {&t.UDP, &d.UDP},
		{&t.UDPStream, &d.UDPStream}, {&t.ICMP, &d.ICMP},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	f.timeout = [numStates]int64{
		StateSynSent: int64(t.TCPSynSent), StateSynRecv: int64(t.TCPSynRecv), StateEstablished: int64(t.TCPEstablished),
		StateFinWait: int64(t.TCPFinWait), StateCloseWait: int64(t.TCPCloseWait), StateLastAck: int64(t.TCPLastAck),
		StateTimeWait: int64(t.TCPTimeWait), StateClose: int64(t.TCPClose), StateUnreplied: int64(t.UDP),
		StateAssured: int64(t.UDPStream), StateICMP: int64(t.ICMP),
	}
	return f, nil
}

// Forward decides the IPv4 packet ip (from its IP header on) that the
// router would forward from link in to link out, at time now (ns, any
// monotonic origin). It returns ReasonNone to pass. It keeps no reference
// to ip and does not allocate once the packet's flow exists.
func (f *Filter) Forward(ip []byte, in, out int, now int64) Reason {
	r, _ := f.forward(ip, in, out, &via{}, now)
	return f.count(r)
}

// Local decides the IPv4 packet ip addressed to a VIP this node answers,
// arriving on link in, that the router would deliver to the node's own OS
// (not ICMP echo, which the router answers itself): it passes only to a
// service of Config.Local.
func (f *Filter) Local(ip []byte, in int, now int64) Reason {
	var p packet
	if r, final := f.admit(ip, in, &p, now); final {
		return f.count(r)
	}
	ok := false
	for _, s := range f.policy.Load().local {
		if uint8(s.Proto) == p.proto && (len(s.Ports) == 0 || inPorts(s.Ports, p.dport)) {
			ok = true
			break
		}
	}
	if p.moreFrags && !f.frag.record(&p, ok, now) {
		return f.count(ReasonFragFull)
	}
	if !ok {
		return f.count(ReasonLocal)
	}
	return f.count(ReasonNone)
}

// admit parses ip into p and applies what every packet gets before its
// flow or service is looked at: a malformed or spoofed packet is dropped,
// and a non-first fragment follows its first fragment's verdict. final
// says the verdict r is the packet's; otherwise p has its L4 header and
// the caller decides.
func (f *Filter) admit(ip []byte, in int, p *packet, now int64) (r Reason, final bool) {
	if !parse(ip, p) {
		return ReasonMalformed, true
	}
	if r := f.spoof.check(p.src, in); r != ReasonNone {
		return r, true
	}
	if !p.hasL4 {
		if pass, found := f.frag.verdict(p, now); !found || !pass {
			return ReasonFragment, true
		}
		return ReasonNone, true
	}
	return ReasonNone, false
}

func (f *Filter) count(r Reason) Reason {
	if r == ReasonNone {
		f.passed.Add(1)
	} else {
		f.drops[r].Add(1)
	}
	return r
}

// forward is the verdict on a forwarded packet: a reason, or a node to
// redirect it to (only when v.redirect).
func (f *Filter) forward(ip []byte, in, out int, v *via, now int64) (Reason, uint16) {
	var p packet
	if r, final := f.admit(ip, in, &p, now); final {
		// A non-first fragment of a datagram whose first fragment was
		// redirected follows it through the tunnel.
		if r == ReasonFragment && v.redirect {
			if to := f.frag.redirected(&p, now); to != 0 {
				return ReasonNone, to
			}
		}
		return r, 0
	}
	r, to := f.decide(&p, in, out, v, now)
	if to != 0 {
		if p.moreFrags && !f.frag.recordTo(&p, to, now) {
			return ReasonFragFull, 0
		}
		return r, to
	}
	if p.moreFrags && !f.frag.record(&p, r == ReasonNone, now) {
		return ReasonFragFull, 0
	}
	return r, 0
}

// class is how the filter treats a packet with its L4 header.
type class uint8

const (
	classTracked   class = iota // TCP, UDP, ICMP echo: by the connection table
	classRelated                // an ICMP error: passes if it quotes a tracked flow
	classStateless              // other ICMP and other protocols: the rules decide each packet
)

func classify(p *packet) class {
	switch p.proto {
	case protoTCP, protoUDP:
		return classTracked
	case protoICMP:
		switch p.icmpType {
		case icmpEcho, icmpEchoReply:
			return classTracked
		case icmpUnreachable, icmpSourceQuench, icmpRedirect, icmpTimeExceeded, icmpParamProblem:
			return classRelated
		}
	}
	return classStateless
}

// decide is the verdict for a packet with its L4 header: a reason, or a
// node to redirect it to (only when v.redirect).
func (f *Filter) decide(p *packet, in, out int, v *via, now int64) (Reason, uint16) {
	switch classify(p) {
	case classRelated:
		return f.related(p, *v, now)
	case classStateless:
		if f.ruleVerdict(p, in, out) == Accept {
			return ReasonNone, 0
		}
		return ReasonRule, 0
	}
	var sym *symmetric
	if v.redirect {
		sym = f.sym
	}
	k, srcIsA := keyOf(p.proto, p.src, p.dst, p.sport, p.dport)
	s := f.tab.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := f.tab.lookup(s, k, now)
	if e == nil && sym != nil {
		e = f.adopt(s, k, now) // a flow whose handler left, replicated here (adopt.go)
	}
	created, was := e == nil, StateNone
	if e == nil {
		var auth uint16
		if sym != nil {
			auth = sym.auth(k)
			if v.from == 0 {
				if h := sym.known(k, auth, now); h != 0 {
					return ReasonNone, h // handled elsewhere, even if it could start a flow here
				}
			}
		}
		r, act, ri := ReasonNoState, Drop, -1
		if f.firstPacket(p) {
			r = ReasonRule
			ri, act = f.match(p, in, out)
		}
		if act != Accept || v.from != 0 {
			if sym != nil {
				if to := sym.redirect(k, auth, *v, now, true); to != 0 {
					return ReasonNone, to
				}
				if v.from != 0 && act == Accept {
					r = ReasonNoHandler // nothing that came through the tunnel starts a flow
				} else if v.from != 0 && r == ReasonNoState {
					r = ReasonNoHandler
				}
			}
			return r, 0
		}
		if e = f.tab.insert(s, k, now); e == nil {
			return ReasonTableFull, 0
		}
		f.newFlows.Add(1)
		if f.sym != nil && f.sym.register(e, k, now) && sym != nil && v.from == 0 {
			v.hold = f.sym.defers.hold(k, now) // the router holds it: defer.go
		}
		e.rule = uint16(ri + 1)
		if srcIsA {
			e.flags |= entryOrigIsA
		}
		switch p.proto {
		case protoTCP:
			f.tab.setState(e, StateSynSent)
		case protoUDP:
			f.tab.setState(e, StateUnreplied)
		default:
			f.tab.setState(e, StateICMP)
		}
	} else {
		was = e.state
		orig := srcIsA == (e.flags&entryOrigIsA != 0)
		switch e.state {
		case StateUnreplied:
			if !orig {
				f.tab.setState(e, StateAssured)
			}
		case StateICMP:
		default:
			next := tcpNext(e.state, orig, p.flags, e.flags&entryFinOrig != 0)
			if e.state != StateFinWait && next == StateFinWait && orig {
				e.flags |= entryFinOrig // the initiator closed first
			}
			if next == StateSynSent && e.state != StateSynSent {
				// A new connection reuses the ports: count it afresh.
				e.flags = e.flags&^(entryFinOrig|entryOrigIsA) | boolFlag(srcIsA, entryOrigIsA)
				e.created, e.pkts, e.bytes = now, [2]uint32{}, [2]uint64{}
			}
			f.tab.setState(e, next)
		}
	}
	dir := 0
	if srcIsA != (e.flags&entryOrigIsA != 0) {
		dir = 1
	}
	e.pkts[dir]++
	e.bytes[dir] += uint64(p.size)
	e.expires = now + f.timeout[e.state]
	if f.sym != nil {
		// syn_recv lasts one round trip, until the initiator's ACK makes
		// the flow established: it is not sent by itself (a replica
		// left at syn_sent adopts the flow as well; the tracker is
		// liberal). Under load it collapsed with established anyway; at
		// a low rate it was a third of a handshake's records.
		if created || e.state != was && e.state != StateSynRecv {
			f.sym.replicate(e, now) // created, established, closing: replicate.go
		} else {
			f.sym.refresh(e, k, now, f.timeout[e.state])
		}
	}
	return ReasonNone, 0
}

func boolFlag(b bool, flag uint8) uint8 {
	if b {
		return flag
	}
	return 0
}

// firstPacket reports whether p may start a flow: a TCP SYN without ACK,
// any UDP datagram, an ICMP echo request.
func (f *Filter) firstPacket(p *packet) bool {
	switch p.proto {
	case protoTCP:
		return p.flags&(tcpSYN|tcpACK|tcpRST|tcpFIN) == tcpSYN
	case protoICMP:
		return p.icmpType == icmpEcho
	}
	return true
}

// related passes an ICMP error that quotes a tracked flow; with symmetric
// routing, one quoting a flow handled elsewhere goes to its handler.
func (f *Filter) related(p *packet, v via, now int64) (Reason, uint16) {
	if !p.quoted {
		return ReasonRelated, 0
	}
	in := &p.inner
	k, _ := keyOf(in.proto, in.src, in.dst, in.sport, in.dport)
	s := f.tab.shard(k)
	s.mu.Lock()
	e := f.tab.lookup(s, k, now)
	s.mu.Unlock()
	if e != nil {
		return ReasonNone, 0
	}
	if sym := f.sym; v.redirect && sym != nil {
		auth := sym.auth(k)
		if v.from == 0 {
			if h := sym.known(k, auth, now); h != 0 {
				return ReasonNone, h
			}
		}
		if to := sym.redirect(k, auth, v, now, false); to != 0 {
			return ReasonNone, to
		}
	}
	return ReasonRelated, 0
}

// match returns the index of the first rule that matches p and its
// action; -1 and the default when none does.
func (f *Filter) match(p *packet, in, out int) (int, Action) {
	pol := f.policy.Load()
	for i := range pol.rules {
		if pol.rules[i].match(p, in, out) {
			return i, pol.rules[i].action
		}
	}
	return -1, pol.def
}

// policy is one set of rules with its default and local services.
type policy struct {
	rules []rule
	names []string
	def   Action
	local []Service
}

// SetRules replaces the rules, the default verdict and the local services
// (a reload). Flows already accepted keep passing by their entries; from
// the next decision on, first packets (and stateless packets) meet the new
// rules. A flow accepted by a rule of the old set may show another rule's
// name (Flow.Rule) afterwards. Safe for concurrent use with decisions.
func (f *Filter) SetRules(def Action, rules []Rule, local []Service) error {
	p := &policy{def: def, local: slices.Clone(local)}
	for _, r := range rules {
		c, err := compileRule(r, f.links)
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		p.rules = append(p.rules, c)
		p.names = append(p.names, r.Name)
	}
	f.policy.Store(p)
	return nil
}

func (f *Filter) ruleVerdict(p *packet, in, out int) Action {
	_, a := f.match(p, in, out)
	return a
}

// Sweep removes some expired flows and fragment records; call it about
// once a second. It looks at a bounded number of slots per shard (enough
// to walk a full table in about 8 calls), never the whole table at once.
func (f *Filter) Sweep(now int64) {
	budget := max(256, int(f.tab.max/numShards/8))
	f.tab.sweepSome(now, budget)
	if f.sym != nil {
		f.sym.reg.sweep(now, budget*8)
		f.sym.hints.sweep(now, budget*8)
		f.sym.replicas.sweep(now, budget*8)
		f.resyncSome(now, budget)
	}
	f.frag.mu.Lock()
	f.frag.expire(now)
	f.frag.mu.Unlock()
}

// Stats returns the counters.
func (f *Filter) Stats() Stats {
	s := Stats{Flows: f.tab.count.Load(), MaxFlows: f.tab.max, NewFlows: f.newFlows.Load(),
		Passed: f.passed.Load(), Fragments: f.frag.len(), Sym: f.symStats()}
	for i := range s.Drops {
		s.Drops[i] = f.drops[i].Load()
	}
	for i := range s.ByState {
		s.ByState[i] = f.tab.byState[i].Load()
	}
	return s
}

// Flow is a tracked flow, for operators (`ringway flows`).
type Flow struct {
	Proto          uint8
	Src, Dst       netip.AddrPort // the initiator and the responder
	State          State
	Rule           string // the rule that accepted it, "default" when none did
	Age, Idle      time.Duration
	Expires        time.Duration // until expiry if nothing more is seen
	PacketsOrig    uint64
	PacketsReply   uint64
	BytesOrig      uint64
	BytesReply     uint64
	ICMPEchoID     uint16 // ICMP echo: the identifier (ports are zero)
	TimeoutInState time.Duration
}

// Flows returns up to limit live flows (all when limit ≤ 0), in no order.
func (f *Filter) Flows(now int64, limit int) []Flow {
	return f.FlowsWith(now, limit, netip.Addr{})
}

// FlowsWith is Flows restricted to the flows with addr at either end (any
// flow when addr is the zero Addr), filtered while the table is walked.
func (f *Filter) FlowsWith(now int64, limit int, addr netip.Addr) []Flow {
	var want [4]byte
	match := addr.Is4()
	if match {
		want = addr.As4()
	}
	var out []Flow
	for i := range f.tab.shards {
		s := &f.tab.shards[i]
		s.mu.Lock()
		for j := range s.slab {
			e := &s.slab[j]
			if e.flags&entryUsed == 0 || now >= e.expires || (match && e.key.A != want && e.key.B != want) {
				continue
			}
			if limit > 0 && len(out) >= limit {
				break
			}
			out = append(out, f.flowOf(e, now))
		}
		s.mu.Unlock()
	}
	return out
}

func (f *Filter) flowOf(e *entry, now int64) Flow {
	k := e.key
	a := netip.AddrPortFrom(netip.AddrFrom4(k.A), k.PA)
	b := netip.AddrPortFrom(netip.AddrFrom4(k.B), k.PB)
	fl := Flow{Proto: k.Proto, State: e.state, Src: a, Dst: b, Age: time.Duration(now - e.created),
		Expires: time.Duration(e.expires - now), TimeoutInState: time.Duration(f.timeout[e.state]),
		PacketsOrig: uint64(e.pkts[0]), PacketsReply: uint64(e.pkts[1]), BytesOrig: e.bytes[0], BytesReply: e.bytes[1]}
	fl.Idle = fl.TimeoutInState - fl.Expires
	if e.flags&entryOrigIsA == 0 {
		fl.Src, fl.Dst = b, a
	}
	if k.Proto == protoICMP {
		fl.ICMPEchoID = k.PA
		fl.Src = netip.AddrPortFrom(fl.Src.Addr(), 0)
		fl.Dst = netip.AddrPortFrom(fl.Dst.Addr(), 0)
	}
	fl.Rule = "default"
	if names := f.policy.Load().names; e.rule > 0 && int(e.rule) <= len(names) {
		fl.Rule = names[e.rule-1]
	}
	return fl
}

// Pass is Forward as the router asks it (router.Filter): true when the
// packet passes.
func (f *Filter) Pass(ip []byte, in, out int, now int64) bool {
	return f.Forward(ip, in, out, now) == ReasonNone
}

// PassLocal is Local as the router asks it (router.Filter).
func (f *Filter) PassLocal(ip []byte, in int, now int64) bool {
	return f.Local(ip, in, now) == ReasonNone
}
