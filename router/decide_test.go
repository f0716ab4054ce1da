package router

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestDecideIPv4(t *testing.T) {
	p := testPlane(t)
	owned := testOwned(vipExt, vipInt)
	udp := make([]byte, 16)
	far := netip.MustParseAddr("192.0.2.7")
	type want struct {
		Action  ipAction
		Reason  DropReason
		Out     int
		NextHop netip.Addr
		Type    uint8
		Code    uint8
	}
	tests := []struct {
		name  string
		frame []byte
		in    int
		want  want
	}{
		{"client to server is forwarded out int0 to the server", ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, udp), 0,
			want{Action: ipForward, Out: 1, NextHop: serverIP}},
		{"server to client is forwarded out ext0", ipFrame(intMAC, otherMAC, serverIP, clientIP, 64, protoUDP, udp), 1,
			want{Action: ipForward, Out: 0, NextHop: clientIP}},
		{"off-subnet destination goes to the default route's next hop", ipFrame(intMAC, otherMAC, serverIP, far, 64, protoUDP, udp), 1,
			want{Action: ipForward, Out: 0, NextHop: netip.MustParseAddr("203.0.113.254")}},
		{"TTL 1 yields time exceeded", ipFrame(extMAC, clientMAC, clientIP, serverIP, 1, protoUDP, udp), 0,
			want{Action: ipICMPError, Reason: DropTTLExceeded, Type: 11}},
		{"TTL 0 yields time exceeded", ipFrame(extMAC, clientMAC, clientIP, serverIP, 0, protoUDP, udp), 0,
			want{Action: ipICMPError, Reason: DropTTLExceeded, Type: 11}},
		{"echo to an owned VIP is answered", ipFrame(extMAC, clientMAC, clientIP, vipExt, 64, protoICMP, echoRequest(1, 1, nil)), 0,
			want{Action: ipEcho}},
		{"echo to the internal VIP from outside is answered too", ipFrame(extMAC, clientMAC, clientIP, vipInt, 64, protoICMP, echoRequest(1, 1, nil)), 0,
			want{Action: ipEcho}},
		{"TCP to an owned VIP goes to the OS", ipFrame(extMAC, clientMAC, clientIP, vipExt, 64, protoTCP, make([]byte, 20)), 0,
			want{Action: ipLocal}},
		{"TTL 1 to an owned VIP is still delivered", ipFrame(extMAC, clientMAC, clientIP, vipExt, 1, protoUDP, udp), 0,
			want{Action: ipLocal}},
		{"a VIP we do not own is routed to its owner", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("203.0.113.92"), 64, protoUDP, udp), 0,
			want{Action: ipForward, Out: 0, NextHop: netip.MustParseAddr("203.0.113.92")}},
		{"to our primary address is the kernel's", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("203.0.113.1"), 64, protoUDP, udp), 0,
			want{Reason: DropLocal}},
		{"to another subnet's primary is the kernel's", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("198.51.100.1"), 64, protoUDP, udp), 0,
			want{Reason: DropLocal}},
		{"limited broadcast", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("255.255.255.255"), 64, protoUDP, udp), 0,
			want{Reason: DropBroadcast}},
		{"directed broadcast", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("198.51.100.255"), 64, protoUDP, udp), 0,
			want{Reason: DropBroadcast}},
		{"multicast", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("224.0.0.5"), 64, protoUDP, udp), 0,
			want{Reason: DropBroadcast}},
		{"L2 broadcast", ipFrame(broadcastMAC, clientMAC, clientIP, serverIP, 64, protoUDP, udp), 0,
			want{Reason: DropBroadcast}},
		{"another host's MAC", ipFrame(otherMAC, clientMAC, clientIP, serverIP, 64, protoUDP, udp), 0,
			want{Reason: DropNotOurMAC}},
		{"loopback source", ipFrame(extMAC, clientMAC, netip.MustParseAddr("127.0.0.1"), serverIP, 64, protoUDP, udp), 0,
			want{Reason: DropMartianSource}},
		{"spoofed primary source", ipFrame(extMAC, clientMAC, netip.MustParseAddr("198.51.100.1"), serverIP, 64, protoUDP, udp), 0,
			want{Reason: DropMartianSource}},
		{"zero destination", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("0.1.2.3"), 64, protoUDP, udp), 0,
			want{Reason: DropMartianDest}},
		{"class E destination", ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("240.0.0.1"), 64, protoUDP, udp), 0,
			want{Reason: DropMartianDest}},
		{"truncated", ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, udp)[:30], 0,
			want{Reason: DropTruncated}},
		{"too big with DF yields fragmentation needed", ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 1600)), 0,
			want{Action: ipICMPError, Reason: DropTooBig, Type: 3, Code: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.decideIPv4(tc.frame, tc.in, owned, false)
			got := want{Action: d.action, Reason: d.reason, Out: d.out, NextHop: d.nextHop, Type: d.icmpType, Code: d.icmpCode}
			if got.Action != ipForward {
				got.Out, got.NextHop = 0, netip.Addr{}
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("decideIPv4 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideNoRouteWithoutDefault(t *testing.T) {
	p := testPlane(t)
	rt, err := newRouteTable([]netip.Prefix{p.links[0].prefix, p.links[1].prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.routes = rt
	d := p.decideIPv4(ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("192.0.2.1"), 64, protoUDP, make([]byte, 8)), 0, nil, false)
	if d.action != ipICMPError || d.reason != DropNoRoute || d.icmpType != 3 || d.icmpCode != 0 {
		t.Fatalf("got action %d reason %v type %d/%d, want ICMP net unreachable", d.action, d.reason, d.icmpType, d.icmpCode)
	}
	// No ICMP error about an ICMP error (RFC 1812 4.3.2.7).
	te := []byte{11, 0, 0, 0, 0, 0, 0, 0}
	d = p.decideIPv4(ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("192.0.2.1"), 64, protoICMP, te), 0, nil, false)
	if d.action != ipDrop || d.reason != DropNoRoute {
		t.Fatalf("ICMP error about an ICMP error: got action %d reason %v, want a silent drop", d.action, d.reason)
	}
}

func TestRewriteForward(t *testing.T) {
	f := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 8))
	rewriteForward(f, intMAC, otherMAC)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if MAC(eth.SrcMAC) != intMAC || MAC(eth.DstMAC) != otherMAC {
		t.Fatalf("MACs %v → %v, want %v → %v", eth.SrcMAC, eth.DstMAC, intMAC, otherMAC)
	}
	if ip.TTL != 63 {
		t.Fatalf("TTL %d, want 63", ip.TTL)
	}
	if checksum(f[ethHdrLen:ethHdrLen+20], 0) != 0 {
		t.Fatalf("header checksum invalid after rewrite")
	}
}

func TestAnswerEcho(t *testing.T) {
	p := testPlane(t)
	f := ipFrame(extMAC, clientMAC, clientIP, vipExt, 64, protoICMP, echoRequest(7, 3, []byte("ringway")))
	d := p.decideIPv4(f, 0, testOwned(vipExt), false)
	n := answerEcho(f, &p.links[0], d.hdr)
	pkt := gopacket.NewPacket(f[:n], layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("reply does not decode: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if MAC(eth.DstMAC) != clientMAC || MAC(eth.SrcMAC) != extMAC {
		t.Errorf("reply MACs %v → %v", eth.SrcMAC, eth.DstMAC)
	}
	if ip.SrcIP.String() != vipExt.String() || ip.DstIP.String() != clientIP.String() {
		t.Errorf("reply %v → %v, want %v → %v", ip.SrcIP, ip.DstIP, vipExt, clientIP)
	}
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != 7 || icmp.Seq != 3 || string(icmp.Payload) != "ringway" {
		t.Errorf("reply ICMP %v id %d seq %d payload %q", icmp.TypeCode, icmp.Id, icmp.Seq, icmp.Payload)
	}
	if checksum(f[ethHdrLen+20:n], 0) != 0 || checksum(f[ethHdrLen:ethHdrLen+20], 0) != 0 {
		t.Errorf("reply checksums invalid")
	}
}

func TestPutICMPError(t *testing.T) {
	p := testPlane(t)
	payload := make([]byte, 1000)
	f := ipFrame(extMAC, clientMAC, clientIP, serverIP, 1, protoUDP, payload)
	d := p.decideIPv4(f, 0, nil, false)
	out := make([]byte, icmpErrorFrameMax)
	n := putICMPError(out, &p.links[0], clientMAC, f[ethHdrLen:], d.hdr, d.icmpType, d.icmpCode, d.mtu)
	if n > icmpErrorFrameMax {
		t.Fatalf("frame %d bytes exceeds %d", n, icmpErrorFrameMax)
	}
	pkt := gopacket.NewPacket(out[:n], layers.LayerTypeEthernet, gopacket.Default)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != "203.0.113.1" || ip.DstIP.String() != clientIP.String() || ip.Length != 576 {
		t.Errorf("error %v → %v length %d, want 203.0.113.1 → %v length 576", ip.SrcIP, ip.DstIP, ip.Length, clientIP)
	}
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(11, 0) {
		t.Errorf("type %v, want time exceeded", icmp.TypeCode)
	}
	quoted := gopacket.NewPacket(icmp.Payload, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if quoted.SrcIP.String() != clientIP.String() || quoted.DstIP.String() != serverIP.String() {
		t.Errorf("quoted header %v → %v", quoted.SrcIP, quoted.DstIP)
	}
	if checksum(out[ethHdrLen+20:n], 0) != 0 || checksum(out[ethHdrLen:ethHdrLen+20], 0) != 0 {
		t.Errorf("error checksums invalid")
	}
}

func TestDecideLocalOut(t *testing.T) {
	p := testPlane(t)
	f := ipFrame(MAC{}, MAC{}, vipExt, clientIP, 64, protoTCP, make([]byte, 20))
	d := p.decideLocalOut(f[ethHdrLen:], false)
	if d.action != ipForward || d.out != 0 || d.nextHop != clientIP {
		t.Fatalf("reply from VIP: action %d out %d next hop %v, want forward on ext0 to the client", d.action, d.out, d.nextHop)
	}
}

func TestRouteTableLongestPrefix(t *testing.T) {
	rt, err := newRouteTable(
		[]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/24")},
		[]Route{
			{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("203.0.113.254")},
			{To: netip.MustParsePrefix("192.0.2.0/25"), Via: netip.MustParseAddr("198.51.100.254")},
		})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dst  string
		link int
		nh   string
	}{
		{"203.0.113.77", 0, "203.0.113.77"},
		{"198.51.100.3", 1, "198.51.100.3"},
		{"192.0.2.5", 1, "198.51.100.254"},
		{"192.0.2.200", 0, "203.0.113.254"},
		{"8.8.8.8", 0, "203.0.113.254"},
	}
	for _, tc := range tests {
		link, nh, ok := rt.lookup(netip.MustParseAddr(tc.dst))
		if !ok || link != tc.link || nh.String() != tc.nh {
			t.Errorf("lookup(%s) = %d %v %v, want %d %s", tc.dst, link, nh, ok, tc.link, tc.nh)
		}
	}
	if _, err := newRouteTable([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		[]Route{{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.1")}}); err == nil {
		t.Error("a route whose next hop is on no connected subnet was accepted")
	}
}

// TestForwardDoesNotAllocate pins the hot path: decide, route, rewrite.
func TestForwardDoesNotAllocate(t *testing.T) {
	p := testPlane(t)
	owned := testOwned(vipExt, vipInt)
	f := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 18))
	nt := newNeighTable(TestConfig().neighConfig())
	nt.learn(serverIP, otherMAC, learnCreate, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		copy(f[0:6], extMAC[:])
		f[ethHdrLen+8] = 64
		setIPv4Checksum(f[ethHdrLen:])
		d := p.decideIPv4(f, 0, owned, false)
		mac, ok, _ := nt.lookup(d.nextHop, 1)
		if d.action != ipForward || !ok {
			t.Fatal("not forwarded")
		}
		rewriteForward(f, p.links[d.out].mac, mac)
	})
	if allocs != 0 {
		t.Fatalf("forwarding allocates %.1f times per packet, want 0", allocs)
	}
}

func BenchmarkDecideForward(b *testing.B) {
	p := testPlane(b)
	owned := testOwned(vipExt, vipInt)
	f := ipFrame(extMAC, clientMAC, clientIP, serverIP, 255, protoUDP, make([]byte, 18))
	nt := newNeighTable(TestConfig().neighConfig())
	nt.learn(serverIP, otherMAC, learnCreate, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		copy(f[0:6], extMAC[:])
		if f[ethHdrLen+8] < 2 {
			f[ethHdrLen+8] = 255
			setIPv4Checksum(f[ethHdrLen:])
		}
		d := p.decideIPv4(f, 0, owned, false)
		mac, _, _ := nt.lookup(d.nextHop, 1)
		rewriteForward(f, p.links[d.out].mac, mac)
	}
}
