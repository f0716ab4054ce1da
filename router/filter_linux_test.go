package router_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
)

// With the stateful filter, the worker forwards what the rules accept and
// the replies of accepted flows, drops the rest (counted as filtered), and
// delivers to TUN only the listed local services.
func TestFilterOverFakes(t *testing.T) {
	f, err := forward.New(forward.Config{
		Links: []forward.Link{
			{Prefix: netip.PrefixFrom(extIP, 24).Masked(), Primary: extIP},
			{Prefix: netip.PrefixFrom(intIP, 24).Masked(), Primary: intIP},
		},
		VIPs:    []netip.Addr{vip},
		Rules:   []forward.Rule{{Name: "service", FromLinks: []int{0}, Proto: forward.ProtoUDP, Ports: []forward.PortRange{{Lo: 7000, Hi: 7000}}, Action: forward.Accept}},
		Default: forward.Drop,
		Local:   []forward.Service{{Proto: forward.ProtoUDP, Ports: []forward.PortRange{{Lo: 53, Hi: 53}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := startFakeNode(t, func(c *router.Config) { c.Filter = f })

	// Resolve the server once so forwarded frames go straight out.
	first := udpPacket(t, clientIP, serverIP, 40000, 7000, 64, "first")
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, first))
	expect(t, n.int.Out, "ARP request for the server")
	send(t, n.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
	expectUDP(t, n.int.Out, "the accepted first packet", 7000)

	// Refused, then accepted: the worker handles one link's frames in
	// order, so the next frame out is the accepted one.
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, 40000, 7001, 64, "refused")))
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, 40001, 7000, 64, "accepted")))
	expectUDP(t, n.int.Out, "the second accepted flow (not the refused one)", 7000)

	// The server's reply to the first flow passes (after the router
	// resolves the client).
	send(t, n.int.In, ethFrame(intMAC, serverMAC, udpPacket(t, serverIP, clientIP, 7000, 40000, 64, "reply")))
	for {
		p := expect(t, n.ext.Out, "the reply or an ARP request for the client")
		if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPRequest {
			send(t, n.ext.In, arpFrame(t, layers.ARPReply, extMAC, clientMAC, clientIP, extIP, extMAC))
			continue
		}
		if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || u.SrcPort != 7000 {
			t.Fatalf("want the server's reply, got %v", p)
		}
		break
	}

	// Local services on the VIP: 53/udp reaches TUN, 54/udp does not.
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, vip, 40000, 54, 64, "not listed")))
	send(t, n.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, vip, 40000, 53, 64, "dns")))
	select {
	case b := <-n.tun.Out:
		p := b[router.VirtioNetHdrLen:]
		if len(p) < 24 || p[22] != 0 || p[23] != 53 {
			t.Fatalf("TUN got %x, want the packet to port 53 only", p)
		}
	case <-time.After(wait):
		t.Fatal("nothing reached TUN")
	}

	st := n.r.Stats()
	var filtered, local uint64
	for _, l := range st.Links {
		filtered += l.Drops[router.DropFiltered]
		local += l.Drops[router.DropLocalFiltered]
	}
	fs := f.Stats()
	if filtered != 1 || local != 1 || fs.Drops[forward.ReasonRule] != 1 || fs.Drops[forward.ReasonLocal] != 1 {
		t.Errorf("router drops filtered %d local %d, filter rule %d local %d; want 1 each", filtered, local,
			fs.Drops[forward.ReasonRule], fs.Drops[forward.ReasonLocal])
	}
}

// expectUDP waits for the next frame on out and checks it is UDP to dport.
func expectUDP(t *testing.T, out <-chan []byte, what string, dport uint16) {
	t.Helper()
	p := expect(t, out, what)
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || uint16(u.DstPort) != dport {
		t.Fatalf("%s: want UDP to port %d, got %v", what, dport, p)
	}
}
