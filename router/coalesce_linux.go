package router

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// Coalescing at the handler. The segments of a TCP flow that crossed the
// tunnel arrive in bursts of consecutive segments (the sender's tunnel
// batches them, UDP GRO hands them over together). Sending each as its own
// frame costs the handler a pass through the kernel's packet socket per
// segment; the tunnel worker instead grows the first segment's receive
// slot with the payloads of the next ones and sends the run as one TCP GSO
// super-frame, which the kernel cuts back into the same segments at the
// NIC (wireguard-go's TUN GRO does the same for its TUN device).
//
// A run only ever holds segments the filter passed one by one, in order,
// that the kernel's segmentation turns back into the very same packets:
// one flow, consecutive sequence numbers and IP ids, every header byte
// equal but the sequence number, IP id, lengths and checksums, each
// segment as long as the first but the last, flags ACK (and PSH, which
// ends the run: it may only be on the last segment), DF set, no IP
// options.

// tcpRun is the run the tunnel worker is building.
type tcpRun struct {
	frame   []byte // the first segment's frame (virtio-net, Ethernet, IPv4), grown; nil when no run is open
	out     int    // the link it leaves by
	nextHop netip.Addr
	ihl, hl int    // IPv4 header length; IPv4 and TCP header length
	size    int    // payload bytes of each segment but the last
	n       int    // segments in the run
	nextSeq uint32 // the sequence number the next segment must have
	nextID  uint16 // the IP id the next segment must have
}

// TCP flags (tcpFlagFIN, tcpFlagPSH and tcpFlagCWR are in redirect.go).
const tcpFlagACK = 0x10

// tcpMerge reports whether the IPv4 packet ip can be part of a run, and
// its header lengths and payload size.
func tcpMerge(ip []byte) (ihl, hl, payload int, ok bool) {
	if len(ip) < ipv4MinHdr+20 || ip[0] != 0x45 || ip[9] != protoTCP {
		return 0, 0, 0, false
	}
	// DF, neither MF nor a fragment offset.
	if binary.BigEndian.Uint16(ip[6:8]) != 0x4000 {
		return 0, 0, 0, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	hl = ipv4MinHdr + int(ip[ipv4MinHdr+12]>>4)*4
	if total != len(ip) || hl < ipv4MinHdr+20 || hl >= total {
		return 0, 0, 0, false
	}
	if ip[ipv4MinHdr+13]&^tcpFlagPSH != tcpFlagACK {
		return 0, 0, 0, false
	}
	return ipv4MinHdr, hl, total - hl, true
}

// open reports whether a run is being built.
func (r *tcpRun) open() bool { return r.frame != nil }

// start opens a run with the segment in frame (ip at tunnelOffset), which
// tcpMerge accepted, leaving by out to nextHop. A segment with PSH opens
// no run: it reports false and the caller sends it alone.
func (r *tcpRun) start(frame []byte, out int, nextHop netip.Addr, ihl, hl, payload int) bool {
	ip := frame[tunnelOffset:]
	if ip[ihl+13]&tcpFlagPSH != 0 {
		return false
	}
	*r = tcpRun{frame: frame, out: out, nextHop: nextHop, ihl: ihl, hl: hl, size: payload, n: 1,
		nextSeq: binary.BigEndian.Uint32(ip[ihl+4:]) + uint32(payload),
		nextID:  binary.BigEndian.Uint16(ip[4:]) + 1}
	return true
}

// add appends the segment ip (which tcpMerge accepted with hl and payload)
// to the run when it continues it; ended says the run must be sent now
// (PSH, or a short last segment). It reports false, changing nothing,
// when ip does not continue the run.
func (r *tcpRun) add(ip []byte, out int, nextHop netip.Addr, hl, payload int) (added, ended bool) {
	first := r.frame[tunnelOffset:]
	ihl := r.ihl
	switch {
	case out != r.out || nextHop != r.nextHop || hl != r.hl || payload > r.size:
		return false, false
	case len(first)+payload > 0xffff || len(r.frame)+payload > cap(r.frame):
		return false, false
	case binary.BigEndian.Uint32(ip[ihl+4:]) != r.nextSeq || binary.BigEndian.Uint16(ip[4:]) != r.nextID:
		return false, false
	// TOS; TTL and protocol; addresses; ports; ack; offset; window and
	// urgent pointer; options. The flags differ at most by PSH.
	case ip[1] != first[1] || !bytes.Equal(ip[8:10], first[8:10]) || !bytes.Equal(ip[12:20], first[12:20]),
		!bytes.Equal(ip[ihl:ihl+4], first[ihl:ihl+4]) || !bytes.Equal(ip[ihl+8:ihl+13], first[ihl+8:ihl+13]),
		!bytes.Equal(ip[ihl+14:ihl+16], first[ihl+14:ihl+16]) || !bytes.Equal(ip[ihl+18:hl], first[ihl+18:hl]):
		return false, false
	}
	n := len(r.frame)
	r.frame = r.frame[:n+payload]
	copy(r.frame[n:], ip[hl:])
	r.n++
	r.nextSeq += uint32(payload)
	r.nextID++
	psh := ip[ihl+13]&tcpFlagPSH != 0
	if psh {
		first[ihl+13] |= tcpFlagPSH
	}
	return true, psh || payload < r.size
}

// finish makes the run's frame one TCP GSO super-frame (a run of one
// segment stays as it is: its checksums are complete) and closes the run.
// It returns the frame to send and whether the link's MTU allowed it
// (always, for segments that were each forwardable: it is checked again).
func (r *tcpRun) finish(mtu int) (frame []byte, ok bool) {
	frame, n := r.frame, r.n
	r.frame = nil
	if n == 1 {
		return frame, true
	}
	ip := frame[tunnelOffset:]
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
	setIPv4Checksum(ip)
	// The TCP checksum field holds the pseudo-header's sum over the whole
	// super-packet's TCP length, not complemented (CHECKSUM_PARTIAL): the
	// kernel adjusts it to each segment's length and adds the segment.
	tcp := ip[r.ihl:]
	binary.BigEndian.PutUint16(tcp[16:], fold(sum16(ip[12:20], uint32(protoTCP)+uint32(len(tcp)))))
	h := frame[:vnetHdrLen]
	if !vnetSetTCPGSO(h, ip, Segments{GSOType: vnetGSOTCPv4, Size: uint16(r.size)}, mtu) {
		return frame, false
	}
	return frame, true
}
