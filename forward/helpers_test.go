package forward

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// Links of the reference lab: 0 ext 203.0.113.0/24, 1 int 198.51.100.0/24.
const (
	ext  = 0
	int_ = 1
)

var (
	client = netip.MustParseAddr("203.0.113.10")
	server = netip.MustParseAddr("198.51.100.10")
	remote = netip.MustParseAddr("192.0.2.50") // beyond the ext router
)

func labConfig() Config {
	return Config{
		Links: []Link{
			{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Primary: netip.MustParseAddr("203.0.113.1")},
			{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Primary: netip.MustParseAddr("198.51.100.1")},
		},
		VIPs: []netip.Addr{netip.MustParseAddr("203.0.113.91"), netip.MustParseAddr("198.51.100.91")},
		Rules: []Rule{
			{Name: "clients-to-service", FromLinks: []int{ext}, ToPrefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")},
				Proto: ProtoUDP, Ports: []PortRange{{7000, 7000}, {7001, 7002}}, Action: Accept},
			{Name: "web", FromLinks: []int{ext}, ToPrefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")},
				Proto: ProtoTCP, Ports: []PortRange{{80, 80}}, Action: Accept},
			{Name: "ping-in", FromLinks: []int{ext}, Proto: ProtoICMP, Action: Accept},
		},
		Default: Drop,
		Local:   []Service{{Proto: ProtoTCP, Ports: []PortRange{{22, 22}}}},
	}
}

func newFilter(t testing.TB, mod func(*Config)) *Filter {
	t.Helper()
	c := labConfig()
	if mod != nil {
		mod(&c)
	}
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ipv4 builds an IPv4 packet around l4 (no options, DF clear).
func ipv4(proto uint8, src, dst netip.Addr, l4 []byte) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], l4)
	return b
}

func tcp(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	l4[12] = 5 << 4
	l4[13] = flags
	return ipv4(protoTCP, src, dst, l4)
}

func udp(src, dst netip.Addr, sport, dport uint16, payload int) []byte {
	l4 := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	binary.BigEndian.PutUint16(l4[4:], uint16(8+payload))
	return ipv4(protoUDP, src, dst, l4)
}

func echo(src, dst netip.Addr, typ uint8, id uint16) []byte {
	l4 := make([]byte, 16)
	l4[0] = typ
	binary.BigEndian.PutUint16(l4[4:], id)
	return ipv4(protoICMP, src, dst, l4)
}

// icmpError builds an ICMP error from src quoting the packet orig.
func icmpError(src, dst netip.Addr, typ, code uint8, orig []byte) []byte {
	q := orig[:min(len(orig), 28)]
	l4 := make([]byte, 8+len(q))
	l4[0], l4[1] = typ, code
	copy(l4[8:], q)
	return ipv4(protoICMP, src, dst, l4)
}

// fragment returns the fragment of p at byte offset off (a multiple of 8)
// of length n of its payload, with MF set when more follows.
func fragment(p []byte, off, n int) []byte {
	payload := p[20:]
	end := min(off+n, len(payload))
	b := make([]byte, 20+end-off)
	copy(b, p[:20])
	copy(b[20:], payload[off:end])
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	ff := uint16(off / 8)
	if end < len(payload) {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	return b
}

const sec = int64(time.Second)
