package router

import (
	"encoding/binary"
	"net/netip"
)

// plane is the immutable routing context the decisions read: the links and
// the routing table. It is built once by New.
type plane struct {
	links  []linkInfo
	routes *routeTable
}

// ipAction is what to do with one IPv4 packet.
type ipAction uint8

const (
	ipDrop      ipAction = iota // count reason, do nothing else
	ipForward                   // rewrite in place (or fragment, frag), send on out towards nextHop
	ipEcho                      // ICMP echo to an owned VIP: answer in place
	ipLocal                     // other traffic to an owned VIP: deliver to the TUN device
	ipICMPError                 // drop, and send icmpType/icmpCode back to the sender
)

// ipDecision is the outcome of one IPv4 packet.
type ipDecision struct {
	action   ipAction
	reason   DropReason
	out      int        // output link (ipForward)
	nextHop  netip.Addr // ipForward: the host whose MAC the frame goes to
	icmpType uint8      // ipICMPError
	icmpCode uint8
	mtu      int      // ipICMPError fragmentation needed, or frag: the next-hop MTU
	frag     bool     // ipForward: larger than the output MTU without DF, fragment it (frag.go)
	vip      ownedVIP // ipEcho, ipLocal
	hdr      ipv4Header
}

// martianSource reports sources that must never be routed (RFC 1812 5.3.7):
// 0/8, 127/8, multicast, class E and limited broadcast.
func martianSource(a netip.Addr) bool {
	b := a.As4()
	return b[0] == 0 || b[0] == 127 || b[0] >= 224
}

// martianDest reports destinations that are never routed: 0/8, 127/8 and class E.
func martianDest(a netip.Addr) bool {
	b := a.As4()
	return b[0] == 0 || b[0] == 127 || (b[0] >= 240 && a != netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

func isBroadcastOrMulticast(a netip.Addr) bool {
	b := a.As4()
	return a.IsMulticast() || b == [4]byte{255, 255, 255, 255}
}

// decideIPv4 decides what to do with the IPv4 frame f (starting at its
// Ethernet header) received on link in. It reads f and does not modify it.
// gso tells that f is a GSO super-frame (its size is not bounded by the MTU).
func (p *plane) decideIPv4(f []byte, in int, owned *ownedSet, gso bool) ipDecision {
	l := &p.links[in]
	if len(f) < ethHdrLen+ipv4MinHdr {
		return ipDecision{reason: DropTruncated}
	}
	if d := ethDst(f); d != l.mac {
		if d[0]&1 != 0 {
			return ipDecision{reason: DropBroadcast}
		}
		return ipDecision{reason: DropNotOurMAC}
	}
	ip := f[ethHdrLen:]
	h, r := parseIPv4(ip)
	if r != DropNone {
		return ipDecision{reason: r}
	}
	if martianSource(h.src) || p.isPrimary(h.src) {
		return ipDecision{reason: DropMartianSource, hdr: h}
	}
	if isBroadcastOrMulticast(h.dst) {
		return ipDecision{reason: DropBroadcast, hdr: h}
	}
	if martianDest(h.dst) {
		return ipDecision{reason: DropMartianDest, hdr: h}
	}
	if p.isPrimary(h.dst) {
		return ipDecision{reason: DropLocal, hdr: h}
	}
	if v, ok := owned.lookup(h.dst); ok {
		if h.proto == protoICMP && h.fragOff == 0 && !h.moreFrag && h.totalLen >= h.hdrLen+8 && ip[h.hdrLen] == 8 && ip[h.hdrLen+1] == 0 {
			return ipDecision{action: ipEcho, vip: v, hdr: h}
		}
		return ipDecision{action: ipLocal, vip: v, hdr: h}
	}
	if p.isSubnetBroadcast(h.dst) {
		return ipDecision{reason: DropBroadcast, hdr: h}
	}
	if h.ttl <= 1 {
		return icmpError(ip, h, 11, 0, 0, DropTTLExceeded) // time exceeded in transit (RFC 792)
	}
	out, nh, ok := p.routes.lookup(h.dst)
	if !ok {
		return icmpError(ip, h, 3, 0, 0, DropNoRoute) // net unreachable
	}
	if mtu := p.links[out].mtu.get(); !gso && h.totalLen > mtu {
		if h.df {
			return icmpError(ip, h, 3, 4, mtu, DropTooBig) // fragmentation needed (RFC 1191)
		}
		return ipDecision{action: ipForward, out: out, nextHop: nh, hdr: h, frag: true, mtu: mtu} // RFC 1812 5.2.6
	}
	return ipDecision{action: ipForward, out: out, nextHop: nh, hdr: h}
}

// decideLocalOut decides where a packet the local OS wrote to the TUN device
// goes. ip is the IPv4 packet without an Ethernet header. It is routed like
// a forwarded packet, without the TTL decrement: the OS originated it.
func (p *plane) decideLocalOut(ip []byte, gso bool) ipDecision {
	h, r := parseIPv4(ip)
	if r != DropNone {
		return ipDecision{reason: r}
	}
	if isBroadcastOrMulticast(h.dst) || p.isSubnetBroadcast(h.dst) {
		return ipDecision{reason: DropBroadcast, hdr: h}
	}
	if martianDest(h.dst) {
		return ipDecision{reason: DropMartianDest, hdr: h}
	}
	out, nh, ok := p.routes.lookup(h.dst)
	if !ok {
		return ipDecision{reason: DropNoRoute, hdr: h}
	}
	if mtu := p.links[out].mtu.get(); !gso && h.totalLen > mtu {
		if h.df {
			return ipDecision{reason: DropTooBig, hdr: h}
		}
		return ipDecision{action: ipForward, out: out, nextHop: nh, hdr: h, frag: true, mtu: mtu}
	}
	return ipDecision{action: ipForward, out: out, nextHop: nh, hdr: h}
}

// icmpError returns an ipICMPError decision, or a plain drop when RFC 1812
// 4.3.2.7 forbids an error about this packet: it is itself an ICMP error, or
// a non-first fragment.
func icmpError(ip []byte, h ipv4Header, typ, code uint8, mtu int, reason DropReason) ipDecision {
	d := ipDecision{reason: reason, hdr: h}
	if h.fragOff != 0 {
		return d
	}
	if h.proto == protoICMP && h.totalLen > h.hdrLen {
		switch ip[h.hdrLen] {
		case 3, 4, 5, 11, 12: // errors and redirects
			return d
		}
	}
	d.action, d.icmpType, d.icmpCode, d.mtu = ipICMPError, typ, code, mtu
	return d
}

func (p *plane) isPrimary(a netip.Addr) bool {
	for i := range p.links {
		if p.links[i].primary == a {
			return true
		}
	}
	return false
}

// isSubnetBroadcast reports the network and broadcast addresses of the
// connected subnets (for prefixes shorter than /31, RFC 3021).
func (p *plane) isSubnetBroadcast(a netip.Addr) bool {
	x := u32(a)
	for i := range p.links {
		pf := p.links[i].prefix
		if pf.Bits() >= 31 || !pf.Contains(a) {
			continue
		}
		m := maskOf(pf.Bits())
		if x&^m == 0 || x&^m == ^m {
			return true
		}
	}
	return false
}

// rewriteForward turns the received frame f into the frame to send: new
// source and destination MACs, TTL decremented with the header checksum
// updated incrementally (RFC 1624).
func rewriteForward(f []byte, src, dst MAC) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	decTTL(f[ethHdrLen:])
}

// answerEcho turns the echo request frame f (validated by decideIPv4 as h)
// into the echo reply in place, from the VIP to the sender's MAC, and
// returns the reply frame length. The ICMP checksum is recomputed in full:
// the request may arrive with a partial checksum (offload).
func answerEcho(f []byte, l *linkInfo, h ipv4Header) int {
	src := ethSrc(f)
	putEth(f, src, l.mac, ethTypeIPv4)
	ip := f[ethHdrLen : ethHdrLen+h.totalLen]
	var s, d [4]byte
	copy(s[:], ip[12:16])
	copy(d[:], ip[16:20])
	copy(ip[12:16], d[:])
	copy(ip[16:20], s[:])
	ip[8] = 64
	setIPv4Checksum(ip)
	icmp := ip[h.hdrLen:]
	icmp[0] = 0 // echo reply
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, 0))
	return ethHdrLen + h.totalLen
}

// icmpQuoteMax bounds the quoted original datagram so the error fits in 576
// bytes (RFC 1812 4.3.2.3).
const icmpQuoteMax = 576 - ipv4MinHdr - 8

// icmpErrorFrameMax is the largest frame putICMPError writes.
const icmpErrorFrameMax = ethHdrLen + 576

// putICMPError writes into out (icmpErrorFrameMax bytes) an ICMP error of
// type typ/code about the IPv4 packet ip (header h), from l's primary address
// to the original source, addressed to dstMAC, and returns the frame length.
func putICMPError(out []byte, l *linkInfo, dstMAC MAC, ip []byte, h ipv4Header, typ, code uint8, mtu int) int {
	q := min(h.totalLen, icmpQuoteMax, len(ip))
	n := ipv4MinHdr + 8 + q
	putEth(out, dstMAC, l.mac, ethTypeIPv4)
	o := out[ethHdrLen : ethHdrLen+n]
	o[0] = 0x45
	o[1] = 0xc0 // internetwork control precedence, as Linux does for ICMP errors
	binary.BigEndian.PutUint16(o[2:4], uint16(n))
	o[4], o[5], o[6], o[7] = 0, 0, 0, 0
	o[8] = 64
	o[9] = protoICMP
	s := l.primary.As4()
	copy(o[12:16], s[:])
	copy(o[16:20], ip[12:16])
	setIPv4Checksum(o)
	icmp := o[ipv4MinHdr:]
	icmp[0], icmp[1] = typ, code
	icmp[2], icmp[3], icmp[4], icmp[5] = 0, 0, 0, 0
	binary.BigEndian.PutUint16(icmp[6:8], uint16(mtu))
	copy(icmp[8:], ip[:q])
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, 0))
	return ethHdrLen + n
}
