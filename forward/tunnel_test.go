package forward

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var tunnelFlow = Key{A: [4]byte{198, 51, 100, 10}, B: [4]byte{203, 0, 113, 10}, PA: 80, PB: 40000, Proto: protoTCP}

func sampleHeaders() []TunnelHeader {
	return []TunnelHeader{
		{Type: TypeData, Hops: 1, Sender: 3, Receiver: 1, Epoch: 7, Boot: 0x0190_0000_0000_1234, Counter: 1},
		{Type: TypeData, Hops: MaxHops, Sender: 65535, Receiver: 1, Epoch: ^uint64(0), Boot: 1, Counter: ^uint64(0)},
		{Type: TypeRegister, Sender: 2, Receiver: 5, Epoch: 9, Boot: 42, Counter: 1000, Handler: 2, Flow: tunnelFlow},
		{Type: TypeHint, Sender: 5, Receiver: 3, Epoch: 9, Boot: 43, Counter: 7, Handler: 2, Flow: tunnelFlow},
		{Type: TypeAck, Sender: 5, Receiver: 2, Epoch: 9, Boot: 43, Counter: 8, Handler: 2, Flow: tunnelFlow},
		{Type: TypeDataGSO, Hops: 1, Sender: 3, Receiver: 2, Epoch: 9, Boot: 44, Counter: 9},
	}
}

func TestTunnelHeaderRoundTrip(t *testing.T) {
	for _, h := range sampleHeaders() {
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if len(b) != h.Len() {
			t.Errorf("%v: %d bytes, Len %d", h.Type, len(b), h.Len())
		}
		var got TunnelHeader
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%v: %v", h.Type, err)
		}
		if d := cmp.Diff(h, got); d != "" {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
		// AppendBinary appends: the prefix stays.
		pre := []byte("prefix")
		ab, err := h.AppendBinary(pre)
		if err != nil || !bytes.Equal(ab[:6], []byte("prefix")) || !bytes.Equal(ab[6:], b) {
			t.Errorf("AppendBinary = % x, %v", ab, err)
		}
	}
}

// TestTunnelHeaderLayout pins the wire bytes of a hint (the table in
// docs/forward.md).
func TestTunnelHeaderLayout(t *testing.T) {
	h := TunnelHeader{Type: TypeHint, Sender: 0x0102, Receiver: 0x0304, Epoch: 0x05060708090a0b0c,
		Boot: 0x1112131415161718, Counter: 0x2122232425262728, Handler: 0x3132, Flow: tunnelFlow}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 3, 0, 0, 0x01, 0x02, 0x03, 0x04, // version, type, hops, reserved, sender, receiver
		0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, // epoch
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // boot
		0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, // counter
		0x31, 0x32, 198, 51, 100, 10, 203, 0, 113, 10, // handler, A, B
		0, 80, 0x9c, 0x40, 6, 0, // PA, PB, proto, reserved
	}
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("wire bytes (-want +got):\n%s", d)
	}
}

func TestTunnelHeaderRefused(t *testing.T) {
	good := sampleHeaders()
	data, _ := good[0].MarshalBinary()
	hint, _ := good[3].MarshalBinary()
	edit := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error // nil: any error but io.ErrUnexpectedEOF
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"data short", data[:HeaderLen-1], io.ErrUnexpectedEOF},
		{"hint without its flow", hint[:HeaderLen], io.ErrUnexpectedEOF},
		{"hint short", hint[:FlowHeaderLen-1], io.ErrUnexpectedEOF},
		{"trailing", append(bytes.Clone(data), 0), nil},
		{"version 2", edit(data, 0, 2), nil},
		{"type 0", edit(data, 1, 0), nil},
		{"type 7 (unknown)", edit(hint, 1, 7), nil},
		{"sync with a flow section", edit(hint, 1, 5), nil},
		{"ack handler 0", edit(edit(edit(hint, 1, 4), 32, 0), 33, 0), nil},
		{"ack key not canonical", edit(edit(hint, 1, 4), 34, 255), nil},
		{"data with hops 0", edit(data, 2, 0), nil},
		{"data with hops 3", edit(data, 2, MaxHops+1), nil},
		{"hint with hops", edit(hint, 2, 1), nil},
		{"reserved byte 3", edit(data, 3, 1), nil},
		{"sender 0", edit(edit(data, 4, 0), 5, 0), nil},
		{"receiver 0", edit(edit(data, 6, 0), 7, 0), nil},
		{"sender is receiver", edit(edit(data, 4, 0), 5, 1), nil},
		{"counter 0", edit(data, 31, 0), nil},
		{"hint handler 0", edit(edit(hint, 32, 0), 33, 0), nil},
		{"hint key not canonical", edit(hint, 34, 255), nil},
		{"hint reserved byte 47", edit(hint, 47, 1), nil},
	} {
		var h TunnelHeader
		err := h.UnmarshalBinary(tc.b)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		case tc.want == nil && errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%s: %v, want a format error", tc.name, err)
		}
	}
	// Marshal refuses what Unmarshal would.
	for _, h := range []TunnelHeader{
		{Type: TypeData, Hops: 0, Sender: 1, Receiver: 2, Counter: 1},
		{Type: TypeData, Hops: 1, Sender: 1, Receiver: 2, Counter: 1, Handler: 1},
		{Type: TypeHint, Sender: 1, Receiver: 2, Counter: 1, Handler: 0, Flow: tunnelFlow},
		{Type: 9, Sender: 1, Receiver: 2, Counter: 1},
	} {
		if _, err := h.MarshalBinary(); err == nil {
			t.Errorf("%+v marshalled", h)
		}
	}
}

// FuzzTunnelHeader: any bytes either fail to decode or decode to a header
// whose encoding is exactly those bytes (a header has one wire form).
func FuzzTunnelHeader(f *testing.F) {
	for _, h := range sampleHeaders() {
		b, err := h.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b) // each type, valid
	}
	f.Add([]byte{})                                  // empty
	f.Add([]byte{1, 1, 1, 0, 0, 1, 0, 2})            // a data header cut after the ids
	f.Add(bytes.Repeat([]byte{0xff}, FlowHeaderLen)) // all ones: bad version
	f.Add(append([]byte{1, 2}, make([]byte, 46)...)) // register with zero fields
	f.Add(append([]byte{1, 4}, make([]byte, 46)...)) // ack with zero fields
	f.Add(append([]byte{1, 5}, make([]byte, 46)...)) // type 5: reserved
	f.Fuzz(func(t *testing.T, b []byte) {
		var h TunnelHeader
		if err := h.UnmarshalBinary(b); err != nil {
			if len(b) >= FlowHeaderLen && errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ErrUnexpectedEOF for %d bytes", len(b))
			}
			return
		}
		out, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", h, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip:\n in % x\nout % x", b, out)
		}
	})
}

func TestGSOPrefix(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20}
	b := make([]byte, GSOPrefixLen, GSOPrefixLen+len(ip))
	PutGSO(b, GSOTCPv4|GSOECN, 1384)
	b = append(b, ip...)
	typ, size, got, ok := ParseGSO(b)
	if !ok || typ != GSOTCPv4|GSOECN || size != 1384 || !bytes.Equal(got, ip) {
		t.Fatalf("ParseGSO = %#x %d % x %v", typ, size, got, ok)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"prefix only", b[:GSOPrefixLen]},
		{"UDP GSO type", append([]byte{5, 0, 5, 0x68}, ip...)},
		{"no type", append([]byte{0, 0, 5, 0x68}, ip...)},
		{"reserved byte", append([]byte{1, 1, 5, 0x68}, ip...)},
		{"segment size 0", append([]byte{1, 0, 0, 0}, ip...)},
	} {
		if _, _, _, ok := ParseGSO(tc.b); ok {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	h := TunnelHeader{Type: TypeDataGSO, Hops: 0, Sender: 1, Receiver: 2, Counter: 1}
	if _, err := h.MarshalBinary(); err == nil {
		t.Error("data_gso with hops 0 marshalled")
	}
}

// FuzzParseGSO: ParseGSO never panics, and what it accepts has one
// encoding.
func FuzzParseGSO(f *testing.F) {
	f.Add([]byte{1, 0, 5, 0x68, 0x45})
	f.Add([]byte{0x81, 0, 0, 1, 0})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, size, ip, ok := ParseGSO(b)
		if !ok {
			return
		}
		out := make([]byte, GSOPrefixLen, GSOPrefixLen+len(ip))
		PutGSO(out, typ, size)
		if out = append(out, ip...); !bytes.Equal(out, b) {
			t.Fatalf("round trip:\n in % x\nout % x", b, out)
		}
	})
}
