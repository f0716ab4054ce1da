package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
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
		{index: 0, name: "ext0", mac: extMAC, primary: netip.MustParseAddr("203.0.113.1"), prefix: netip.MustParsePrefix("203.0.113.0/24"), mtu: newLinkMTU(1500)},
		{index: 1, name: "int0", mac: intMAC, primary: netip.MustParseAddr("198.51.100.1"), prefix: netip.MustParsePrefix("198.51.100.0/24"), mtu: newLinkMTU(1500)},
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

// testLink is an in-package LinkDevice (routertest's fakes import this
// package, so its own tests cannot use them): Read hands out the replay
// frames (virtio-net header included) again and again, Write counts what it
// is given and keeps the last frame, without allocating.
type testLink struct {
	mac     MAC
	replay  [][]byte
	written atomic.Uint64
	mu      sync.Mutex
	last    [2048]byte
	lastN   int
}

func (l *testLink) Readers() []FrameReader { return []FrameReader{l} }

func (l *testLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for ; n < len(l.replay) && n < len(bufs); n++ {
		sizes[n] = copy(bufs[n][offset:], l.replay[n])
	}
	return n, nil
}

func (l *testLink) Write(bufs [][]byte, offset int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bufs {
		l.lastN = copy(l.last[:], b[offset:])
	}
	l.written.Add(uint64(len(bufs)))
	return len(bufs), nil
}

// lastFrame returns the last frame written, without its virtio-net header.
func (l *testLink) lastFrame() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.last[vnetHdrLen:l.lastN]...)
}

func (l *testLink) HardwareAddr() net.HardwareAddr { return l.mac[:] }
func (l *testLink) MTU() int                       { return 1500 }
func (l *testLink) Dropped() uint64                { return 0 }
func (l *testLink) Close() error                   { return nil }

// testTUN is an in-package TUNDevice: it reads nothing (net.ErrClosed),
// writes are counted.
type testTUN struct{ written atomic.Uint64 }

func (t *testTUN) Read([][]byte, []int, int) (int, error) { return 0, net.ErrClosed }
func (t *testTUN) Write(bufs [][]byte, _ int) (int, error) {
	t.written.Add(uint64(len(bufs)))
	return len(bufs), nil
}
func (t *testTUN) Close() error { return nil }

var (
	_ LinkDevice = (*testLink)(nil)
	_ TUNDevice  = (*testTUN)(nil)
)
