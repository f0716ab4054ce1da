package ringnet

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ringway/ringway/internal/keys"
)

// Datagram layout (see doc.go for the drawing). All integers are big-endian.
const (
	// Version is the datagram format version carried in byte 0. Version 2
	// added the boot's 64 random bits (Header.Salt); version 3 the echo of
	// the receiver's boot (Header.Echo) and the announce kind. Datagrams of
	// another version are dropped as DropVersion.
	Version = 3
	// HeaderLen is the length of the cleartext, authenticated header.
	HeaderLen = 40
	// TagLen is the length of the AES-GCM authentication tag.
	TagLen = 16
	// Overhead is what the driver adds to each core payload on the wire
	// (not counting the IP and UDP headers).
	Overhead = HeaderLen + TagLen
	// MaxDatagram is the largest datagram the driver sends or accepts.
	MaxDatagram = MaxPacket + Overhead
	// KeyLen is the cluster key length: AES-256.
	KeyLen = 32
	// MaxPaths is the largest number of redundant paths (the path index is one byte).
	MaxPaths = 255
)

// kdfInfo prefixes the HKDF info string that derives a per-(sender, boot) key
// from the cluster key. Changing the format changes this string.
const kdfInfo = "ringway ring datagram v3"

// Kind says what a datagram carries.
type Kind uint8

const (
	// KindCore carries one core payload (ring.Packet.Data).
	KindCore Kind = 0
	// KindAnnounce carries nothing: the driver's own datagram that tells
	// the receiver this boot (in the header) and echoes the receiver's.
	// A driver sends one to every peer when it starts, and answers a
	// datagram that is not fresh with one, so that both ends learn each
	// other's current boot (see "Freshness" in doc.go).
	KindAnnounce Kind = 1
)

// Header is the cleartext part of a datagram. It is authenticated (it is the
// AES-GCM additional data) but not encrypted.
type Header struct {
	Version uint8
	Path    uint8  // index of the subnet the datagram was sent on
	From    NodeID // sender
	To      NodeID // receiver
	Kind    Kind
	Boot    uint64 // sender's boot time: ms since the Unix epoch << 16 | 16 random bits (orders boots)
	Salt    uint64 // 64 random bits of the sender's boot, never 0: with Boot, the boot id
	Counter uint64 // per-boot packet counter, starts at 1, never repeats
	// Echo is the receiver's Salt as the sender last learnt it from an
	// authentic datagram of the receiver, 0 when it has none. The receiver
	// lets only datagrams that echo its current boot's salt reach the core:
	// that proves they were sent after the sender heard from this boot.
	Echo uint64
}

// errShort is returned for input shorter than a header plus a tag.
var errShort = io.ErrUnexpectedEOF

// MarshalBinary encodes the header into its 40 wire bytes.
func (h Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, HeaderLen)
	h.put(b)
	return b, nil
}

// UnmarshalBinary decodes a header from the first 40 bytes of b. It returns
// io.ErrUnexpectedEOF when b is shorter and an error for an unknown version,
// an unknown kind, a non-zero reserved byte or a zero counter or salt.
func (h *Header) UnmarshalBinary(b []byte) error {
	r := parseHeader(b, h)
	switch r {
	case DropNone:
		return nil
	case DropShort:
		return errShort
	default:
		return fmt.Errorf("ringnet header: %v", r)
	}
}

func (h *Header) put(b []byte) {
	_ = b[HeaderLen-1]
	b[0] = h.Version
	b[1] = h.Path
	binary.BigEndian.PutUint16(b[2:], uint16(h.From))
	binary.BigEndian.PutUint16(b[4:], uint16(h.To))
	b[6] = byte(h.Kind)
	b[7] = 0 // reserved
	binary.BigEndian.PutUint64(b[8:], h.Boot)
	binary.BigEndian.PutUint64(b[16:], h.Salt)
	binary.BigEndian.PutUint64(b[24:], h.Counter)
	binary.BigEndian.PutUint64(b[32:], h.Echo)
}

// parseHeader decodes the header of datagram b and checks its length bounds.
// It returns DropNone when the header is well formed.
func parseHeader(b []byte, h *Header) DropReason {
	if len(b) < HeaderLen {
		return DropShort
	}
	h.Version = b[0]
	h.Path = b[1]
	h.From = NodeID(binary.BigEndian.Uint16(b[2:]))
	h.To = NodeID(binary.BigEndian.Uint16(b[4:]))
	h.Kind = Kind(b[6])
	h.Boot = binary.BigEndian.Uint64(b[8:])
	h.Salt = binary.BigEndian.Uint64(b[16:])
	h.Counter = binary.BigEndian.Uint64(b[24:])
	h.Echo = binary.BigEndian.Uint64(b[32:])
	if h.Version != Version {
		return DropVersion
	}
	if h.Kind > KindAnnounce || b[7] != 0 || h.Counter == 0 || h.Salt == 0 {
		return DropMalformed
	}
	return DropNone
}

// deriveAEAD returns the AES-256-GCM instance for datagrams sent by node from
// during boot (boot, salt). Each (sender, boot) pair has its own key, so the 96-bit
// nonce (4 zero bytes and the 64-bit counter) never repeats under one key, even
// across restarts and across senders sharing the cluster key.
func deriveAEAD(clusterKey []byte, from NodeID, boot, salt uint64) (cipher.AEAD, error) {
	var info [len(kdfInfo) + 18]byte
	copy(info[:], kdfInfo)
	binary.BigEndian.PutUint16(info[len(kdfInfo):], uint16(from))
	binary.BigEndian.PutUint64(info[len(kdfInfo)+2:], boot)
	binary.BigEndian.PutUint64(info[len(kdfInfo)+10:], salt)
	return keys.GCM(clusterKey, info[:])
}

func nonceFor(n *[12]byte, counter uint64) {
	*n = [12]byte{}
	binary.BigEndian.PutUint64(n[4:], counter)
}

// sealer seals the datagrams of one boot of one node. It is not safe for
// concurrent use: the driver has one per path, used by whichever goroutine
// holds that path's send turn, and numbers the datagrams itself (sealAs).
type sealer struct {
	from    NodeID
	boot    uint64
	salt    uint64
	counter uint64
	aead    cipher.AEAD
	nonce   [12]byte // here, not on the stack: it would escape through the interface call
}

func newSealer(clusterKey []byte, from NodeID, boot, salt uint64) (*sealer, error) {
	a, err := deriveAEAD(clusterKey, from, boot, salt)
	if err != nil {
		return nil, err
	}
	return &sealer{from: from, boot: boot, salt: salt, aead: a}, nil
}

// errPayloadTooLarge is returned by seal for a payload over MaxPacket.
var errPayloadTooLarge = errors.New("payload larger than ring.MaxPacket")

// seal appends the core datagram carrying payload, numbered with the
// sealer's next counter and echoing echo (the receiver's salt as this node
// knows it, or 0), to dst[:0] and returns it. dst should have capacity
// MaxDatagram to avoid allocating.
func (s *sealer) seal(dst []byte, to NodeID, path int, payload []byte, echo uint64) ([]byte, error) {
	if path < 0 || path >= MaxPaths {
		return nil, fmt.Errorf("path %d out of range", path)
	}
	s.counter++
	return s.sealAs(dst, Header{To: to, Path: uint8(path), Kind: KindCore, Counter: s.counter, Echo: echo}, payload)
}

// sealAs seals payload under the header h with this sealer's version,
// sender and boot filled in: the caller gives the receiver, path, kind,
// echo and the counter, and guarantees that no two datagrams of this boot
// get the same counter (the nonce). An announce carries no payload.
func (s *sealer) sealAs(dst []byte, h Header, payload []byte) ([]byte, error) {
	if len(payload) > MaxPacket {
		return nil, errPayloadTooLarge
	}
	if h.Kind == KindAnnounce && len(payload) != 0 {
		return nil, errors.New("announce with a payload")
	}
	if int(h.Path) >= MaxPaths {
		return nil, fmt.Errorf("path %d out of range", h.Path)
	}
	counter := h.Counter
	h.Version, h.From, h.Boot, h.Salt = Version, s.from, s.boot, s.salt
	if cap(dst) < MaxDatagram {
		dst = make([]byte, 0, MaxDatagram)
	}
	dst = dst[:HeaderLen]
	h.put(dst)
	nonceFor(&s.nonce, counter)
	return s.aead.Seal(dst, s.nonce[:], payload, dst[:HeaderLen]), nil
}
