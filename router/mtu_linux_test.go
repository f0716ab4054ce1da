package router_test

import (
	"testing"
	"testing/synctest"

	"github.com/gopacket/gopacket/layers"
)

// TestMTUChangeFollowed: a link's MTU change at run time (FakeLink.SetMTU,
// as `ip link set int0 mtu 1400`) is used from then on: a 1450-byte DF
// packet the router forwarded at MTU 1500 now gets ICMP fragmentation
// needed naming 1400. Under synctest, Wait returns once the router's
// goroutines have taken the signal, so the test needs no sleep.
func TestMTUChangeFollowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startFakeNode(t)
		big := ipPacket(t, clientIP, serverIP, 64, string(make([]byte, 1450-28)))
		// Resolve the server first (the solicited reply creates its entry).
		send(t, n.ext.In, ethFrame(extMAC, clientMAC, big))
		expect(t, n.int.Out, "ARP request for the server")
		send(t, n.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
		if p := expect(t, n.int.Out, "1450 bytes at MTU 1500"); len(p.Data()) != 14+1450 {
			t.Fatalf("forwarded %d bytes, want the whole packet", len(p.Data()))
		}

		n.int.SetMTU(1400)
		synctest.Wait()
		if got := n.r.Stats().Links[1].MTU; got != 1400 {
			t.Fatalf("int0 MTU in Stats %d after SetMTU(1400)", got)
		}
		send(t, n.ext.In, ethFrame(extMAC, clientMAC, big))
		p := expect(t, n.ext.Out, "ICMP fragmentation needed")
		icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok || icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded) || icmp.Seq != 1400 {
			t.Fatalf("after the MTU change: got %v, want fragmentation needed with next-hop MTU 1400", p)
		}
	})
}
