package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire forms of state replication (replicate.go): a sync batch
// (TypeSync) carries flow state records from a flow's handler, a sync ack
// (TypeSyncAck) acknowledges batches by sequence number. Both are tunnel
// payloads, so they are sealed and authenticated like every datagram; the
// decoders still treat every byte as hostile. Integers are big-endian.
//
// Sync batch:
//
//	bytes 0-7    sequence number, ≥ 1, per sender boot and receiver
//	bytes 8-9    record count n, 1..MaxSyncRecords
//	bytes 10-11  reserved, 0
//	then n records of SyncRecordLen bytes:
//	  0-12   flow key (A, B, PA, PB, protocol), canonical; fill
//	         request and fill done: the fill id (8 bytes, not 0), then 0
//	  13     kind: 1 update, 2 gone, 3 fill request, 4 fill done
//	         (fill.go; bytes 14-15 and 18-23 are 0, the handler is the
//	         sender)
//	  14     state (State; 0 when gone)
//	  15     flags: bit 0 the initiator is the key's A side, bit 1 the
//	         first FIN came from the initiator, bit 2 bulk copy (a
//	         replica sent on by a node that is not the handler); other
//	         bits 0 (0 when gone)
//	  16-17  handler node id, not 0; the sender unless bulk
//	  18-19  rule that accepted the flow (1-based; 0 default)
//	  20-23  ms until the flow expires if nothing more is seen (0 when gone)
//
// Sync ack:
//
//	bytes 0-1    count n, 1..MaxSyncAcks
//	bytes 2-3    reserved, 0
//	then n sequence numbers of 8 bytes, each ≥ 1
const (
	// SyncRecordLen is the length of one flow state record.
	SyncRecordLen = 24
	// syncBatchHead is the length of a sync batch before its records.
	syncBatchHead = 12
	// MaxSyncRecords is the most records in one batch: 12 + 56 × 24 =
	// 1,356 bytes, so a full batch with the tunnel's 76 bytes fits a
	// 1,500-byte link unfragmented.
	MaxSyncRecords = 56
	// syncAckHead is the length of a sync ack before its numbers.
	syncAckHead = 4
	// MaxSyncAcks is the most sequence numbers in one sync ack.
	MaxSyncAcks = 128

	syncKindUpdate      = 1
	syncKindGone        = 2
	syncKindFillRequest = 3
	syncKindFillDone    = 4

	syncFlagOrigIsA = 1 << 0
	syncFlagFinOrig = 1 << 1
	syncFlagBulk    = 1 << 2
)

// SyncRecord is one flow's state as its handler replicates it.
type SyncRecord struct {
	Flow    Key
	Gone    bool   // the flow ended at its handler; the rest is zero
	State   State  // a flow's state (not StateNone)
	OrigIsA bool   // the initiator is Flow's A side
	FinOrig bool   // the first FIN came from the initiator
	Bulk    bool   // a replica copied to a filling owner of its row by a node that is not the handler (fill.go)
	Handler uint16 // the node that handles the flow (the sender)
	Rule    uint16 // the rule that accepted it, 1-based; 0: the default
	Expires uint32 // ms from the batch's sending until the flow expires unless more is seen
	// Fill is FillRequest or FillDone for the fill's control records
	// (fill.go), which carry only FillID and Handler (the sender): no
	// flow.
	Fill   FillKind
	FillID uint64
}

// FillKind tells a fill's control record from a flow's record.
type FillKind uint8

// Fill control records (fill.go).
const (
	FillRequest FillKind = 1 // "copy me the state of my rows", from a filling node
	FillDone    FillKind = 2 // "you have all I hold of your rows", the answer
)

var (
	errSyncMalformed = errors.New("sync: malformed")
	errSyncTrailing  = errors.New("sync: length does not match the count")
)

// check returns nil when r can be sent and received as is.
func (r *SyncRecord) check() error {
	if r.Fill != 0 {
		if r.Handler == 0 || r.FillID == 0 || r.Fill > FillDone || r.Flow != (Key{}) || r.Gone || r.State != StateNone ||
			r.OrigIsA || r.FinOrig || r.Bulk || r.Rule != 0 || r.Expires != 0 {
			return errSyncMalformed
		}
		return nil
	}
	if r.FillID != 0 || r.Handler == 0 || !less(r.Flow.A, r.Flow.PA, r.Flow.B, r.Flow.PB) {
		return errSyncMalformed
	}
	if r.Gone {
		if r.State != StateNone || r.OrigIsA || r.FinOrig || r.Bulk || r.Rule != 0 || r.Expires != 0 {
			return errSyncMalformed
		}
		return nil
	}
	if r.State == StateNone || r.State >= numStates {
		return errSyncMalformed
	}
	return nil
}

// put writes r into b[:SyncRecordLen].
func (r *SyncRecord) put(b []byte) {
	_ = b[SyncRecordLen-1]
	if r.Fill != 0 {
		clear(b[:SyncRecordLen])
		binary.BigEndian.PutUint64(b, r.FillID)
		b[13] = syncKindFillRequest + uint8(r.Fill) - 1
		binary.BigEndian.PutUint16(b[16:], r.Handler)
		return
	}
	r.Flow.put(b[0:13])
	b[13] = syncKindUpdate
	if r.Gone {
		b[13] = syncKindGone
	}
	b[14] = uint8(r.State)
	var fl uint8
	if r.OrigIsA {
		fl |= syncFlagOrigIsA
	}
	if r.FinOrig {
		fl |= syncFlagFinOrig
	}
	if r.Bulk {
		fl |= syncFlagBulk
	}
	b[15] = fl
	binary.BigEndian.PutUint16(b[16:], r.Handler)
	binary.BigEndian.PutUint16(b[18:], r.Rule)
	binary.BigEndian.PutUint32(b[20:], r.Expires)
}

// get reads a record from b[:SyncRecordLen] and checks it.
func (r *SyncRecord) get(b []byte) error {
	_ = b[SyncRecordLen-1]
	*r = SyncRecord{}
	switch b[13] {
	case syncKindUpdate:
	case syncKindGone:
		r.Gone = true
	case syncKindFillRequest, syncKindFillDone:
		r.Fill = FillKind(b[13]-syncKindFillRequest) + 1
		r.FillID = binary.BigEndian.Uint64(b)
		r.Handler = binary.BigEndian.Uint16(b[16:])
		if b[8]|b[9]|b[10]|b[11]|b[12]|b[14]|b[15]|b[18]|b[19]|b[20]|b[21]|b[22]|b[23] != 0 {
			return errSyncMalformed
		}
		return r.check()
	default:
		return errSyncMalformed
	}
	r.Flow.get(b[0:13])
	r.State = State(b[14])
	fl := b[15]
	if fl&^(syncFlagOrigIsA|syncFlagFinOrig|syncFlagBulk) != 0 {
		return errSyncMalformed
	}
	r.OrigIsA, r.FinOrig, r.Bulk = fl&syncFlagOrigIsA != 0, fl&syncFlagFinOrig != 0, fl&syncFlagBulk != 0
	r.Handler = binary.BigEndian.Uint16(b[16:])
	r.Rule = binary.BigEndian.Uint16(b[18:])
	r.Expires = binary.BigEndian.Uint32(b[20:])
	return r.check()
}

// SyncBatch is a batch of records under one sequence number.
type SyncBatch struct {
	Seq     uint64
	Records []SyncRecord
}

// syncBatchHeader checks a batch's head and length and returns its
// sequence number and record count.
func syncBatchHeader(p []byte) (seq uint64, n int, err error) {
	if len(p) < syncBatchHead {
		return 0, 0, io.ErrUnexpectedEOF
	}
	seq = binary.BigEndian.Uint64(p)
	n = int(binary.BigEndian.Uint16(p[8:]))
	if seq == 0 || n == 0 || n > MaxSyncRecords || p[10] != 0 || p[11] != 0 {
		return 0, 0, errSyncMalformed
	}
	switch want := syncBatchHead + n*SyncRecordLen; {
	case len(p) < want:
		return 0, 0, io.ErrUnexpectedEOF
	case len(p) > want:
		return 0, 0, errSyncTrailing
	}
	return seq, n, nil
}

// AppendBinary appends the batch's wire form to b.
func (s *SyncBatch) AppendBinary(b []byte) ([]byte, error) {
	if s.Seq == 0 || len(s.Records) == 0 || len(s.Records) > MaxSyncRecords {
		return b, fmt.Errorf("sync batch: seq %d, %d records: %w", s.Seq, len(s.Records), errSyncMalformed)
	}
	for i := range s.Records {
		if err := s.Records[i].check(); err != nil {
			return b, fmt.Errorf("sync record %+v: %w", s.Records[i], err)
		}
	}
	n := len(b)
	b = append(b, make([]byte, syncBatchHead+len(s.Records)*SyncRecordLen)...)
	binary.BigEndian.PutUint64(b[n:], s.Seq)
	binary.BigEndian.PutUint16(b[n+8:], uint16(len(s.Records)))
	for i := range s.Records {
		s.Records[i].put(b[n+syncBatchHead+i*SyncRecordLen:])
	}
	return b, nil
}

// MarshalBinary returns the batch's wire form.
func (s *SyncBatch) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// UnmarshalBinary decodes a batch that is exactly p: io.ErrUnexpectedEOF
// when p is too short, an error when it breaks a rule of the format. It
// reuses s.Records' room.
func (s *SyncBatch) UnmarshalBinary(p []byte) error {
	seq, n, err := syncBatchHeader(p)
	if err != nil {
		return err
	}
	s.Seq, s.Records = seq, s.Records[:0]
	for i := range n {
		var r SyncRecord
		if err := r.get(p[syncBatchHead+i*SyncRecordLen:]); err != nil {
			return err
		}
		s.Records = append(s.Records, r)
	}
	return nil
}

// SyncAck acknowledges sync batches by their sequence numbers.
type SyncAck struct {
	Seqs []uint64
}

// AppendBinary appends the ack's wire form to b.
func (a *SyncAck) AppendBinary(b []byte) ([]byte, error) {
	if len(a.Seqs) == 0 || len(a.Seqs) > MaxSyncAcks {
		return b, fmt.Errorf("sync ack of %d: %w", len(a.Seqs), errSyncMalformed)
	}
	n := len(b)
	b = append(b, make([]byte, syncAckHead+8*len(a.Seqs))...)
	binary.BigEndian.PutUint16(b[n:], uint16(len(a.Seqs)))
	for i, s := range a.Seqs {
		if s == 0 {
			return b[:n], fmt.Errorf("sync ack of seq 0: %w", errSyncMalformed)
		}
		binary.BigEndian.PutUint64(b[n+syncAckHead+8*i:], s)
	}
	return b, nil
}

// MarshalBinary returns the ack's wire form.
func (a *SyncAck) MarshalBinary() ([]byte, error) { return a.AppendBinary(nil) }

// UnmarshalBinary decodes an ack that is exactly p, reusing a.Seqs' room.
func (a *SyncAck) UnmarshalBinary(p []byte) error {
	if len(p) < syncAckHead {
		return io.ErrUnexpectedEOF
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || n > MaxSyncAcks || p[2] != 0 || p[3] != 0 {
		return errSyncMalformed
	}
	switch want := syncAckHead + 8*n; {
	case len(p) < want:
		return io.ErrUnexpectedEOF
	case len(p) > want:
		return errSyncTrailing
	}
	a.Seqs = a.Seqs[:0]
	for i := range n {
		s := binary.BigEndian.Uint64(p[syncAckHead+8*i:])
		if s == 0 {
			return errSyncMalformed
		}
		a.Seqs = append(a.Seqs, s)
	}
	return nil
}
