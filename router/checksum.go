package router

import "encoding/binary"

// checksum returns the Internet checksum (RFC 1071) of b folded with the
// initial partial sum: the one's complement of the one's complement sum. A
// header that carries a correct checksum sums to zero.
func checksum(b []byte, initial uint32) uint16 {
	return ^fold(sum16(b, initial))
}

// sum16 adds b as big-endian 16-bit words to s without folding.
func sum16(b []byte, s uint32) uint32 {
	sum := uint64(s)
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b[0:4])) + uint64(binary.BigEndian.Uint32(b[4:8]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>32 != 0 {
		sum = (sum & 0xffffffff) + sum>>32
	}
	// Fold the 32-bit value into 16 bits twice to absorb carries.
	s32 := uint32(sum)
	return s32
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = (s & 0xffff) + s>>16
	}
	return uint16(s)
}

// csumUpdate16 returns the checksum hc after one 16-bit word of the covered
// data changed from old to new, by RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m').
func csumUpdate16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	return ^fold(s)
}

// decTTL decrements the TTL of the IPv4 header ip in place and updates its
// checksum incrementally (RFC 1624): TTL is the high byte of the word at
// offset 8, so the word drops by 0x0100.
func decTTL(ip []byte) {
	old := binary.BigEndian.Uint16(ip[8:10])
	ip[8]--
	nw := binary.BigEndian.Uint16(ip[8:10])
	hc := binary.BigEndian.Uint16(ip[10:12])
	binary.BigEndian.PutUint16(ip[10:12], csumUpdate16(hc, old, nw))
}

// setIPv4Checksum recomputes the header checksum of ip from scratch.
func setIPv4Checksum(ip []byte) {
	hl := int(ip[0]&0x0f) * 4
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip[:hl], 0))
}
