package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Wire format, version 1. All integers big-endian.
//
// A Frame is one datagram payload (≤ MaxPacket bytes):
//
//	version u8 | type u8 (1 data, 2 ack) | message id u64 |
//	data: index u16 | count u16 | payload ...
//	ack:  index u16
//
// A Message is what the reliable layer carries (any size, split into data
// frames):
//
//	version u8 | kind u8 | ring id u64 | seq u64 | body by kind
//	token:        sender u16 | dest u16 | members | carriages
//	hello/answer: purpose u8 | flags u8 | query id u64 | max seq u64 | members
//	stale:        (nothing more)
//	members:   count u16 | node u16 ...
//	carriages: count u16 | (kind u16 | length u32 | bytes) ...
const wireVersion = 1

// ErrVersion is returned for input of an unknown wire version.
var ErrVersion = errors.New("ring: unknown wire version (peer runs an incompatible ringway)")

// FrameType tells a data frame from an acknowledgement.
type FrameType uint8

// Frame types.
const (
	FrameData FrameType = 1
	FrameAck  FrameType = 2
)

const (
	frameHeader   = 1 + 1 + 8 + 2 + 2
	ackFrameLen   = 1 + 1 + 8 + 2
	maxFragment   = MaxPacket - frameHeader
	maxFragments  = 4096 // a message of up to ~4.8 MB
	messageHeader = 1 + 1 + 8 + 8
)

// Frame is one datagram payload of the reliable layer.
type Frame struct {
	Type    FrameType
	MsgID   uint64
	Index   uint16 // fragment index, 0-based
	Count   uint16 // fragments in the message (data frames only)
	Payload []byte // data frames only; aliases the input after UnmarshalBinary
}

// MarshalBinary encodes f.
func (f Frame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(nil)
}

// AppendBinary appends the encoding of f to b.
func (f Frame) AppendBinary(b []byte) ([]byte, error) {
	switch f.Type {
	case FrameData:
		if f.Count == 0 || f.Count > maxFragments || f.Index >= f.Count {
			return b, fmt.Errorf("ring: frame fragment %d of %d is out of range", f.Index, f.Count)
		}
		if len(f.Payload) > maxFragment {
			return b, fmt.Errorf("ring: frame payload of %d bytes exceeds %d", len(f.Payload), maxFragment)
		}
		b = append(b, wireVersion, byte(f.Type))
		b = binary.BigEndian.AppendUint64(b, f.MsgID)
		b = binary.BigEndian.AppendUint16(b, f.Index)
		b = binary.BigEndian.AppendUint16(b, f.Count)
		return append(b, f.Payload...), nil
	case FrameAck:
		b = append(b, wireVersion, byte(f.Type))
		b = binary.BigEndian.AppendUint64(b, f.MsgID)
		return binary.BigEndian.AppendUint16(b, f.Index), nil
	}
	return b, fmt.Errorf("ring: unknown frame type %d", f.Type)
}

// UnmarshalBinary decodes a frame; Payload aliases b.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return io.ErrUnexpectedEOF
	}
	if b[0] != wireVersion {
		return ErrVersion
	}
	if len(b) > MaxPacket {
		return fmt.Errorf("ring: frame of %d bytes exceeds MaxPacket %d", len(b), MaxPacket)
	}
	f.Type = FrameType(b[1])
	switch f.Type {
	case FrameData:
		if len(b) < frameHeader {
			return io.ErrUnexpectedEOF
		}
		f.MsgID = binary.BigEndian.Uint64(b[2:])
		f.Index = binary.BigEndian.Uint16(b[10:])
		f.Count = binary.BigEndian.Uint16(b[12:])
		f.Payload = b[frameHeader:]
		if f.Count == 0 || f.Count > maxFragments || f.Index >= f.Count {
			return fmt.Errorf("ring: frame fragment %d of %d is out of range", f.Index, f.Count)
		}
		return nil
	case FrameAck:
		if len(b) < ackFrameLen {
			return io.ErrUnexpectedEOF
		}
		if len(b) != ackFrameLen {
			return fmt.Errorf("ring: ack frame of %d bytes, want %d", len(b), ackFrameLen)
		}
		f.MsgID = binary.BigEndian.Uint64(b[2:])
		f.Index = binary.BigEndian.Uint16(b[10:])
		f.Count, f.Payload = 0, nil
		return nil
	}
	return fmt.Errorf("ring: unknown frame type %d", b[1])
}

// MsgKind is the patent's Signal Type field, widened.
type MsgKind uint8

// Message kinds.
const (
	MsgToken  MsgKind = 1 // the token and its carriages
	MsgHello  MsgKind = 2 // start-up hello, merge probe, or 911 query
	MsgAnswer MsgKind = 3 // the answer to a hello
	MsgStale  MsgKind = 4 // "the token you sent me is older than one I have"
)

func (k MsgKind) String() string {
	switch k {
	case MsgToken:
		return "token"
	case MsgHello:
		return "hello"
	case MsgAnswer:
		return "answer"
	case MsgStale:
		return "stale"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Purpose says why a hello was sent.
type Purpose uint8

// Hello purposes.
const (
	PurposeStart Purpose = 1 // a starting node looks for a ring (Figure 8, box 804)
	PurposeProbe Purpose = 2 // a ring's holder looks for other rings to merge with
	PurposeQuery Purpose = 3 // a 911: "who has a newer token?" (Figure 9, box 901)
	PurposeNudge Purpose = 4 // "your copy outranks mine and the token is lost: ask now"
	// PurposeRenew: quorum majority, the holder waits to drop a node
	// (lease.go): "I hold our ring's token and count you; say if you hear me".
	PurposeRenew   Purpose = 5
	PurposeRenewed Purpose = 6 // "a majority heard my renewal QueryID: renew your lease from when you took it"
)

// Hello and answer flags: the sender's situation.
const (
	FlagLive    = 1 << 0 // in a ring whose token it saw within the token-loss timeout
	FlagHolding = 1 << 1 // holds the token or has it in flight
	FlagMember  = 1 << 2 // has a ring (not starting, not between rings)
)

// Message is one protocol message, carried by the reliable layer.
type Message struct {
	Kind   MsgKind
	RingID uint64 // the sender's ring id (stale: the rejected token's)
	Seq    uint64 // token: its sequence number; hello/answer: the sender's rank (last seq it sent); stale: the rejected seq

	Sender, Dest NodeID // token
	Members      []NodeID
	Carriages    []Carriage // token

	Purpose Purpose // hello/answer
	Flags   uint8   // hello/answer
	QueryID uint64  // hello/answer: correlates a 911 query with its answers
	MaxSeq  uint64  // hello/answer: the highest seq the sender has seen
}

// MarshalBinary encodes m.
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to b.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Members) > MaxNodes {
		return b, fmt.Errorf("ring: %d members exceed %d", len(m.Members), MaxNodes)
	}
	b = append(b, wireVersion, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, m.RingID)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	switch m.Kind {
	case MsgToken:
		if len(m.Carriages) > MaxCarriages {
			return b, fmt.Errorf("ring: %d carriages exceed %d", len(m.Carriages), MaxCarriages)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(m.Sender))
		b = binary.BigEndian.AppendUint16(b, uint16(m.Dest))
		b = appendMembers(b, m.Members)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Carriages)))
		for _, c := range m.Carriages {
			if uint64(len(c.Data)) > 1<<32-1 {
				return b, errors.New("ring: carriage too large")
			}
			b = binary.BigEndian.AppendUint16(b, c.Kind)
			b = binary.BigEndian.AppendUint32(b, uint32(len(c.Data)))
			b = append(b, c.Data...)
		}
	case MsgHello, MsgAnswer:
		b = append(b, byte(m.Purpose), m.Flags)
		b = binary.BigEndian.AppendUint64(b, m.QueryID)
		b = binary.BigEndian.AppendUint64(b, m.MaxSeq)
		b = appendMembers(b, m.Members)
	case MsgStale:
	default:
		return b, fmt.Errorf("ring: unknown message kind %d", m.Kind)
	}
	return b, nil
}

func appendMembers(b []byte, ms []NodeID) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ms)))
	for _, n := range ms {
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	return b
}

// UnmarshalBinary decodes a message. Carriage data is copied, so b may be
// reused. Counts are checked against the bytes present before anything is
// allocated.
func (m *Message) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if len(b) < 2 {
		return io.ErrUnexpectedEOF
	}
	if b[0] != wireVersion {
		return ErrVersion
	}
	*m = Message{Kind: MsgKind(b[1])}
	d.b = b[2:]
	m.RingID = d.u64()
	m.Seq = d.u64()
	switch m.Kind {
	case MsgToken:
		m.Sender = NodeID(d.u16())
		m.Dest = NodeID(d.u16())
		m.Members = d.members()
		n := int(d.u16())
		if d.err == nil && n > MaxCarriages {
			return fmt.Errorf("ring: token has %d carriages, more than %d", n, MaxCarriages)
		}
		if d.err == nil && n*6 > len(d.b) {
			return io.ErrUnexpectedEOF
		}
		if n > 0 && d.err == nil {
			m.Carriages = make([]Carriage, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			k := d.u16()
			l := d.u32()
			data := d.bytes(int64(l))
			if d.err == nil {
				m.Carriages = append(m.Carriages, Carriage{Kind: k, Data: append([]byte(nil), data...)})
			}
		}
	case MsgHello, MsgAnswer:
		m.Purpose = Purpose(d.u8())
		m.Flags = d.u8()
		m.QueryID = d.u64()
		m.MaxSeq = d.u64()
		m.Members = d.members()
	case MsgStale:
	default:
		return fmt.Errorf("ring: unknown message kind %d", b[1])
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("ring: %d trailing bytes after a %v message", len(d.b), m.Kind)
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = io.ErrUnexpectedEOF
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(n int64) []byte {
	if d.err != nil {
		return nil
	}
	if n > int64(len(d.b)) {
		d.err = io.ErrUnexpectedEOF
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) members() []NodeID {
	n := int(d.u16())
	if d.err != nil {
		return nil
	}
	if n > MaxNodes {
		d.err = fmt.Errorf("ring: %d members exceed %d", n, MaxNodes)
		return nil
	}
	if !d.need(2 * n) {
		return nil
	}
	if n == 0 {
		return nil
	}
	ms := make([]NodeID, n)
	for i := range ms {
		ms[i] = NodeID(binary.BigEndian.Uint16(d.b[2*i:]))
		if ms[i] == 0 {
			d.err = errors.New("ring: member 0 in a member list")
			return nil
		}
	}
	d.b = d.b[2*n:]
	return ms
}
