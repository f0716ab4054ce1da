package router

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSegmentTCP: a TCP GSO super-packet is cut as the device would cut
// it: lengths, IP ids, sequence numbers and flags per segment, and both
// checksums complete (each sums to zero over what it covers).
func TestSegmentTCP(t *testing.T) {
	const payload = 2500
	ip := make([]byte, 20+20+payload)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[4:], 100)
	ip[6] = 0x40 // DF
	ip[8], ip[9] = 64, protoTCP
	copy(ip[12:], []byte{203, 0, 113, 10, 198, 51, 100, 10})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12] = 5 << 4
	tcp[13] = tcpFlagCWR | tcpFlagPSH | tcpFlagFIN | 0x10 // ACK
	for i := range payload {
		tcp[20+i] = byte(i)
	}
	type seg struct {
		Len   int
		ID    uint16
		Seq   uint32
		Flags uint8
	}
	var got []seg
	buf := make([]byte, 2000)
	ok := segmentTCP(ip, 1000, buf, func(s []byte) {
		if c := checksum(s[:20], 0); c != 0 {
			t.Errorf("segment %d: IP checksum does not verify", len(got))
		}
		pseudo := sum16(s[12:20], uint32(protoTCP)+uint32(len(s)-20))
		if c := checksum(s[20:], pseudo); c != 0 {
			t.Errorf("segment %d: TCP checksum does not verify", len(got))
		}
		if s[20+20] != byte(len(got)*1000) {
			t.Errorf("segment %d starts with payload byte %d", len(got), s[40])
		}
		got = append(got, seg{int(binary.BigEndian.Uint16(s[2:])), binary.BigEndian.Uint16(s[4:]), binary.BigEndian.Uint32(s[24:]), s[33]})
	})
	if !ok {
		t.Fatal("segmentTCP refused a valid packet")
	}
	want := []seg{
		{1040, 100, 1000, tcpFlagCWR | 0x10},
		{1040, 101, 2000, 0x10},
		{540, 102, 3000, tcpFlagPSH | tcpFlagFIN | 0x10},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	if segmentTCP(ip, 1000, make([]byte, 100), func([]byte) {}) {
		t.Error("segmentTCP accepted a buffer too small for a segment")
	}
}

// TestHoldStore: a packet is held until taken; an ack that was taken
// before its packet was stored (the register leaves from another
// goroutine) makes that packet go at once rather than wait; at heldMax
// held a packet is refused, and a freed slot takes the next.
func TestHoldStore(t *testing.T) {
	s := newHoldStore()
	frame := []byte{1, 2, 3}
	if !s.put(7, frame, ipDecision{out: 1}, 0) {
		t.Fatal("put refused on an empty store")
	}
	select {
	case <-s.kick:
	default:
		t.Error("put did not kick the defer worker")
	}
	if s.take(8) != nil {
		t.Error("took a hold never put")
	}
	if s.put(8, frame, ipDecision{}, 0) {
		t.Error("held a packet whose hold was released already")
	}
	p := s.take(7)
	if p == nil || string(p.frame) != string(frame) || p.d.out != 1 || s.take(7) != nil {
		t.Fatalf("take(7) = %+v, or taken twice", p)
	}
	if s.held() != 1 {
		t.Errorf("%d held while sending, want 1", s.held())
	}
	s.free(p)
	for i := range heldMax {
		if !s.put(uint64(100+i), frame, ipDecision{}, 0) {
			t.Fatalf("put %d refused", i)
		}
	}
	if s.put(1000, frame, ipDecision{}, 0) {
		t.Error("put beyond heldMax")
	}
	s.free(s.take(100))
	if !s.put(1001, frame, ipDecision{}, 0) {
		t.Error("a freed slot was not reused")
	}
	if n := testing.AllocsPerRun(100, func() {
		s.free(s.take(1001))
		s.put(1001, frame, ipDecision{}, 0)
	}); n != 0 {
		t.Errorf("%.1f allocations per take, free and put", n)
	}
}
