package router

import "encoding/binary"

// The virtio-net header (struct virtio_net_hdr, include/uapi/linux/virtio_net.h)
// that AF_PACKET (PACKET_VNET_HDR) and TUN (IFF_VNET_HDR) put in front of
// every packet. It says whether the L4 checksum is still to be completed
// (partial, from CHECKSUM_PARTIAL) and whether the packet is a GSO
// super-frame. Multi-byte fields are in host order; ringway supports
// little-endian hosts only (amd64, arm64).
const (
	vnetHdrLen         = 10
	vnetFlagNeedsCsum  = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetFlagDataValid  = 2 // VIRTIO_NET_HDR_F_DATA_VALID (receive only)
	vnetOffFlags       = 0
	vnetOffGSOType     = 1
	vnetOffHdrLen      = 2
	vnetOffCsumStart   = 6
	vnetGSONone        = 0
	vnetHeadroomForTUN = ethHdrLen // bytes between the two header positions
)

// vnetIsGSO reports whether the header describes a GSO super-frame.
func vnetIsGSO(h []byte) bool { return h[vnetOffGSOType] != vnetGSONone }

// vnetForTx prepares a received header for transmission: DATA_VALID is a
// receive-only flag.
func vnetForTx(h []byte) { h[vnetOffFlags] &^= vnetFlagDataValid }

// vnetShift moves csum_start and hdr_len by delta bytes, for a packet that
// gains or loses an Ethernet header between AF_PACKET (offsets from the
// Ethernet header) and TUN (offsets from the IPv4 header).
func vnetShift(h []byte, delta int) {
	if h[vnetOffFlags]&vnetFlagNeedsCsum != 0 {
		shift16(h[vnetOffCsumStart:], delta)
	}
	if binary.LittleEndian.Uint16(h[vnetOffHdrLen:]) != 0 {
		shift16(h[vnetOffHdrLen:], delta)
	}
}

func shift16(b []byte, delta int) {
	v := int(binary.LittleEndian.Uint16(b)) + delta
	binary.LittleEndian.PutUint16(b, uint16(max(v, 0)))
}
