package router

import (
	"net/netip"
	"sync/atomic"
)

// linkInfo is what the pure decisions know about one capture NIC.
type linkInfo struct {
	index   int
	name    string
	mac     MAC
	primary netip.Addr   // the node's own kernel address on this subnet
	prefix  netip.Prefix // the connected subnet
	mtu     *linkMTU     // bytes of IPv4 packet, without the Ethernet header; changes at run time
}

// linkMTU is a link's MTU, shared by every copy of its linkInfo. The router
// stores a new value when the NIC's MTU changes (Router.setMTU); the
// forwarding decision loads it once per packet (a plain load on amd64 and
// arm64).
type linkMTU struct{ v atomic.Int32 }

func newLinkMTU(n int) *linkMTU {
	m := &linkMTU{}
	m.set(n)
	return m
}

func (m *linkMTU) get() int  { return int(m.v.Load()) }
func (m *linkMTU) set(n int) { m.v.Store(int32(n)) }

// learnMode says what an ARP packet may do to the ARP cache (RFC 826
// "merge"): update an existing entry only, or also create one.
type learnMode uint8

const (
	learnNone learnMode = iota
	learnUpdate
	learnCreate
)

// arpDecision is the outcome of one ARP frame.
type arpDecision struct {
	answer bool      // send a reply for an owned VIP
	learn  learnMode // what the sender may do to the ARP cache
	reason DropReason
	vip    ownedVIP // the owned VIP asked for (answer true) or claimed by another host (DropARPConflict)
}

func isUnicastMAC(m MAC) bool { return m[0]&1 == 0 && m != MAC{} }

// decideARP decides what to do with the ARP frame f received on l. It does
// not modify f. Requests for owned VIPs on l are answered; everything else is
// ignored (the kernel answers for the primary address).
func decideARP(f []byte, l *linkInfo, owned *ownedSet) (arpPacket, arpDecision) {
	var a arpPacket
	if len(f) < ethHdrLen+arpLen {
		return a, arpDecision{reason: DropTruncated}
	}
	if d := ethDst(f); d != l.mac && d != broadcastMAC {
		return a, arpDecision{reason: DropNotOurMAC}
	}
	if ethSrc(f) == l.mac {
		return a, arpDecision{reason: DropOwnFrame} // never answer our own GARP
	}
	if err := a.UnmarshalBinary(f[ethHdrLen:]); err != nil {
		return a, arpDecision{reason: DropBadARP}
	}
	learn := learnUpdate
	if !isUnicastMAC(a.SenderMAC) || a.SenderMAC == l.mac || !l.prefix.Contains(a.SenderIP) ||
		a.SenderIP == l.primary || a.SenderIP == l.prefix.Masked().Addr() {
		learn = learnNone // probes (sender 0.0.0.0), our own frames, off-subnet senders
	}
	if v, ok := owned.lookup(a.SenderIP); ok && v.link == l.index && a.SenderMAC != l.mac {
		// Another host claims a VIP we own (a stale owner, a split ring, or
		// a spoofer): the caller defends the address (RFC 5227 2.4 (b)).
		return a, arpDecision{reason: DropARPConflict, vip: v}
	}
	switch a.Op {
	case arpRequest:
		if v, ok := owned.lookup(a.TargetIP); ok && v.link == l.index {
			if learn != learnNone {
				learn = learnCreate // it is about to talk to us
			}
			return a, arpDecision{answer: true, learn: learn, vip: v}
		}
		if a.TargetIP == l.primary {
			if learn != learnNone {
				learn = learnCreate
			}
			return a, arpDecision{learn: learn, reason: DropLocal}
		}
		return a, arpDecision{learn: learn, reason: DropARPNotOwned}
	case arpReply:
		// A reply never creates an entry by itself: it resolves a next hop
		// we asked about (the ARP cache has it pending) or refreshes a
		// known one. Unsolicited replies and gratuitous ARP from made-up
		// addresses would otherwise fill the cache (and poison it for hosts
		// we never talk to).
		return a, arpDecision{learn: learn}
	default:
		return a, arpDecision{reason: DropBadARP}
	}
}

// putARPReply writes into f (which must hold minFrame bytes) the reply of l
// for the request req, claiming req.TargetIP, and returns the frame length.
func putARPReply(f []byte, l *linkInfo, req *arpPacket) int {
	rep := arpPacket{Op: arpReply, SenderMAC: l.mac, SenderIP: req.TargetIP, TargetMAC: req.SenderMAC, TargetIP: req.SenderIP}
	return putARPFrame(f, req.SenderMAC, l.mac, &rep)
}

// putARPRequest writes a broadcast request from l's primary address for
// target into f and returns the frame length.
func putARPRequest(f []byte, l *linkInfo, target netip.Addr) int {
	req := arpPacket{Op: arpRequest, SenderMAC: l.mac, SenderIP: l.primary, TargetIP: target}
	return putARPFrame(f, broadcastMAC, l.mac, &req)
}

// putGARP writes a gratuitous ARP for vip from l into f: the request form
// (target MAC zero, RFC 5227 announcement) or the reply form (target = our
// own MAC and address), both broadcast, so hosts that only accept one form
// update their caches.
func putGARP(f []byte, l *linkInfo, vip netip.Addr, reply bool) int {
	a := arpPacket{Op: arpRequest, SenderMAC: l.mac, SenderIP: vip, TargetIP: vip}
	if reply {
		a.Op = arpReply
		a.TargetMAC = l.mac
	}
	return putARPFrame(f, broadcastMAC, l.mac, &a)
}
