package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// probeMagic starts every stream datagram ("RWE1").
const probeMagic = 0x52574531

// probeLen is the encoded size of a probe header; datagrams may be padded.
const probeLen = 24

// probe is the header of one stream datagram:
//
//	0   4  magic "RWE1"
//	4   4  stream id (random per stream; replies of other streams are ignored)
//	8   8  sequence number, from 0
//	16  8  send time, nanoseconds since the stream's start
type probe struct {
	Stream uint32
	Seq    uint64
	SentNs int64
}

var errNotProbe = errors.New("not a stream probe (bad magic)")

// MarshalBinary encodes the probe header (probeLen bytes).
func (p probe) MarshalBinary() ([]byte, error) {
	b := make([]byte, probeLen)
	p.put(b)
	return b, nil
}

func (p probe) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], probeMagic)
	binary.BigEndian.PutUint32(b[4:], p.Stream)
	binary.BigEndian.PutUint64(b[8:], p.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(p.SentNs))
}

// UnmarshalBinary decodes a probe header; trailing padding is ignored.
func (p *probe) UnmarshalBinary(b []byte) error {
	if len(b) < probeLen {
		return fmt.Errorf("stream probe: %d bytes: %w", len(b), io.ErrUnexpectedEOF)
	}
	if binary.BigEndian.Uint32(b) != probeMagic {
		return errNotProbe
	}
	p.Stream = binary.BigEndian.Uint32(b[4:])
	p.Seq = binary.BigEndian.Uint64(b[8:])
	p.SentNs = int64(binary.BigEndian.Uint64(b[16:]))
	return nil
}
