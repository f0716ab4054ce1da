package ring

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: MsgToken, RingID: 7, Seq: 1 << 40, Sender: 1, Dest: 2, Members: []NodeID{1, 2, 3},
			Carriages: []Carriage{{Kind: 1, Data: []byte{1, 2, 3}}, {Kind: 2, Data: []byte{}}}},
		{Kind: MsgToken, RingID: 1, Seq: 2, Sender: 3, Dest: 3, Members: []NodeID{3}},
		{Kind: MsgHello, RingID: 9, Seq: 5, Purpose: PurposeQuery, Flags: FlagLive | FlagMember, QueryID: 77, MaxSeq: 8, Members: []NodeID{1, 2}},
		{Kind: MsgAnswer, Purpose: PurposeStart, QueryID: 0, MaxSeq: 0},
		{Kind: MsgStale, RingID: 3, Seq: 4},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		var got Message
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		// An empty carriage decodes as empty, not nil.
		if diff := cmp.Diff(m, got, cmp.Comparer(func(a, b []byte) bool { return string(a) == string(b) })); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", m.Kind, diff)
		}
		for i := 0; i < len(b); i++ {
			if err := got.UnmarshalBinary(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%v truncated to %d of %d bytes: err %v, want io.ErrUnexpectedEOF", m.Kind, i, len(b), err)
			}
		}
	}
}

func TestMessageRejects(t *testing.T) {
	tok, _ := (&Message{Kind: MsgToken, Members: []NodeID{1}}).MarshalBinary()
	for name, b := range map[string][]byte{
		"version":  append([]byte{9}, tok[1:]...),
		"kind":     {wireVersion, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"trailing": append(append([]byte(nil), tok...), 0),
		// 0xffff members claimed, 2 bytes present: refused before allocating.
		"members": append(append([]byte(nil), tok[:22]...), 0xff, 0xff, 0, 1),
	} {
		var m Message
		if err := m.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, m)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{Type: FrameData, MsgID: 1 << 60, Index: 2, Count: 3, Payload: []byte("abc")},
		{Type: FrameAck, MsgID: 5, Index: 7},
	} {
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Frame
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if f.Payload == nil {
			f.Payload = nil
		}
		if diff := cmp.Diff(f, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		// The payload runs to the end of the datagram, so only a cut
		// into the header is detectable.
		for i := 0; i < len(b)-len(f.Payload); i++ {
			if err := got.UnmarshalBinary(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("truncated to %d: err %v, want io.ErrUnexpectedEOF", i, err)
			}
		}
	}
	if _, err := (Frame{Type: FrameData, Index: 3, Count: 3}).MarshalBinary(); err == nil {
		t.Error("fragment index 3 of 3 encoded, want an error")
	}
}

// FuzzMessage: no input panics or allocates without bound, and whatever
// decodes re-encodes to the same bytes.
func FuzzMessage(f *testing.F) {
	// A token with one member (node 1) and one 2-byte carriage of kind 1.
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb})
	// A 911 query hello: purpose 3, flags live|member, query id 5, max seq 6, no members.
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 3, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0})
	// A stale notice.
	f.Add([]byte{1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// FuzzFrame: no input panics; what decodes re-encodes identically.
func FuzzFrame(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x'}) // data frame 0 of 1, payload "x"
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0})            // ack of fragment 0 of message 1
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if err := fr.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := fr.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}
