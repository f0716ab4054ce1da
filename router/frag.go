package router

import "encoding/binary"

// IPv4 fragmentation (RFC 791 3.2 "Fragmentation and Reassembly", RFC 1812
// 5.2.6): a packet without DF that is larger than the output link's MTU is
// split into fragments whose data lengths are multiples of 8 bytes (all but
// the last), each with its own header: the first keeps every option, the
// others only the options whose copied flag is set; every fragment but the
// last has MF, the last keeps the original's MF (the packet may itself be a
// fragment); offsets add to the original's; the header checksum is
// recomputed per fragment. GSO super-frames are never fragmented: the output
// device segments them.

const vnetOffCsumOffset = 8

// copiedOptions writes into dst (at least 40 bytes) the options of the
// header ip[:h.hdrLen] that every fragment after the first carries (copied
// flag 0x80 set, RFC 791 3.1), padded with end-of-option-list to a multiple
// of 4, and returns their length; ok is false when the options are
// malformed.
func copiedOptions(dst []byte, ip []byte, h ipv4Header) (n int, ok bool) {
	opts := ip[ipv4MinHdr:h.hdrLen]
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of option list
			break
		}
		if t == 1 { // no operation: not copied
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return 0, false
		}
		l := int(opts[i+1])
		if t&0x80 != 0 {
			n += copy(dst[n:], opts[i:i+l])
		}
		i += l
	}
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n, true
}

// fragSizes returns the data bytes per fragment for a packet with header h
// at link MTU mtu: the first fragment's and the later ones' (whose headers
// carry only laterOpts bytes of options). ok is false when the MTU leaves
// no room for 8 bytes of data.
func fragSizes(h ipv4Header, laterOpts, mtu int) (first, later int, ok bool) {
	first = (mtu - h.hdrLen) &^ 7
	later = (mtu - ipv4MinHdr - laterOpts) &^ 7
	return first, later, first >= 8 && later >= 8
}

// putFragment writes into out the fragment of ip (header h) that carries
// the data bytes [off, off+n) of ip's payload: the full header for the first
// fragment (off 0), else the base header with opts. It returns the
// fragment's length.
func putFragment(out, ip []byte, h ipv4Header, opts []byte, off, n int) int {
	hl := h.hdrLen
	if off == 0 {
		copy(out, ip[:hl])
	} else {
		hl = ipv4MinHdr + len(opts)
		copy(out, ip[:ipv4MinHdr])
		copy(out[ipv4MinHdr:], opts)
		out[0] = 0x40 | byte(hl/4)
	}
	copy(out[hl:hl+n], ip[h.hdrLen+off:h.hdrLen+off+n])
	binary.BigEndian.PutUint16(out[2:4], uint16(hl+n))
	frag := h.fragOff + uint16(off/8)
	if off+n < h.totalLen-h.hdrLen || h.moreFrag {
		frag |= 0x2000 // MF
	}
	binary.BigEndian.PutUint16(out[6:8], frag)
	setIPv4Checksum(out[:hl])
	return hl + n
}

// vnetCompleteCsum finishes a partial L4 checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM)
// in f, the Ethernet frame the header h describes, and clears the flag: a
// packet about to be fragmented can no longer leave the checksum to the
// device. The checksum field holds the pseudo-header sum; the device would
// store the complement of the sum from csum_start to the end. proto is the
// IPv4 protocol (UDP sends a computed 0 as 0xffff, RFC 768). ok is false when
// the offsets point outside f.
func vnetCompleteCsum(h, f []byte, proto uint8) bool {
	if h[vnetOffFlags]&vnetFlagNeedsCsum == 0 {
		return true
	}
	start := int(binary.LittleEndian.Uint16(h[vnetOffCsumStart:]))
	at := start + int(binary.LittleEndian.Uint16(h[vnetOffCsumOffset:]))
	if start >= len(f) || at+2 > len(f) {
		return false
	}
	v := checksum(f[start:], 0)
	if v == 0 && proto == protoUDP {
		v = 0xffff
	}
	binary.BigEndian.PutUint16(f[at:], v)
	h[vnetOffFlags] &^= vnetFlagNeedsCsum
	return true
}
