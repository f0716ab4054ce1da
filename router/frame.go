package router

import (
	"encoding/binary"
	"io"
	"net/netip"
)

// Frame layout constants. Offsets are from the start of the Ethernet header.
const (
	ethHdrLen   = 14
	ethTypeIPv4 = 0x0800
	ethTypeARP  = 0x0806
	ipv4MinHdr  = 20
	arpLen      = 28 // Ethernet/IPv4 ARP body (RFC 826)
	// minFrame is the shortest Ethernet frame on the wire without FCS; ARP
	// replies are padded to it.
	minFrame = 60

	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// MAC is an Ethernet address as a comparable value (net.HardwareAddr only at
// the edge).
type MAC [6]byte

var broadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (m MAC) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, v := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[v>>4], hex[v&0xf])
	}
	return string(b)
}

// ethDst, ethSrc and ethType read the Ethernet header; callers check
// len(f) >= ethHdrLen first.
func ethDst(f []byte) MAC     { return MAC(f[0:6]) }
func ethSrc(f []byte) MAC     { return MAC(f[6:12]) }
func ethType(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:14]) }
func putEth(f []byte, dst, src MAC, typ uint16) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], typ)
}

// addr4 reads an IPv4 address at b[0:4].
func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[0:4])) }

// ipv4Header is a validated view of an IPv4 header inside a frame.
type ipv4Header struct {
	hdrLen   int // bytes, from IHL
	totalLen int // bytes, from the header (the frame may carry padding)
	proto    uint8
	ttl      uint8
	src, dst netip.Addr
	fragOff  uint16 // offset in 8-byte units
	moreFrag bool
	df       bool
}

// parseIPv4 validates the IPv4 header at p (the frame without its Ethernet
// header). It does not allocate. gso tells that the packet is a GSO
// super-frame whose total length may exceed what one header field can say.
func parseIPv4(p []byte) (ipv4Header, DropReason) {
	var h ipv4Header
	if len(p) < ipv4MinHdr {
		return h, DropTruncated
	}
	if p[0]>>4 != 4 {
		return h, DropBadIPHeader
	}
	h.hdrLen = int(p[0]&0x0f) * 4
	if h.hdrLen < ipv4MinHdr || len(p) < h.hdrLen {
		return h, DropBadIPHeader
	}
	h.totalLen = int(binary.BigEndian.Uint16(p[2:4]))
	if h.totalLen < h.hdrLen || h.totalLen > len(p) {
		return h, DropBadIPHeader
	}
	if checksum(p[:h.hdrLen], 0) != 0 {
		return h, DropBadIPChecksum
	}
	frag := binary.BigEndian.Uint16(p[6:8])
	h.df = frag&0x4000 != 0
	h.moreFrag = frag&0x2000 != 0
	h.fragOff = frag & 0x1fff
	h.ttl = p[8]
	h.proto = p[9]
	h.src = addr4(p[12:16])
	h.dst = addr4(p[16:20])
	return h, DropNone
}

// arpPacket is an Ethernet/IPv4 ARP body (RFC 826).
type arpPacket struct {
	Op        uint16
	SenderMAC MAC
	SenderIP  netip.Addr
	TargetMAC MAC
	TargetIP  netip.Addr
}

const (
	arpRequest = 1
	arpReply   = 2
)

// UnmarshalBinary decodes an ARP body (without the Ethernet header). It
// returns io.ErrUnexpectedEOF on short input and errBadARP for hardware or
// protocol types other than Ethernet/IPv4.
func (a *arpPacket) UnmarshalBinary(b []byte) error {
	if len(b) < arpLen {
		return io.ErrUnexpectedEOF
	}
	if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != ethTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		return errBadARP
	}
	a.Op = binary.BigEndian.Uint16(b[6:8])
	a.SenderMAC = MAC(b[8:14])
	a.SenderIP = addr4(b[14:18])
	a.TargetMAC = MAC(b[18:24])
	a.TargetIP = addr4(b[24:28])
	return nil
}

// MarshalBinary encodes the ARP body.
func (a *arpPacket) MarshalBinary() ([]byte, error) {
	b := make([]byte, arpLen)
	a.put(b)
	return b, nil
}

// put writes the ARP body into b[0:28] without allocating.
func (a *arpPacket) put(b []byte) {
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], ethTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], a.Op)
	copy(b[8:14], a.SenderMAC[:])
	put4(b[14:18], a.SenderIP)
	copy(b[18:24], a.TargetMAC[:])
	put4(b[24:28], a.TargetIP)
}

// put4 writes an IPv4 address, or 0.0.0.0 for the zero Addr (ARP probes).
func put4(b []byte, a netip.Addr) {
	if !a.Is4() {
		clear(b[:4])
		return
	}
	v := a.As4()
	copy(b[:4], v[:])
}

// putARPFrame writes a complete Ethernet ARP frame, padded to minFrame, into
// f and returns its length. f must hold minFrame bytes.
func putARPFrame(f []byte, ethDst, ethSrc MAC, a *arpPacket) int {
	putEth(f, ethDst, ethSrc, ethTypeARP)
	a.put(f[ethHdrLen:])
	clear(f[ethHdrLen+arpLen : minFrame])
	return minFrame
}
