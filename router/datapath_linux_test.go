package router_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/router/routertest"
)

// The reference lab node n1 over fake devices: ext0 203.0.113.1/24, int0
// 198.51.100.1/24, VIP 203.0.113.91 owned.
var (
	extMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}
	intMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x02}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x10, 0x10}
	serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x20, 0x20}
	extIP     = netip.MustParseAddr("203.0.113.1")
	intIP     = netip.MustParseAddr("198.51.100.1")
	clientIP  = netip.MustParseAddr("203.0.113.10")
	serverIP  = netip.MustParseAddr("198.51.100.10")
	vip       = netip.MustParseAddr("203.0.113.91")
)

// wait bounds every channel operation of these tests; a broken data path
// fails with a message instead of hanging until the test binary's timeout.
const wait = 10 * time.Second

type fakeNode struct {
	r        *router.Router
	ext, int *routertest.FakeLink
	tun      *routertest.FakeTUN
}

// startFakeNode runs a Router over routertest devices, without privileges,
// and stops it when the test ends, checking that Run closed the devices.
func startFakeNode(t *testing.T, mods ...func(*router.Config)) *fakeNode {
	n := &fakeNode{ext: routertest.NewFakeLink(extMAC, 1500), int: routertest.NewFakeLink(intMAC, 1500), tun: routertest.NewFakeTUN()}
	cfg := router.TestConfig()
	cfg.Links = []router.Link{
		{Name: "ext0", Primary: netip.PrefixFrom(extIP, 24)},
		{Name: "int0", Primary: netip.PrefixFrom(intIP, 24)},
	}
	cfg.VIPs = []netip.Addr{vip}
	cfg.ManageKernel = false
	cfg.Devices = &router.Devices{Links: []router.LinkDevice{n.ext, n.int}, TUN: n.tun}
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, m := range mods {
		m(&cfg)
	}
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	r.SetOwned([]netip.Addr{vip})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for name, c := range map[string]<-chan struct{}{"ext0": n.ext.Closed(), "int0": n.int.Closed(), "tun": n.tun.Closed()} {
			select {
			case <-c:
			default:
				t.Errorf("%s still open after Run returned", name)
			}
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func arpFrame(t *testing.T, op uint16, dst, src net.HardwareAddr, srcIP, dstIP netip.Addr, targetMAC net.HardwareAddr) []byte {
	return serialize(t,
		&layers.Ethernet{DstMAC: dst, SrcMAC: src, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: src, SourceProtAddress: srcIP.AsSlice(), DstHwAddress: targetMAC, DstProtAddress: dstIP.AsSlice()})
}

// ipPacket is an IPv4/UDP packet without an Ethernet header.
func ipPacket(t *testing.T, src, dst netip.Addr, ttl uint8, payload string) []byte {
	return udpPacket(t, src, dst, 40000, 7, ttl, payload)
}

// udpPacket is an IPv4/UDP packet between the given ports.
func udpPacket(t *testing.T, src, dst netip.Addr, sport, dport uint16, ttl uint8, payload string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: ttl, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

// ethFrame puts ip behind an Ethernet header (by hand: gopacket pads a lone
// header to the 60-byte minimum frame).
func ethFrame(dst, src net.HardwareAddr, ip []byte) []byte {
	f := append(append(append([]byte(nil), dst...), src...), 0x08, 0x00)
	return append(f, ip...)
}

// send hands b (without virtio-net header) to the router through in.
func send(t *testing.T, in chan<- []byte, b []byte) {
	t.Helper()
	select {
	case in <- routertest.VnetFrame(b):
	case <-time.After(wait):
		t.Fatal("the router does not read")
	}
}

// isGARP reports gratuitous ARP (sender and target address the same): the
// router announces the VIP on its own schedule, interleaved with the replies
// the tests wait for.
func isGARP(p gopacket.Packet) bool {
	a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	return ok && bytes.Equal(a.SourceProtAddress, a.DstProtAddress)
}

// expect returns the next frame written to out (virtio-net header checked
// and stripped), skipping gratuitous ARP.
func expect(t *testing.T, out <-chan []byte, what string) gopacket.Packet {
	t.Helper()
	for {
		select {
		case b := <-out:
			if len(b) < router.VirtioNetHdrLen || !bytes.Equal(b[:router.VirtioNetHdrLen], make([]byte, router.VirtioNetHdrLen)) {
				t.Fatalf("%s: frame %x does not start with a zero virtio-net header", what, b)
			}
			p := gopacket.NewPacket(b[router.VirtioNetHdrLen:], layers.LayerTypeEthernet, gopacket.Default)
			if isGARP(p) {
				continue
			}
			return p
		case <-time.After(wait):
			t.Fatalf("%s: nothing written", what)
		}
	}
}

func ipv4HeaderOK(ip *layers.IPv4) bool {
	h := ip.Contents
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return s == 0xffff
}

// TestDataPathOverFakes pushes frames through the router's receive loops,
// decisions and batched writes over routertest devices, without root: ARP
// for the owned VIP, forwarding after an ARP resolution, local delivery to
// TUN, ICMP time exceeded, and the OS's reply from TUN routed out.
func TestDataPathOverFakes(t *testing.T) {
	n := startFakeNode(t)

	// A client ARPs for the VIP: the reply comes from ext0's MAC.
	send(t, n.ext.In, arpFrame(t, layers.ARPRequest, layers.EthernetBroadcast, clientMAC, clientIP, vip, make(net.HardwareAddr, 6)))
	p := expect(t, n.ext.Out, "ARP reply for the VIP")
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || a.Operation != layers.ARPReply || !bytes.Equal(eth.DstMAC, clientMAC) || !bytes.Equal(a.SourceHwAddress, extMAC) ||
		!bytes.Equal(a.SourceProtAddress, vip.AsSlice()) || !bytes.Equal(a.DstHwAddress, clientMAC) || !bytes.Equal(a.DstProtAddress, clientIP.AsSlice()) {
		t.Fatalf("ARP reply for the VIP: got %v", p)
	}

	// The client sends through the node to the server on int0: the router
	// resolves the server first, then sends the rewritten frame.
	fwd := ipPacket(t, clientIP, serverIP, 64, "forward me")
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, fwd))
	p = expect(t, n.int.Out, "ARP request for the server")
	a, ok = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || a.Operation != layers.ARPRequest || !bytes.Equal(a.SourceHwAddress, intMAC) || !bytes.Equal(a.SourceProtAddress, intIP.AsSlice()) ||
		!bytes.Equal(a.DstProtAddress, serverIP.AsSlice()) {
		t.Fatalf("ARP request for the server: got %v", p)
	}
	send(t, n.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
	p = expect(t, n.int.Out, "forwarded frame")
	eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok || !bytes.Equal(eth.DstMAC, serverMAC) || !bytes.Equal(eth.SrcMAC, intMAC) || ip.TTL != 63 || !ipv4HeaderOK(ip) ||
		!bytes.Equal(ip.Payload, fwd[20:]) {
		t.Fatalf("forwarded frame: want %v → %v, TTL 63, valid checksum, payload kept; got %v", intMAC, serverMAC, p)
	}

	// Other traffic to the VIP goes to the OS through TUN unchanged, behind
	// its virtio-net header.
	local := ipPacket(t, clientIP, vip, 64, "for a local service")
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, local))
	select {
	case b := <-n.tun.Out:
		if want := routertest.VnetFrame(local); !bytes.Equal(b, want) {
			t.Fatalf("TUN got %x, want %x", b, want)
		}
	case <-time.After(wait):
		t.Fatal("nothing delivered to TUN")
	}

	// TTL 1 towards the server: ICMP time exceeded from ext0's primary
	// address, back to the client's MAC.
	expired := ipPacket(t, clientIP, serverIP, 1, "expire")
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, expired))
	p = expect(t, n.ext.Out, "ICMP time exceeded")
	eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, 0) || !bytes.Equal(eth.DstMAC, clientMAC) ||
		!ip.SrcIP.Equal(extIP.AsSlice()) || !ip.DstIP.Equal(clientIP.AsSlice()) || !bytes.HasPrefix(icmp.Payload, expired[:28]) {
		t.Fatalf("ICMP time exceeded: got %v", p)
	}

	// A local service answers from the VIP: the packet read from TUN leaves
	// ext0 towards the client's MAC (learned from its ARP request).
	reply := ipPacket(t, vip, clientIP, 64, "reply")
	select {
	case n.tun.In <- routertest.VnetFrame(reply):
	case <-time.After(wait):
		t.Fatal("the router does not read TUN")
	}
	p = expect(t, n.ext.Out, "reply from TUN")
	eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, clientMAC) || !bytes.Equal(eth.SrcMAC, extMAC) || !bytes.Equal(p.Data()[14:], reply) {
		t.Fatalf("reply from TUN: want %v → %v and the packet unchanged; got %v", extMAC, clientMAC, p)
	}

	st := n.r.Stats()
	if ext := st.Links[0]; ext.ARPReplies != 1 || ext.Forwarded != 1 || ext.Local != 1 || ext.ICMPErrors != 1 || st.TUN.Read != 1 || st.Links[1].ARPResolves != 1 {
		t.Errorf("counters: ext0 %+v, int0 resolves %d, TUN %+v", ext, st.Links[1].ARPResolves, st.TUN)
	}
}

// OnGARP hears of each announcement after it went out: the VIP acquired
// in startFakeNode is announced on ext0 and reported with a time no
// earlier than the frame's write.
func TestOnGARPReportsAnnouncements(t *testing.T) {
	type garp struct {
		vip netip.Addr
		at  time.Time
	}
	heard := make(chan garp, 16)
	start := time.Now()
	n := startFakeNode(t, func(c *router.Config) {
		c.OnGARP = func(v netip.Addr, at time.Time) {
			select {
			case heard <- garp{v, at}:
			default:
			}
		}
	})
	var wrote time.Time
	for wrote.IsZero() {
		select {
		case b := <-n.ext.Out:
			if p := gopacket.NewPacket(b[router.VirtioNetHdrLen:], layers.LayerTypeEthernet, gopacket.Default); isGARP(p) {
				wrote = time.Now()
			}
		case <-time.After(wait):
			t.Fatal("no gratuitous ARP for the acquired VIP")
		}
	}
	select {
	case g := <-heard:
		if g.vip != vip {
			t.Errorf("OnGARP reported %v, want %v", g.vip, vip)
		}
		if g.at.Before(start) || g.at.After(time.Now()) {
			t.Errorf("OnGARP time %v outside the test's [%v, now]", g.at, start)
		}
	case <-time.After(wait):
		t.Fatalf("a gratuitous ARP went out at %v but OnGARP was not called", wrote)
	}
}
