package router

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	extMAC    = MAC{0x02, 0, 0, 0, 0x01, 0x01}
	intMAC    = MAC{0x02, 0, 0, 0, 0x01, 0x02}
	clientMAC = MAC{0x02, 0, 0, 0, 0x10, 0x10}
	otherMAC  = MAC{0x02, 0, 0, 0, 0x02, 0x01}
	clientIP  = netip.MustParseAddr("203.0.113.10")
	serverIP  = netip.MustParseAddr("198.51.100.10")
	vipExt    = netip.MustParseAddr("203.0.113.91")
	vipInt    = netip.MustParseAddr("198.51.100.91")
)

// testPlane is the reference lab node n1: ext0 203.0.113.1/24, int0
// 198.51.100.1/24, default route via 203.0.113.254.
func testPlane(t testing.TB) *plane {
	t.Helper()
	links := []linkInfo{
		{index: 0, name: "ext0", mac: extMAC, primary: netip.MustParseAddr("203.0.113.1"), prefix: netip.MustParsePrefix("203.0.113.0/24"), mtu: 1500},
		{index: 1, name: "int0", mac: intMAC, primary: netip.MustParseAddr("198.51.100.1"), prefix: netip.MustParsePrefix("198.51.100.0/24"), mtu: 1500},
	}
	rt, err := newRouteTable([]netip.Prefix{links[0].prefix, links[1].prefix},
		[]Route{{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("203.0.113.254")}})
	if err != nil {
		t.Fatal(err)
	}
	return &plane{links: links, routes: rt}
}

func testOwned(vips ...netip.Addr) *ownedSet {
	s := &ownedSet{vips: map[[4]byte]ownedVIP{}}
	for _, v := range vips {
		link := 0
		if v.As4()[0] == 198 {
			link = 1
		}
		s.vips[v.As4()] = ownedVIP{link: link, c: &vipCounters{}}
	}
	return s
}

// ipFrame builds an Ethernet+IPv4 frame with a valid header checksum.
func ipFrame(dstMAC, srcMAC MAC, src, dst netip.Addr, ttl, proto uint8, payload []byte) []byte {
	f := make([]byte, ethHdrLen+ipv4MinHdr+len(payload))
	putEth(f, dstMAC, srcMAC, ethTypeIPv4)
	ip := f[ethHdrLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipv4MinHdr+len(payload)))
	binary.BigEndian.PutUint16(ip[4:6], 0x1234)
	ip[6] = 0x40 // DF
	ip[8] = ttl
	ip[9] = proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	setIPv4Checksum(ip)
	copy(ip[ipv4MinHdr:], payload)
	return f
}

func echoRequest(id, seq uint16, data []byte) []byte {
	b := make([]byte, 8+len(data))
	b[0] = 8
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	copy(b[8:], data)
	binary.BigEndian.PutUint16(b[2:4], checksum(b, 0))
	return b
}

func arpFrame(dst, src MAC, a arpPacket) []byte {
	f := make([]byte, minFrame)
	putARPFrame(f, dst, src, &a)
	return f
}
