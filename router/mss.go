package router

import "encoding/binary"

// The tunnel's overhead lowers the path MTU of a tunnelled flow
// (docs/forward.md "The tunnel and the path MTU"): a packet redirected to
// another node travels inside a tunnel datagram that adds
// Config.TunnelOverhead bytes (76: outer IPv4 and UDP headers, the tunnel
// header and the AEAD tag). Two measures keep tunnelled packets within the
// links' MTU, so the kernel never fragments the outer datagram:
//   - the MSS option of every TCP SYN and SYN-ACK the filter passes is
//     clamped to the tunnel MTU less 40 (RFC 879: MSS = MTU - 40 without
//     options), so both ends send segments that fit when tunnelled. Any of
//     a flow's packets may be tunnelled (its replies arrive at another
//     node, or a fail-over moves a VIP), and which ones is not known at
//     the SYN, so every TCP flow through a node with a tunnel is clamped;
//   - a packet to be tunnelled that is larger than the tunnel MTU and has
//     DF set is dropped and its sender gets ICMP fragmentation needed with
//     the tunnel MTU (RFC 1191), which is how a path MTU is learnt. Without
//     DF the outer datagram is fragmented by the kernel, as before.

// ipv4MinMTU is the smallest MTU every IPv4 link must carry (RFC 791).
const ipv4MinMTU = 68

// tcpOptMSS is the TCP option kind of the maximum segment size (RFC 793).
const (
	tcpOptEnd  = 0
	tcpOptNOP  = 1
	tcpOptMSS  = 2
	tcpFlagSYN = 0x02
)

// clampMSS lowers the MSS option of the TCP SYN or SYN-ACK ip (IPv4 header
// on, not a fragment) to max if it is larger, and reports whether it did.
// With partial set the TCP checksum is left for the device to complete (it
// covers the option when computed), else it is updated incrementally (RFC
// 1624). A packet that is not a SYN, has no MSS option or malformed options
// is left alone. It does not allocate.
func clampMSS(ip []byte, max uint16, partial bool) bool {
	if len(ip) < ipv4MinHdr || ip[9] != protoTCP || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
		return false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < ipv4MinHdr || len(ip) < ihl+20 {
		return false
	}
	t := ip[ihl:]
	if t[13]&tcpFlagSYN == 0 {
		return false
	}
	thl := int(t[12]>>4) * 4
	if thl < 20 || thl > len(t) {
		return false
	}
	opts := t[20:thl]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case tcpOptEnd:
			return false
		case tcpOptNOP:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return false
		}
		if opts[i] == tcpOptMSS && opts[i+1] == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= max {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], max)
			if !partial {
				// HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
				sum := uint32(^binary.BigEndian.Uint16(t[16:])) + uint32(^old) + uint32(max)
				for sum > 0xffff {
					sum = sum>>16 + sum&0xffff
				}
				binary.BigEndian.PutUint16(t[16:], ^uint16(sum))
			}
			return true
		}
		i += int(opts[i+1])
	}
	return false
}
