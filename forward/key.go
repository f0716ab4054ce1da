package forward

import "net/netip"

// IP protocol numbers.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// Key is a flow's canonical identity: the two endpoints ordered so that
// both directions of a flow have the same key ((A, PA) ≤ (B, PB)). For ICMP
// echo both ports hold the echo identifier, so a request and its reply
// share the key. Comparable and fixed-size: a map key with no allocation.
type Key struct {
	A, B   [4]byte
	PA, PB uint16
	Proto  uint8
}

// keyOf returns the canonical key of a packet from src:sport to dst:dport,
// and whether src is the key's A side.
func keyOf(proto uint8, src, dst [4]byte, sport, dport uint16) (Key, bool) {
	if less(src, sport, dst, dport) {
		return Key{A: src, B: dst, PA: sport, PB: dport, Proto: proto}, true
	}
	return Key{A: dst, B: src, PA: dport, PB: sport, Proto: proto}, false
}

// less orders endpoints: by address, then port. Equal endpoints (a packet
// to itself) make src the A side.
func less(a [4]byte, pa uint16, b [4]byte, pb uint16) bool {
	ua := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	ub := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if ua != ub {
		return ua < ub
	}
	return pa <= pb
}

// hash mixes a key for shard selection (not for security: the shards only
// spread lock contention; each shard's map has its own seeded hash).
func (k Key) hash() uint32 {
	h := uint32(2166136261)
	for _, b := range k.A {
		h = (h ^ uint32(b)) * 16777619
	}
	for _, b := range k.B {
		h = (h ^ uint32(b)) * 16777619
	}
	h = (h ^ uint32(k.PA)) * 16777619
	h = (h ^ uint32(k.PB)) * 16777619
	h = (h ^ uint32(k.Proto)) * 16777619
	return h ^ h>>16
}

// keyLen is the length of a Key's wire form (put).
const keyLen = 13

// put writes the key's wire form into b[:13]: A, B, PA and PB big-endian,
// Proto. The flow directory hashes these bytes and the tunnel carries them,
// so every node agrees on them whatever its byte order.
func (k *Key) put(b []byte) {
	_ = b[keyLen-1]
	copy(b[0:4], k.A[:])
	copy(b[4:8], k.B[:])
	b[8], b[9] = byte(k.PA>>8), byte(k.PA)
	b[10], b[11] = byte(k.PB>>8), byte(k.PB)
	b[12] = k.Proto
}

// get reads a key's wire form from b[:13].
func (k *Key) get(b []byte) {
	_ = b[keyLen-1]
	copy(k.A[:], b[0:4])
	copy(k.B[:], b[4:8])
	k.PA = uint16(b[8])<<8 | uint16(b[9])
	k.PB = uint16(b[10])<<8 | uint16(b[11])
	k.Proto = b[12]
}

// KeyOf returns the canonical key of the flow of a packet of protocol
// proto from src to dst (IPv4 addresses; ICMP echo: both ports the echo
// identifier): the key the directory and the tunnel know the flow by.
func KeyOf(proto uint8, src, dst netip.AddrPort) Key {
	k, _ := keyOf(proto, src.Addr().As4(), dst.Addr().As4(), src.Port(), dst.Port())
	return k
}
