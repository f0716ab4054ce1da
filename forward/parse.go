package forward

import "encoding/binary"

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// ICMP types (RFC 792).
const (
	icmpEchoReply      = 0
	icmpUnreachable    = 3
	icmpSourceQuench   = 4
	icmpRedirect       = 5
	icmpEcho           = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmpTimestamp      = 13
	icmpTimestampReply = 14
)

// packet is what the filter reads of one IPv4 packet. Parsing copies a few
// header fields onto the stack and keeps no reference to the buffer.
type packet struct {
	src, dst     [4]byte
	proto        uint8
	sport, dport uint16 // TCP/UDP ports; ICMP echo: the identifier in both
	flags        uint8  // TCP flags
	icmpType     uint8
	ipID         uint16
	fragOff      uint16 // in 8-byte units
	moreFrags    bool
	hasL4        bool // the L4 header is present (not a non-first fragment)
	size         int  // total length
	// inner is the flow an ICMP error quotes (its original packet's
	// endpoints, as that packet travelled); valid when quoted is true.
	quoted bool
	inner  struct {
		src, dst     [4]byte
		proto        uint8
		sport, dport uint16
	}
}

// parse reads the IPv4 packet b (from its IP header on). It reports false
// for a packet too short or inconsistent to decide on.
func parse(b []byte, p *packet) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || len(b) < total {
		return false
	}
	b = b[:total]
	p.size = total
	p.proto = b[9]
	copy(p.src[:], b[12:16])
	copy(p.dst[:], b[16:20])
	p.ipID = binary.BigEndian.Uint16(b[4:6])
	ff := binary.BigEndian.Uint16(b[6:8])
	p.fragOff = ff & 0x1fff
	p.moreFrags = ff&0x2000 != 0
	if p.fragOff != 0 {
		return true // a non-first fragment: no L4 header
	}
	l4 := b[ihl:]
	switch p.proto {
	case protoTCP:
		if len(l4) < 20 {
			return false
		}
		p.sport, p.dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		p.flags = l4[13]
	case protoUDP:
		if len(l4) < 8 {
			return false
		}
		p.sport, p.dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	case protoICMP:
		if len(l4) < 8 {
			return false
		}
		p.icmpType = l4[0]
		switch p.icmpType {
		case icmpEcho, icmpEchoReply:
			id := binary.BigEndian.Uint16(l4[4:6])
			p.sport, p.dport = id, id
		case icmpUnreachable, icmpSourceQuench, icmpRedirect, icmpTimeExceeded, icmpParamProblem:
			p.quoted = parseQuoted(l4[8:], p)
		}
	}
	p.hasL4 = true
	return true
}

// parseQuoted reads the original datagram an ICMP error quotes (RFC 792:
// its IP header and at least 8 bytes of its payload, RFC 1812 4.3.2.3 asks
// for more). Only the endpoints are needed.
func parseQuoted(q []byte, p *packet) bool {
	if len(q) < 20 || q[0]>>4 != 4 {
		return false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+8 {
		return false
	}
	if binary.BigEndian.Uint16(q[6:8])&0x1fff != 0 {
		return false // quotes a non-first fragment: no ports to match
	}
	in := &p.inner
	in.proto = q[9]
	copy(in.src[:], q[12:16])
	copy(in.dst[:], q[16:20])
	l4 := q[ihl:]
	switch in.proto {
	case protoTCP, protoUDP:
		in.sport, in.dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	case protoICMP:
		if l4[0] != icmpEcho && l4[0] != icmpEchoReply {
			return false // errors about errors are never sent (RFC 1122 3.2.2)
		}
		id := binary.BigEndian.Uint16(l4[4:6])
		in.sport, in.dport = id, id
	default:
		return false
	}
	return true
}
