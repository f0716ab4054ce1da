package vipstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Encoding, version 1. The table rides on every token hop, so it is compact:
// every integer is an unsigned varint (encoding/binary Uvarint), and VIPs are
// stored as the difference from the previous VIP, which is 1 for the usual
// address ranges. A typical row (contiguous VIPs, fewer than 128 nodes and
// groups) is 6 bytes.
//
//	version    byte = 1
//	nodes      uvarint  size of the node map (≤ MaxNodes)
//	rotation   uvarint
//	balanceAt  uvarint
//	count      uvarint  number of rows (≤ MaxRows)
//	count × row:
//	  vipDelta  uvarint  VIP minus the previous VIP as uint32 (first row: minus 0.0.0.0); ≥ 1
//	  subnet    uvarint  ≤ 255
//	  flags     byte     bits 0-1 persistence (0, 1 or 3), bit 2 closed, other bits 0
//	  current   uvarint  ≤ nodes
//	  preferred uvarint  ≤ nodes
//	  group     uvarint  ≤ 65535
//
// Nothing may follow the last row. The decoded table is checked exactly as New
// checks its input.
const encodingVersion = 1

// minRowSize is the smallest encoding of a row (six one-byte fields); it bounds
// the row count by the input length before anything is allocated.
const minRowSize = 6

const (
	flagPersistMask = 0x03
	flagClosed      = 0x04
	flagUnknown     = ^byte(flagPersistMask | flagClosed)
)

// errMalformed is wrapped by every decoding error other than io.ErrUnexpectedEOF.
var errMalformed = errors.New("vipstate: malformed table encoding")

// SameRows reports whether two encoded tables have the same node map size
// and the same rows, whatever their rotation counters (which change on every
// rotation of the token). Malformed input is never the same as anything.
// It does not allocate.
func SameRows(a, b []byte) bool {
	ha, ra, okA := splitCounters(a)
	hb, rb, okB := splitCounters(b)
	return okA && okB && string(ha) == string(hb) && string(ra) == string(rb)
}

// splitCounters cuts an encoded table around its rotation and balanceAt
// fields: head is version and nodes, rows is count and rows.
func splitCounters(b []byte) (head, rows []byte, ok bool) {
	if len(b) < 1 || b[0] != encodingVersion {
		return nil, nil, false
	}
	_, n := binary.Uvarint(b[1:]) // nodes
	if n <= 0 {
		return nil, nil, false
	}
	i := 1 + n
	head = b[:i]
	for range 2 { // rotation, balanceAt
		_, k := binary.Uvarint(b[i:])
		if k <= 0 {
			return nil, nil, false
		}
		i += k
	}
	return head, b[i:], true
}

// MarshalBinary encodes the table (format described in encode.go).
func (t Table) MarshalBinary() ([]byte, error) {
	return t.AppendBinary(make([]byte, 0, t.encodedSizeHint()))
}

func (t *Table) encodedSizeHint() int { return 32 + 7*len(t.rows) }

// AppendBinary appends the encoding of the table to b (encoding.BinaryAppender).
func (t Table) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, uint64(t.nodes))
	b = binary.AppendUvarint(b, t.rotation)
	b = binary.AppendUvarint(b, t.balanceAt)
	b = binary.AppendUvarint(b, uint64(len(t.rows)))
	var prev uint32
	for _, r := range t.rows {
		v := ipv4(r.VIP)
		b = binary.AppendUvarint(b, uint64(v-prev))
		prev = v
		b = binary.AppendUvarint(b, uint64(r.Subnet))
		flags := byte(r.Persistence) & flagPersistMask
		if r.Closed {
			flags |= flagClosed
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(r.Current))
		b = binary.AppendUvarint(b, uint64(r.Preferred))
		b = binary.AppendUvarint(b, uint64(r.Group))
	}
	return b, nil
}

// UnmarshalBinary decodes a table encoded by MarshalBinary. It returns
// io.ErrUnexpectedEOF if b is cut short, and an error naming the first
// problem for anything else that is not a valid table; t is unchanged on
// error.
func (t *Table) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != encodingVersion {
		return fmt.Errorf("%w: version %d, this build reads version %d: upgrade the node that sent it or this one", errMalformed, v, encodingVersion)
	}
	nodes := d.uvarint("node count", MaxNodes)
	rotation := d.uvarint("rotation", ^uint64(0))
	balanceAt := d.uvarint("balance cooldown", ^uint64(0))
	count := d.uvarint("row count", MaxRows)
	if d.err != nil {
		return d.err
	}
	if count*minRowSize > uint64(len(d.b)) {
		return io.ErrUnexpectedEOF
	}
	u := Table{nodes: int(nodes), rotation: rotation, balanceAt: balanceAt}
	if count > 0 {
		u.rows = make([]Row, count)
	}
	var prev uint64
	for i := range u.rows {
		delta := d.uvarint("VIP delta", 1<<32-1)
		if d.err == nil && delta == 0 && i > 0 {
			return fmt.Errorf("%w: row %d: VIPs must be strictly increasing", errMalformed, i)
		}
		prev += delta
		if d.err == nil && prev > 1<<32-1 {
			return fmt.Errorf("%w: row %d: VIP beyond 255.255.255.255", errMalformed, i)
		}
		subnet := d.uvarint("subnet", 255)
		flags := d.byte()
		current := d.uvarint("current host", nodes)
		preferred := d.uvarint("preferred host", nodes)
		group := d.uvarint("group", 1<<16-1)
		if d.err != nil {
			return d.err
		}
		if flags&flagUnknown != 0 {
			return fmt.Errorf("%w: row %d: unknown flag bits %#x", errMalformed, i, flags&flagUnknown)
		}
		u.rows[i] = Row{
			VIP:         fromIPv4(uint32(prev)),
			Subnet:      uint8(subnet),
			Current:     Node(current),
			Preferred:   Node(preferred),
			Persistence: Persistence(flags & flagPersistMask),
			Group:       uint16(group),
			Closed:      flags&flagClosed != 0,
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last row", errMalformed, len(d.b))
	}
	if err := u.init(); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	*t = u
	return nil
}

// decoder reads varints and bytes, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = io.ErrUnexpectedEOF
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = io.ErrUnexpectedEOF
		return 0
	case n < 0:
		d.err = fmt.Errorf("%w: %s: varint overflows 64 bits", errMalformed, what)
		return 0
	case n != uvarintLen(v):
		// One value, one encoding: a longer form would let two different
		// byte strings carry the same table.
		d.err = fmt.Errorf("%w: %s: non-minimal varint", errMalformed, what)
		return 0
	case v > max:
		d.err = fmt.Errorf("%w: %s %d exceeds %d", errMalformed, what, v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func ipv4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func fromIPv4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
