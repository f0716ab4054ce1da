package router

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// The built-in application check (the patent's "dummy packets"; DESIGN.md
// monitor): Probe asks every worker to decide synthetic packets of a kind
// whose fate is known, on its own goroutine, through the functions that
// decide real frames, and to say whether they came out as they must.
//
// A worker answers between two batches: after each Read returns it looks
// at one atomic (probeSlot.want), so the packet path gains one load per
// batch and two stores (busy), nothing per frame. A worker with traffic
// answers within one batch. A worker without traffic is blocked in Read;
// Probe wakes it (Waker: the AF_PACKET and TUN readers set a read deadline
// in the past, which makes the netpoller return at once; the fakes have a
// wake channel), Read returns 0 frames and the worker answers. So a worker
// that does not answer within the deadline is wedged: inside one batch for
// longer than the deadline (a deadlocked filter, a send that never
// returns, an endless loop), reported with how long it has been inside, or
// blocked in Read and not woken. Only a reader that cannot be woken (a
// third-party device without Waker) gets the weaker rule: waiting in Read,
// not inside a batch, counts as healthy.
//
// Nothing a probe decides is sent or counted: the probe frames live in the
// worker's own buffers and never reach a send queue, and the filter is
// asked through FilterChecker.Check, which records nothing.

// probeSlot is one worker's side of Probe; its fields are shared between
// the worker and Probe, hence atomic.
type probeSlot struct {
	want   atomic.Uint64 // round asked by Probe
	answer atomic.Uint64 // round<<16 | probeOutcome of the last answer
	busy   atomic.Int64  // router clock +1 when the current batch was read; 0 between batches
}

// probeOutcome is what a worker found: a kind in the low byte, the drop
// reason of an unexpected drop in the high byte.
type probeOutcome uint16

const (
	probeOK                probeOutcome = iota + 1
	probeNotForwarded                   // the forward probe was not forwarded
	probeSpoofNotDecided                // the spoofed probe did not reach the filter
	probeSpoofPassed                    // the filter passed the spoofed probe
	probeLocalNotForwarded              // the TUN probe was not routed
)

func outcome(kind probeOutcome, r DropReason) probeOutcome { return kind | probeOutcome(r)<<8 }

// probeSpoofSrc is the source of the spoofed probe: link-local (RFC 3927),
// which the filter's anti-spoofing drops on every link whatever the rules
// (DESIGN.md, the stateful filter), and which decideIPv4 lets through to
// the filter (it is not an RFC 1812 martian).
var probeSpoofSrc = netip.AddrFrom4([4]byte{169, 254, 0, 1})

// probeMAC is the Ethernet source of the probe frames (locally
// administered, unicast; nothing is learned from it).
var probeMAC = MAC{0x02, 0x72, 0x77, 0x70, 0x72, 0x62}

// probeFrames builds worker w's probes once (Run): for a capture NIC's
// worker, a UDP frame from a host on its link to a host on the next link
// (its own with one link), which must be forwarded, and with a
// FilterChecker the same from probeSpoofSrc, which the filter must drop;
// for the TUN reader, a UDP packet towards the same host, which must be
// routed out. No probe is built when a subnet has no spare host address
// (a /32, or every address a primary or a VIP): the worker then only
// proves it is alive.
func (r *Router) probeFrames(w *worker) {
	n := len(r.plane.links)
	if n == 0 {
		return
	}
	in := max(w.in, 0)
	dst, ok := r.probeHost(&r.plane.links[(in+1)%n], true, netip.Addr{})
	if !ok {
		return
	}
	if w.in < 0 {
		src := r.plane.links[0].primary
		w.probeOut = probePacket(make([]byte, ipv4MinHdr+8), src, dst)
		return
	}
	l := &r.plane.links[w.in]
	src, ok := r.probeHost(l, false, dst)
	if !ok {
		return
	}
	w.probeFwd = make([]byte, ethHdrLen+ipv4MinHdr+8)
	putEth(w.probeFwd, l.mac, probeMAC, ethTypeIPv4)
	probePacket(w.probeFwd[ethHdrLen:], src, dst)
	if r.checker != nil {
		w.probeSpoof = make([]byte, len(w.probeFwd))
		putEth(w.probeSpoof, l.mac, probeMAC, ethTypeIPv4)
		probePacket(w.probeSpoof[ethHdrLen:], probeSpoofSrc, dst)
	}
}

// probeHost returns a host address on l that is not a primary address, a
// configured VIP or skip: from the top of the subnet (below its broadcast
// address) or from the bottom (above its network address).
func (r *Router) probeHost(l *linkInfo, top bool, skip netip.Addr) (netip.Addr, bool) {
	p := l.prefix
	if p.Bits() > 30 {
		return netip.Addr{}, false
	}
	base, size := u32(p.Addr()), uint32(1)<<(32-p.Bits())
	for i := uint32(1); i < size-1 && i <= 64; i++ {
		x := base + i
		if top {
			x = base + size - 1 - i
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], x)
		a := netip.AddrFrom4(b)
		if a == skip || r.plane.isPrimary(a) || r.isVIP(a) {
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

func (r *Router) isVIP(a netip.Addr) bool {
	for _, v := range r.cfg.VIPs {
		if v == a {
			return true
		}
	}
	return false
}

// probePacket writes a UDP datagram without payload from src to dst (port
// 9, discard) into ip and returns it.
func probePacket(ip []byte, src, dst netip.Addr) []byte {
	ip = ip[:ipv4MinHdr+8]
	clear(ip)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], ipv4MinHdr+8)
	ip[6] = 0x40 // DF
	ip[8] = 64
	ip[9] = protoUDP
	put4(ip[12:16], src)
	put4(ip[16:20], dst)
	setIPv4Checksum(ip)
	u := ip[ipv4MinHdr:]
	binary.BigEndian.PutUint16(u[0:2], 9)
	binary.BigEndian.PutUint16(u[2:4], 9)
	binary.BigEndian.PutUint16(u[4:6], 8)
	return ip
}

// answerProbe runs this worker's probes for round, on its own goroutine,
// and publishes the outcome. It allocates nothing.
func (w *worker) answerProbe(round uint64) {
	r := w.r
	res := probeOK
	if w.in < 0 {
		if w.probeOut != nil {
			if d := r.plane.decideLocalOut(w.probeOut, false); d.action != ipForward {
				res = outcome(probeLocalNotForwarded, d.reason)
			}
		}
	} else if w.probeFwd != nil {
		owned := r.owned.Load()
		if d := r.plane.decideIPv4(w.probeFwd, w.in, owned, false); d.action != ipForward {
			res = outcome(probeNotForwarded, d.reason)
		} else if w.probeSpoof != nil {
			d := r.plane.decideIPv4(w.probeSpoof, w.in, owned, false)
			switch {
			case d.action != ipForward:
				res = outcome(probeSpoofNotDecided, d.reason)
			case r.checker.Check(w.probeSpoof[ethHdrLen:], w.in, d.out, r.now()):
				res = probeSpoofPassed
			}
		}
	}
	w.answered = round
	w.probe.answer.Store(round<<16 | uint64(res))
	select {
	case r.probeAck <- struct{}{}:
	default: // Probe has a wakeup pending already
	}
}

// checkProbe answers a probe asked since the last one; the receive loops
// call it after every Read.
func (w *worker) checkProbe() {
	if q := w.probe.want.Load(); q != w.answered {
		w.answerProbe(q)
	}
}

// Probe runs the built-in application check: every receive worker (each
// capture NIC's receive queues and the TUN reader) decides its synthetic
// probes on its own goroutine, through decideIPv4 or decideLocalOut and,
// with a Filter that implements FilterChecker, the filter's verdict, and
// nothing is sent. Probe wakes idle workers (Waker) and waits until every
// worker answered or ctx ends; it returns one result per worker, in worker
// order, or ErrNotRunning when Run is not running. A worker fails when it
// did not answer in time (wedged inside a batch, with how long, or not
// woken from Read) or when a probe came out wrong: the forward probe not
// forwarded, the spoofed probe passed by the filter, the TUN probe not
// routed. The design and its limits are in the comment at the top of
// probe_linux.go and in docs/router.md. Calls are serialized.
func (r *Router) Probe(ctx context.Context) ([]ProbeResult, error) {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	r.runMu.Lock()
	ws := r.workers
	r.runMu.Unlock()
	if len(ws) == 0 {
		return nil, ErrNotRunning
	}
	r.probeRound++
	round := r.probeRound
	woken := make([]bool, len(ws))
	for i, w := range ws {
		w.probe.want.Store(round)
		woken[i] = w.waker != nil && w.waker.Wake() == nil
	}
wait:
	for {
		pending := false
		for _, w := range ws {
			if w.probe.answer.Load()>>16 != round {
				pending = true
				break
			}
		}
		if !pending {
			break
		}
		select {
		case <-r.probeAck:
		case <-ctx.Done():
			break wait
		}
	}
	now := r.now()
	res := make([]ProbeResult, len(ws))
	for i, w := range ws {
		p := &res[i]
		p.Worker = w.name
		a := w.probe.answer.Load()
		if a>>16 == round {
			p.Answered = true
			p.Failure = w.describe(probeOutcome(a))
			continue
		}
		if busy := w.probe.busy.Load(); busy != 0 {
			p.Busy = time.Duration(now - (busy - 1))
			p.Failure = fmt.Sprintf("no answer: inside one batch for %v (wedged)", p.Busy.Round(time.Millisecond))
		} else if woken[i] {
			p.Failure = "no answer: waiting for frames and not woken"
		}
		// else: waiting in a Read that cannot be woken, inside no batch:
		// idle, counted healthy.
	}
	return res, nil
}

// describe says what went wrong in outcome o ("" for probeOK).
func (w *worker) describe(o probeOutcome) string {
	reason := DropReason(o >> 8)
	probe := func(b []byte) string {
		if b == nil {
			return "probe"
		}
		return fmt.Sprintf("probe %v → %v", addr4(b[12:16]), addr4(b[16:20]))
	}
	switch o & 0xff {
	case probeOK:
		return ""
	case probeNotForwarded:
		return fmt.Sprintf("forward %s not forwarded (%v)", probe(w.probeFwd[ethHdrLen:]), reason)
	case probeSpoofNotDecided:
		return fmt.Sprintf("spoofed %s not forwarded to the filter (%v)", probe(w.probeSpoof[ethHdrLen:]), reason)
	case probeSpoofPassed:
		return fmt.Sprintf("spoofed %s passed the filter; it must drop it", probe(w.probeSpoof[ethHdrLen:]))
	case probeLocalNotForwarded:
		return fmt.Sprintf("local %s not routed (%v)", probe(w.probeOut), reason)
	}
	return fmt.Sprintf("unknown probe outcome %#x", uint16(o))
}
