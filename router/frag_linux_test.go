package router_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"

	"github.com/ringway/ringway/router"
	"github.com/ringway/ringway/router/routertest"
)

// TestFragmentationOverFakes: a 3000-byte UDP datagram without DF towards
// int0 (MTU 1000) leaves as fragments of at most 1000 bytes, offsets
// multiples of 8, MF on all but the last, each header checksum valid and
// TTL decremented; gopacket's reassembler (an independent model) gives back
// the original datagram. A GSO super-frame of the same size is passed
// through whole (the device segments it), and a DF one still gets ICMP
// fragmentation needed.
func TestFragmentationOverFakes(t *testing.T) {
	n := startFakeNode(t, func(c *router.Config) {
		c.Devices.Links[1].(*routertest.FakeLink).SetMTU(1000)
	})
	// Resolve the server with a small packet first.
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, ipPacket(t, clientIP, serverIP, 64, "hello")))
	expect(t, n.int.Out, "ARP request for the server")
	send(t, n.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
	expect(t, n.int.Out, "the small packet")

	payload := make([]byte, 3000-28)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	dg := ipPacket(t, clientIP, serverIP, 64, string(payload))
	dg[6] &^= 0x40 // clear DF
	fixIPv4Checksum(dg)
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, dg))

	d := ip4defrag.NewIPv4Defragmenter()
	var whole *layers.IPv4
	var frags int
	for whole == nil {
		p := expect(t, n.int.Out, "fragment")
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || !bytes.Equal(eth.DstMAC, serverMAC) || !bytes.Equal(eth.SrcMAC, intMAC) {
			t.Fatalf("fragment %d: got %v", frags, p)
		}
		frags++
		last := ip.Flags&layers.IPv4MoreFragments == 0
		if int(ip.Length) > 1000 || ip.TTL != 63 || !ipv4HeaderOK(ip) || ip.Id != 0x1234 ||
			(!last && (int(ip.Length)-20)%8 != 0) {
			t.Fatalf("fragment %d: length %d (MTU 1000), TTL %d, checksum ok %v, id %#x, data %d bytes (multiple of 8 unless last)",
				frags, ip.Length, ip.TTL, ipv4HeaderOK(ip), ip.Id, int(ip.Length)-20)
		}
		out, err := d.DefragIPv4(ip)
		if err != nil {
			t.Fatalf("reassembly: %v", err)
		}
		whole = out
	}
	if frags != 4 || int(whole.Length) != len(dg) || !bytes.Equal(whole.Payload, dg[20:]) {
		t.Fatalf("%d fragments reassembled to %d bytes; want 4 fragments (3000 bytes at MTU 1000) giving back the datagram", frags, whole.Length)
	}

	// A GSO super-frame is forwarded whole: the output device segments it.
	gso := routertest.VnetFrame(ethFrame(extMAC, clientMAC, dg))
	gso[1] = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	select {
	case n.ext.In <- gso:
	case <-timeout():
		t.Fatal("the router does not read")
	}
	b := nextFrame(t, n.int.Out)
	if len(b) != router.VirtioNetHdrLen+14+len(dg) || b[1] != 1 {
		t.Fatalf("GSO frame: %d bytes out, GSO type %d; want it whole (%d) with its header", len(b), b[1], router.VirtioNetHdrLen+14+len(dg))
	}

	// With DF: fragmentation needed, as before.
	dg[6] |= 0x40
	fixIPv4Checksum(dg)
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, dg))
	p := expect(t, n.ext.Out, "ICMP fragmentation needed")
	if icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); !ok || icmp.TypeCode.Code() != layers.ICMPv4CodeFragmentationNeeded || icmp.Seq != 1000 {
		t.Fatalf("DF datagram: got %v, want fragmentation needed, MTU 1000", p)
	}
	if st := n.r.Stats().Links[1]; st.Fragmented != 1 || st.Fragments != 4 {
		t.Errorf("int0 fragmented %d into %d fragments, want 1 into 4", st.Fragmented, st.Fragments)
	}
}

func fixIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	hl := int(ip[0]&0x0f) * 4
	var s uint32
	for i := 0; i < hl; i += 2 {
		s += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	c := ^uint16(s)
	ip[10], ip[11] = byte(c>>8), byte(c)
}

// nextFrame returns the next frame written to out that is not gratuitous
// ARP, with its virtio-net header.
func nextFrame(t *testing.T, out <-chan []byte) []byte {
	t.Helper()
	for {
		select {
		case b := <-out:
			if isGARP(gopacket.NewPacket(b[router.VirtioNetHdrLen:], layers.LayerTypeEthernet, gopacket.Default)) {
				continue
			}
			return b
		case <-timeout():
			t.Fatal("nothing written")
		}
	}
}

func timeout() <-chan time.Time { return time.After(wait) }
