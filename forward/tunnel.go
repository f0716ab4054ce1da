package forward

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// The tunnel carries packets and flow ownership between nodes (DESIGN.md
// "The tunnel"; the patent's Figure 17 arrows 1710, 1716, 1718 and 1722).
// Every datagram is one header, authenticated but in clear, and a payload
// sealed with AES-256-GCM (seal.go). Integers are big-endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+---------------+---------------+---------------+ ─┐
//	|  version = 1  |     type      |     hops      |  reserved (0) |  │
//	+---------------+---------------+---------------+---------------+  │
//	|        sender node id         |       receiver node id        |  │ base
//	+-------------------------------+-------------------------------+  │ header:
//	|                  membership epoch (64 bits)                   |  │ 32 bytes
//	+---------------------------------------------------------------+  │
//	|                    sender boot id (64 bits)                   |  │
//	+---------------------------------------------------------------+  │
//	|                  packet counter (64 bits, ≥ 1)                |  │
//	+-------------------------------+-------------------------------+ ─┤
//	|        handler node id        |  flow key: A (4 bytes) ...    |  │ flow
//	+-------------------------------+                               |  │ section:
//	:   ... B (4), PA (2), PB (2), protocol (1)                     :  │ 16 bytes,
//	+-----------------------------------------------+---------------+  │ register and
//	|                                               | reserved (0)  |  │ hint, ack only
//	+-----------------------------------------------+---------------+ ─┘
//	:          payload, encrypted (data: the IPv4 packet)           :
//	+---------------------------------------------------------------+
//	|                      GCM tag (128 bits)                       |
//	+---------------------------------------------------------------+
const (
	// TunnelVersion is the format version in byte 0.
	TunnelVersion = 1
	// HeaderLen is the length of the base header, all a data datagram has.
	HeaderLen = 32
	// FlowHeaderLen is the length of the header of a register or hint: the
	// base header and the flow section.
	FlowHeaderLen = HeaderLen + 16
	// TagLen is the length of the AES-GCM tag that ends every datagram.
	TagLen = 16
	// DataOverhead is what the tunnel adds to a redirected packet, not
	// counting the outer IPv4 and UDP headers (28 bytes): the path MTU of a
	// tunnelled flow is the link MTU less 76 bytes.
	DataOverhead = HeaderLen + TagLen
	// TunnelOverhead is what carrying a packet through the tunnel adds on
	// the wire: DataOverhead and the outer IPv4 (20) and UDP (8) headers.
	TunnelOverhead = DataOverhead + 28
	// MaxPayload is the largest payload: an IPv4 packet's largest total
	// length.
	MaxPayload = 65535
	// MaxDatagram is the largest datagram Seal produces and Open accepts.
	MaxDatagram = FlowHeaderLen + MaxPayload + TagLen
	// MaxHops is the largest hop count of a data datagram. The node a
	// packet arrived at sends it with hops 1 to the flow's authoritative
	// node; that node may send it on, with hops 2, to the flow's handler
	// (patent Figure 16, boxes 1602-1604 and 1610-1612). A receiver never
	// sends on a datagram whose hops is MaxHops: it handles it or drops it.
	MaxHops = 2
)

// TunnelType says what a tunnel datagram carries.
type TunnelType uint8

// Tunnel datagram types. 0 is invalid; types above TypeDataGSO are
// refused as malformed.
const (
	// TypeData carries a redirected IPv4 packet (header on) as payload.
	TypeData TunnelType = 1
	// TypeRegister tells the flow's authoritative node "flow Flow is
	// handled by node Handler" (normally the sender itself: the node that
	// saw the flow's first packet). No payload.
	TypeRegister TunnelType = 2
	// TypeHint tells the node a packet arrived at "flow Flow is handled
	// by node Handler": send its later packets there directly (patent
	// Figure 16, box 1614). No payload.
	TypeHint TunnelType = 3
	// TypeAck tells the node that registered flow Flow "registered: your
	// register of Flow, handled by node Handler, is in my registry". The
	// handler holds a new flow's first packet until it arrives (pfsync's
	// defer, symmetric.go), so a reply that reaches the authoritative
	// node cannot overtake the register. No payload.
	TypeAck TunnelType = 4
	// TypeSync carries a batch of flow state records from a flow's
	// handler to the flow's authoritative node and standby (replicate.go:
	// SyncBatch). No flow section; the payload is the batch.
	TypeSync TunnelType = 5
	// TypeSyncAck acknowledges sync batches by sequence number
	// (replicate.go: SyncAck). No flow section; the payload is the acks.
	TypeSyncAck TunnelType = 6
	// TypeDataGSO carries a redirected TCP GSO super-packet whole (one
	// datagram instead of one per segment; the kernel fragments the
	// outer datagram): the payload is a GSO prefix (GSOPrefixLen bytes,
	// PutGSO, ParseGSO) and the IPv4 packet. Same hops rule as TypeData.
	TypeDataGSO TunnelType = 7
)

func (t TunnelType) String() string {
	switch t {
	case TypeData:
		return "data"
	case TypeRegister:
		return "register"
	case TypeHint:
		return "hint"
	case TypeAck:
		return "ack"
	case TypeSync:
		return "sync"
	case TypeSyncAck:
		return "sync_ack"
	case TypeDataGSO:
		return "data_gso"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// hasFlow reports whether datagrams of type t carry the flow section.
func (t TunnelType) hasFlow() bool { return t == TypeRegister || t == TypeHint || t == TypeAck }

// The GSO prefix of a TypeDataGSO payload, before the IPv4 packet:
//
//	byte 0     GSO type: GSOTCPv4, optionally with GSOECN (the virtio-net
//	           header's gso_type: the packet's CWR goes on its first
//	           segment only)
//	byte 1     reserved, 0
//	bytes 2-3  segment size: TCP payload bytes per segment, 1 to 65535
//
// The receiver sends the packet on as the same super-packet; its TCP
// checksum is partial (the pseudo-header's sum, as the sender's device
// left it), completed by whoever segments it.
const (
	GSOPrefixLen = 4
	GSOTCPv4     = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	GSOECN       = 0x80 // VIRTIO_NET_HDR_GSO_ECN
	// MaxGSOPacket is the largest IPv4 packet a TypeDataGSO datagram
	// carries: the datagram must fit one UDP datagram (65,507 bytes).
	MaxGSOPacket = 65507 - DataOverhead - GSOPrefixLen
)

// PutGSO writes the GSO prefix of a super-packet of GSO type typ
// (GSOTCPv4, optionally | GSOECN) and segment size size into
// b[:GSOPrefixLen].
func PutGSO(b []byte, typ uint8, size uint16) {
	_ = b[GSOPrefixLen-1]
	b[0], b[1] = typ, 0
	binary.BigEndian.PutUint16(b[2:], size)
}

// ParseGSO splits a TypeDataGSO payload into its GSO type, segment size
// and IPv4 packet. ok is false when the prefix breaks a rule (unknown
// type, reserved byte, size 0) or no packet follows it; the packet itself
// is the router's to check, as any packet's.
func ParseGSO(payload []byte) (typ uint8, size uint16, ip []byte, ok bool) {
	if len(payload) <= GSOPrefixLen {
		return 0, 0, nil, false
	}
	typ, size = payload[0], binary.BigEndian.Uint16(payload[2:])
	if typ&^GSOECN != GSOTCPv4 || payload[1] != 0 || size == 0 {
		return 0, 0, nil, false
	}
	return typ, size, payload[GSOPrefixLen:], true
}

// TunnelHeader is the clear part of a tunnel datagram: it is the AES-GCM
// additional data, so it is authenticated with the payload.
type TunnelHeader struct {
	Type     TunnelType
	Hops     uint8  // data: tunnel hops taken, this one included (1..MaxHops); 0 otherwise
	Sender   uint16 // node id of the sender
	Receiver uint16 // node id it is for: a datagram cannot be replayed to another node
	Epoch    uint64 // the sender's membership epoch (MembershipEpoch); 0: none. Judged by the receiver's filter (Step), not by Open
	Boot     uint64 // the sender's boot id: its datagram key is per boot (seal.go)
	Counter  uint64 // per-boot datagram number, from 1; the GCM nonce and the replay window's index
	Handler  uint16 // register, hint and ack: the node that handles Flow
	Flow     Key    // register, hint and ack: the flow, canonical (key.go)
}

// Len returns the length of the header on the wire: HeaderLen or
// FlowHeaderLen.
func (h *TunnelHeader) Len() int {
	if h.Type.hasFlow() {
		return FlowHeaderLen
	}
	return HeaderLen
}

// check returns why h cannot be sent or was not well formed, or TunnelOK.
func (h *TunnelHeader) check() TunnelDrop {
	switch h.Type {
	case TypeData, TypeDataGSO:
		if h.Hops == 0 || h.Hops > MaxHops || h.Handler != 0 || h.Flow != (Key{}) {
			return TunnelMalformed
		}
	case TypeRegister, TypeHint, TypeAck:
		// A flow key is canonical: its A side is the lower endpoint, so a
		// flow has exactly one encoding.
		k := &h.Flow
		if h.Hops != 0 || h.Handler == 0 || !less(k.A, k.PA, k.B, k.PB) {
			return TunnelMalformed
		}
	case TypeSync, TypeSyncAck:
		if h.Hops != 0 || h.Handler != 0 || h.Flow != (Key{}) {
			return TunnelMalformed
		}
	default:
		return TunnelMalformed
	}
	if h.Sender == 0 || h.Receiver == 0 || h.Sender == h.Receiver || h.Counter == 0 {
		return TunnelMalformed
	}
	return TunnelOK
}

// put writes the header into b[:h.Len()].
func (h *TunnelHeader) put(b []byte) {
	_ = b[HeaderLen-1]
	b[0] = TunnelVersion
	b[1] = uint8(h.Type)
	b[2] = h.Hops
	b[3] = 0
	binary.BigEndian.PutUint16(b[4:], h.Sender)
	binary.BigEndian.PutUint16(b[6:], h.Receiver)
	binary.BigEndian.PutUint64(b[8:], h.Epoch)
	binary.BigEndian.PutUint64(b[16:], h.Boot)
	binary.BigEndian.PutUint64(b[24:], h.Counter)
	if h.Type.hasFlow() {
		_ = b[FlowHeaderLen-1]
		binary.BigEndian.PutUint16(b[32:], h.Handler)
		h.Flow.put(b[34:47])
		b[47] = 0
	}
}

// parse decodes the header at the start of b, checking everything that
// can be checked without keys.
func (h *TunnelHeader) parse(b []byte) TunnelDrop {
	if len(b) < HeaderLen {
		return TunnelShort
	}
	if b[0] != TunnelVersion {
		return TunnelBadVersion
	}
	*h = TunnelHeader{
		Type:     TunnelType(b[1]),
		Hops:     b[2],
		Sender:   binary.BigEndian.Uint16(b[4:]),
		Receiver: binary.BigEndian.Uint16(b[6:]),
		Epoch:    binary.BigEndian.Uint64(b[8:]),
		Boot:     binary.BigEndian.Uint64(b[16:]),
		Counter:  binary.BigEndian.Uint64(b[24:]),
	}
	if b[3] != 0 {
		return TunnelMalformed
	}
	if h.Type.hasFlow() {
		if len(b) < FlowHeaderLen {
			return TunnelShort
		}
		h.Handler = binary.BigEndian.Uint16(b[32:])
		h.Flow.get(b[34:47])
		if b[47] != 0 {
			return TunnelMalformed
		}
	}
	return h.check()
}

// AppendBinary appends the header's wire form to b. It refuses a header
// that breaks the format's rules (see TunnelHeader's fields); a receiver
// would drop it as malformed.
func (h TunnelHeader) AppendBinary(b []byte) ([]byte, error) {
	if r := h.check(); r != TunnelOK {
		return b, fmt.Errorf("tunnel header %+v: %v", h, r)
	}
	n := len(b)
	b = append(b, make([]byte, h.Len())...)
	h.put(b[n:])
	return b, nil
}

// MarshalBinary returns the header's wire form.
func (h TunnelHeader) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, h.Len()))
}

// UnmarshalBinary decodes a header that is exactly b: io.ErrUnexpectedEOF
// when b is shorter than the header its type needs, an error when it is
// longer or breaks a rule of the format.
func (h *TunnelHeader) UnmarshalBinary(b []byte) error {
	switch r := h.parse(b); {
	case r == TunnelShort:
		return io.ErrUnexpectedEOF
	case r != TunnelOK:
		return fmt.Errorf("tunnel header: %v", r)
	case len(b) != h.Len():
		return fmt.Errorf("tunnel header: %d trailing bytes", len(b)-h.Len())
	}
	return nil
}

// TunnelDrop says why Open refused a datagram; TunnelOK means it did not.
// Every reason is counted (TunnelStats.Drops) and is a metric label. A
// datagram of the wrong membership epoch is not one of them: the caller
// judges the epoch.
type TunnelDrop uint8

// Tunnel drop reasons, in the order Open checks them.
const (
	TunnelOK            TunnelDrop = iota
	TunnelShort                    // shorter than its header and tag
	TunnelOversize                 // longer than MaxDatagram
	TunnelBadVersion               // not format version 1
	TunnelMalformed                // a rule of the format broken: type, reserved bytes, hops, ids, counter 0, flow key, payload length
	TunnelNotForUs                 // receiver is not this node
	TunnelUnknownSender            // sender is not a peer (or is this node)
	TunnelStaleBoot                // sender boot id older than the one already accepted
	TunnelReplayed                 // counter already accepted or older than the replay window
	TunnelForged                   // authentication failed: forged, corrupted, or sealed with another cluster key
	numTunnelDrops
)

var tunnelDropNames = [numTunnelDrops]string{
	"none", "short", "oversize", "version", "malformed", "not_for_us",
	"unknown_sender", "stale_boot", "replayed", "forged",
}

func (r TunnelDrop) String() string {
	if r < numTunnelDrops {
		return tunnelDropNames[r]
	}
	return "tunnel_drop(?)"
}

// TunnelDrops returns every tunnel drop reason, for metrics.
func TunnelDrops() []TunnelDrop {
	rs := make([]TunnelDrop, 0, numTunnelDrops-1)
	for r := TunnelOK + 1; r < numTunnelDrops; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Membership epochs. Every datagram carries its sender's membership epoch
// (header bytes 8-15): which committed membership, and so which flow
// directory, the sender acted on. An epoch is
//
//	seq << 24 | digest
//
// where digest is 24 bits of FNV-1a over the member ids, sorted, and seq
// (40 bits) the ring's token sequence number at which the sender installed
// that membership. Two nodes with the same members build the same
// directory, so they are in the same epoch when their digests agree, even
// though each installed the membership at its own seq (the token reaches
// them one hop apart). When the digests differ, the seqs order the two:
// the ring's seq never goes back, and a newer membership is installed
// after an older one on every node, so the lower seq is the older
// membership. 0 is no epoch (a node without a committed membership): it is
// never judged.
const epochDigestBits = 24

// MembershipEpoch returns the epoch of members (node ids in any order),
// installed at the ring's token sequence number seq.
func MembershipEpoch(seq uint64, members []uint16) uint64 {
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	h := uint32(2166136261)
	for _, m := range ms {
		h = (h ^ uint32(m>>8)) * 16777619
		h = (h ^ uint32(m&0xff)) * 16777619
	}
	e := seq<<epochDigestBits | uint64(h)&(1<<epochDigestBits-1)
	return max(e, 1)
}

// EpochOrder is how a datagram's epoch compares with the receiver's.
type EpochOrder uint8

// Epoch orders, from the receiver's point of view.
const (
	EpochUnknown EpochOrder = iota // either epoch is 0: not judged
	EpochSame                      // same members: the same directory
	EpochStale                     // the sender acted on an older membership
	EpochFuture                    // the sender knows a newer membership than the receiver
)

func (o EpochOrder) String() string {
	return [...]string{"unknown", "same", "stale", "future"}[min(o, EpochFuture)]
}

// CompareEpoch says how the epoch theirs of a received datagram compares
// with mine, the receiver's.
func CompareEpoch(mine, theirs uint64) EpochOrder {
	const digest = 1<<epochDigestBits - 1
	switch {
	case mine == 0 || theirs == 0:
		return EpochUnknown
	case mine&digest == theirs&digest:
		return EpochSame
	case theirs>>epochDigestBits < mine>>epochDigestBits:
		return EpochStale
	}
	return EpochFuture
}
