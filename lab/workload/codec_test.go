package workload

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProbeRoundTrip(t *testing.T) {
	p := probe{Stream: 0xdeadbeef, Seq: 1 << 40, SentNs: 123456789}
	b, _ := p.MarshalBinary()
	var q probe
	if err := q.UnmarshalBinary(append(b, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, q); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if err := q.UnmarshalBinary(b[:probeLen-1]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short probe: err = %v, want ErrUnexpectedEOF", err)
	}
	b[0] ^= 1
	if err := q.UnmarshalBinary(b); !errors.Is(err, errNotProbe) {
		t.Errorf("bad magic: err = %v, want errNotProbe", err)
	}
}

func FuzzProbe(f *testing.F) {
	f.Add([]byte("RWE1\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03")) // stream 1, seq 2, sent 3 ns
	f.Add([]byte("RWE1"))                                                                                 // truncated
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p probe
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := p.MarshalBinary()
		if !bytes.Equal(out, b[:probeLen]) {
			t.Fatalf("re-encoding %x gave %x", b[:probeLen], out)
		}
	})
}

func TestTransferHeader(t *testing.T) {
	b, _ := transferHeader{Len: 1 << 20}.MarshalBinary()
	var h transferHeader
	if err := h.UnmarshalBinary(b); err != nil || h.Len != 1<<20 {
		t.Fatalf("round trip: %v, %d", err, h.Len)
	}
	if err := h.UnmarshalBinary(b[:5]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short header: %v, want ErrUnexpectedEOF", err)
	}
	huge := append([]byte("RWT1"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if err := h.UnmarshalBinary(huge); err == nil {
		t.Error("a length of 2^64-1 was accepted")
	}
}

func FuzzTransferHeader(f *testing.F) {
	f.Add([]byte("RWT1\x00\x00\x00\x00\x00\x10\x00\x00")) // 1 MiB
	f.Add([]byte("RWT1\xff\xff\xff\xff\xff\xff\xff\xff")) // absurd length
	f.Add([]byte("GET / HTTP/1.1"))                       // not a transfer
	f.Fuzz(func(t *testing.T, b []byte) {
		var h transferHeader
		if err := h.UnmarshalBinary(b); err != nil {
			return
		}
		if h.Len < 0 || h.Len > maxTransfer {
			t.Fatalf("accepted length %d", h.Len)
		}
		out, _ := h.MarshalBinary()
		if !bytes.Equal(out, b[:transferHdrLen]) {
			t.Fatalf("re-encoding %x gave %x", b[:transferHdrLen], out)
		}
	})
}

func TestARPFrame(t *testing.T) {
	f := arpFrame{
		EthDst:    [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		EthSrc:    [6]byte{2, 0, 0, 0, 0, 1},
		Op:        ARPReply,
		SenderMAC: [6]byte{2, 0, 0, 0, 0, 1},
		SenderIP:  netip.MustParseAddr("203.0.113.91"),
		TargetMAC: [6]byte{2, 0, 0, 0, 0, 2},
		TargetIP:  netip.MustParseAddr("203.0.113.10"),
	}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g arpFrame
	if err := g.UnmarshalBinary(append(b, make([]byte, 18)...)); err != nil { // padded to 60 bytes
		t.Fatal(err)
	}
	if d := cmp.Diff(f, g, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	ip := append([]byte(nil), b...)
	ip[12], ip[13] = 0x08, 0x00
	if err := g.UnmarshalBinary(ip); !errors.Is(err, errNotARPv4) {
		t.Errorf("IPv4 frame: %v, want errNotARPv4", err)
	}
	if err := g.UnmarshalBinary(b[:30]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short frame: %v, want ErrUnexpectedEOF", err)
	}
}

func FuzzARPFrame(f *testing.F) {
	// A reply 203.0.113.91 is-at 02:00:00:00:00:01 to 203.0.113.10.
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x06\x00\x01\x08\x00\x06\x04\x00\x02\x02\x00\x00\x00\x00\x01\xcb\x00\x71\x5b\x02\x00\x00\x00\x00\x02\xcb\x00\x71\x0a"))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x06\x00\x01")) // truncated ARP
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x00E"))        // IPv4
	f.Fuzz(func(t *testing.T, b []byte) {
		var g arpFrame
		if err := g.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := g.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(out, b[:arpFrameLen]) {
			t.Fatalf("re-encoding %x gave %x", b[:arpFrameLen], out)
		}
	})
}

func TestParseIperf3(t *testing.T) {
	gbps, retr, err := ParseIperf3([]byte(`{"end":{"sum_sent":{"retransmits":7},"sum_received":{"bits_per_second":2.5e9}}}`))
	if err != nil || gbps != 2.5 || retr != 7 {
		t.Errorf("got %v Gbit/s, %d retransmits, %v", gbps, retr, err)
	}
	if _, _, err := ParseIperf3([]byte(`{"error":"unable to connect"}`)); err == nil {
		t.Error("an iperf3 error was not reported")
	}
	if _, _, err := ParseIperf3([]byte(`not json`)); err == nil {
		t.Error("garbage parsed")
	}
}
