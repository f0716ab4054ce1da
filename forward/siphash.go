package forward

import (
	"encoding/binary"
	"math/bits"
)

// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012): a keyed 64-bit PRF for short inputs. The flow directory uses it so
// that nobody without the cluster key can predict which row, and so which
// node, a flow lands on (and so cannot aim a flood of flows at one node).
//
// It is written here rather than taken from a module: it is 60 lines,
// checked against all 64 reference vectors of the authors' vectors.h
// (siphash_test.go), and the directory needs a fixed-size variant
// (sipRank) that no general-purpose package offers.

// sipKey is a SipHash key: k0 and k1 are the key's bytes 0-7 and 8-15,
// little-endian, as in the paper.
type sipKey struct{ k0, k1 uint64 }

func sipKeyOf(b []byte) sipKey {
	return sipKey{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// init returns SipHash's initial state for key k.
func (k sipKey) init() (v0, v1, v2, v3 uint64) {
	return k.k0 ^ 0x736f6d6570736575, k.k1 ^ 0x646f72616e646f6d, k.k0 ^ 0x6c7967656e657261, k.k1 ^ 0x7465646279746573
}

// compress absorbs one 8-byte word with SipHash-2-4's two rounds.
func compress(v0, v1, v2, v3, w uint64) (uint64, uint64, uint64, uint64) {
	v3 ^= w
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ w, v1, v2, v3
}

// finish absorbs the last word (the message's tail and its length) and
// runs SipHash-2-4's four finalization rounds.
func finish(v0, v1, v2, v3, last uint64) uint64 {
	v0, v1, v2, v3 = compress(v0, v1, v2, v3, last)
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// sum64 is SipHash-2-4 of m under key k.
func (k sipKey) sum64(m []byte) uint64 {
	v0, v1, v2, v3 := k.init()
	last := uint64(len(m)) << 56
	for len(m) >= 8 {
		v0, v1, v2, v3 = compress(v0, v1, v2, v3, binary.LittleEndian.Uint64(m))
		m = m[8:]
	}
	for i, b := range m {
		last |= uint64(b) << (8 * i)
	}
	return finish(v0, v1, v2, v3, last)
}

// sum4 is SipHash-2-4 of the 4-byte message a ‖ b (each little-endian),
// equal to sum64 of those bytes but with the message packed in a register:
// the directory computes 65,536 × members of these per rebuild.
func (k sipKey) sum4(a, b uint16) uint64 {
	v0, v1, v2, v3 := k.init()
	return finish(v0, v1, v2, v3, 4<<56|uint64(b)<<16|uint64(a))
}
