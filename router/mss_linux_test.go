package router_test

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
)

// sendTunnel is a TunnelDevice that records the packets sent through it.
type sendTunnel struct {
	sent chan []byte
	done chan struct{}
	once sync.Once
}

var _ router.TunnelDevice = (*sendTunnel)(nil)

func (d *sendTunnel) Send(_ uint16, _ uint8, _ router.Segments, ip []byte) error {
	d.sent <- slices.Clone(ip)
	return nil
}

func (d *sendTunnel) SendBatch(pkts []router.TunnelPacket) int {
	for _, p := range pkts {
		d.sent <- slices.Clone(p.IP)
	}
	return 0
}

func (d *sendTunnel) Paths() int { return 1 }

func (d *sendTunnel) Read(int, [][]byte, []int, []uint16, []uint8, []router.Segments, int) (int, error) {
	<-d.done
	return 0, net.ErrClosed
}

func (d *sendTunnel) Flush() {}

func (d *sendTunnel) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

// TestTunnelMTUOverFakes: with the tunnel's 76 bytes of overhead on
// 1500-byte links the tunnel carries packets of up to 1424 bytes. A TCP
// SYN the filter passes leaves with its MSS clamped to 1384; a reply to
// be redirected that fits goes through the tunnel; a larger one with DF
// is not sent, and its sender gets ICMP fragmentation needed with MTU
// 1424.
func TestTunnelMTUOverFakes(t *testing.T) {
	f, err := forward.New(forward.Config{
		Links: []forward.Link{
			{Prefix: netip.PrefixFrom(extIP, 24).Masked(), Primary: extIP},
			{Prefix: netip.PrefixFrom(intIP, 24).Masked(), Primary: intIP},
		},
		VIPs: []netip.Addr{vip},
		Rules: []forward.Rule{
			{Name: "udp", FromLinks: []int{0}, Proto: forward.ProtoUDP, Ports: []forward.PortRange{{Lo: 7000, Hi: 7000}}, Action: forward.Accept},
			{Name: "web", FromLinks: []int{0}, Proto: forward.ProtoTCP, Ports: []forward.PortRange{{Lo: 80, Hi: 80}}, Action: forward.Accept},
		},
		Default: forward.Drop,
		Self:    1,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := forward.DirectoryKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	dir := forward.NewDirectory(key, []uint16{1, 2})
	f.SetDirectory(dir)
	tun := &sendTunnel{sent: make(chan []byte, 16), done: make(chan struct{})}
	n := startFakeNode(t, func(c *router.Config) {
		c.Filter, c.Tunnel, c.TunnelOverhead = f, tun, forward.TunnelOverhead
	})

	// The SYN: the server is resolved first, then the SYN leaves clamped.
	syn := serialize(t,
		&layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: clientIP.AsSlice(), DstIP: serverIP.AsSlice()},
		withNet(&layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 64240, Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}, // 1460
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}}, clientIP, serverIP))
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, syn))
	expect(t, n.int.Out, "ARP request for the server")
	send(t, n.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
	p := expect(t, n.int.Out, "the SYN")
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok || !tcp.SYN {
		t.Fatalf("want the SYN, got %v", p)
	}
	var mss uint16
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindMSS {
			mss = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
		}
	}
	if mss != 1384 {
		t.Errorf("the SYN left with MSS %d, want 1384 (1500 - 76 - 40)", mss)
	}
	ip4 := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !tcpChecksumOK(ip4.Contents, ip4.Payload, ip4.SrcIP, ip4.DstIP) {
		t.Error("the clamped SYN's TCP checksum is wrong")
	}

	// Replies of a UDP flow n2 is authoritative for: n1 has no state for
	// them (the client never sent), the rules refuse them, so they are
	// redirected to n2.
	var port uint16
	for port = 30000; ; port++ {
		if a, _ := dir.Lookup(forward.Key{A: serverIP.As4(), B: clientIP.As4(), PA: 7000, PB: port, Proto: 17}); a == 2 {
			break
		}
	}
	fits := udpPacket(t, serverIP, clientIP, 7000, port, 64, strings.Repeat("f", 1424-28))
	send(t, n.int.In, ethFrame(intMAC, serverMAC, fits))
	select {
	case b := <-tun.sent:
		if len(b) != 1424 {
			t.Errorf("tunnelled a %d-byte packet, want the 1424 sent", len(b))
		}
	case <-time.After(wait):
		t.Fatal("a 1424-byte reply was not tunnelled")
	}
	big := udpPacket(t, serverIP, clientIP, 7000, port, 64, strings.Repeat("b", 1425-28))
	send(t, n.int.In, ethFrame(intMAC, serverMAC, big))
	p = expect(t, n.int.Out, "ICMP fragmentation needed")
	icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || icmp.Seq != 1424 {
		t.Errorf("want ICMP fragmentation needed with next-hop MTU 1424, got %v", p)
	}
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); eth.DstMAC.String() != serverMAC.String() {
		t.Errorf("ICMP sent to %v, want the server %v", eth.DstMAC, serverMAC)
	}
	select {
	case b := <-tun.sent:
		t.Errorf("a %d-byte DF packet was tunnelled", len(b))
	case <-time.After(50 * time.Millisecond):
	}
	if ts := n.r.Stats().Tunnel; ts.FragNeeded != 1 || ts.MSSClamped != 1 || ts.Sent != 1 {
		t.Errorf("tunnel stats: frag needed %d, MSS clamped %d, sent %d; want 1 each", ts.FragNeeded, ts.MSSClamped, ts.Sent)
	}
}

// withNet sets the TCP layer's network layer for its checksum.
func withNet(tcp *layers.TCP, src, dst netip.Addr) *layers.TCP {
	tcp.SetNetworkLayerForChecksum(&layers.IPv4{SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Protocol: layers.IPProtocolTCP})
	return tcp
}

// tcpChecksumOK verifies the TCP checksum of segment seg between src and
// dst.
func tcpChecksumOK(_ []byte, seg []byte, src, dst net.IP) bool {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.To4())
	add(dst.To4())
	s += 6 + uint32(len(seg))
	add(seg)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}
