package router_test

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
)

// fakeTunnel is a TunnelDevice that carries no data: Flush hands the
// filter's registers, hints and acks to msgs, for the test to answer.
type fakeTunnel struct {
	f    *forward.Filter
	msgs chan forward.TunnelHeader
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	buf  []forward.TunnelHeader
}

var _ router.TunnelDevice = (*fakeTunnel)(nil)

func newFakeTunnel(f *forward.Filter) *fakeTunnel {
	return &fakeTunnel{f: f, msgs: make(chan forward.TunnelHeader, 64), done: make(chan struct{})}
}

func (d *fakeTunnel) Send(uint16, uint8, router.Segments, []byte) error { return nil }

func (d *fakeTunnel) SendBatch([]router.TunnelPacket) int { return 0 }

func (d *fakeTunnel) Paths() int { return 1 }

func (d *fakeTunnel) Read(int, [][]byte, []int, []uint16, []uint8, []router.Segments, int) (int, error) {
	<-d.done
	return 0, net.ErrClosed
}

func (d *fakeTunnel) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf = d.f.TunnelMessages(d.buf[:0])
	for _, h := range d.buf {
		d.msgs <- h
	}
}

func (d *fakeTunnel) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

// deferNode is node 1 of two (directory {1, 2}) with the filter on and a
// fake tunnel; the server is resolved already.
type deferNode struct {
	*fakeNode
	f   *forward.Filter
	tun *fakeTunnel
	dir *forward.Directory
}

func startDeferNode(t *testing.T, wait time.Duration) *deferNode {
	f, err := forward.New(forward.Config{
		Links: []forward.Link{
			{Prefix: netip.PrefixFrom(extIP, 24).Masked(), Primary: extIP},
			{Prefix: netip.PrefixFrom(intIP, 24).Masked(), Primary: intIP},
		},
		VIPs:    []netip.Addr{vip},
		Rules:   []forward.Rule{{Name: "service", FromLinks: []int{0}, Proto: forward.ProtoUDP, Ports: []forward.PortRange{{Lo: 7000, Hi: 7000}}, Action: forward.Accept}},
		Default: forward.Drop,
		Self:    1,
		Defer:   wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := forward.DirectoryKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	d := &deferNode{f: f, tun: newFakeTunnel(f), dir: forward.NewDirectory(key, []uint16{1, 2})}
	f.SetDirectory(d.dir)
	d.fakeNode = startFakeNode(t, func(c *router.Config) { c.Filter, c.Tunnel = f, d.tun })

	// A flow this node is authoritative for is not held: it resolves the
	// server.
	send(t, d.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, d.port(t, 1), 7000, 64, "warm")))
	expect(t, d.int.Out, "ARP request for the server")
	send(t, d.int.In, arpFrame(t, layers.ARPReply, intMAC, serverMAC, serverIP, intIP, intMAC))
	expectUDP(t, d.int.Out, "the first packet of a flow n1 is authoritative for", 7000)
	return d
}

// flow returns the key of the client's UDP flow from port p to the
// server's port 7000 (the server's address is the lower: it is A).
func flow(p uint16) forward.Key {
	return forward.Key{A: serverIP.As4(), B: clientIP.As4(), PA: 7000, PB: p, Proto: 17}
}

// port returns a client port whose flow's authoritative node is auth.
func (d *deferNode) port(t *testing.T, auth uint16) uint16 {
	for p := uint16(30000); p < 40000; p++ {
		if a, _ := d.dir.Lookup(flow(p)); a == auth {
			return p
		}
	}
	t.Fatalf("no port with authoritative node %d", auth)
	return 0
}

// register waits for the register of flow k to node 2.
func (d *deferNode) register(t *testing.T, k forward.Key) {
	t.Helper()
	select {
	case h := <-d.tun.msgs:
		if h.Type != forward.TypeRegister || h.Receiver != 2 || h.Flow != k {
			t.Fatalf("tunnel message %+v, want the register of %v to n2", h, k)
		}
	case <-time.After(wait):
		t.Fatal("no register sent")
	}
}

// TestDeferOverFakes: the first packet of a flow whose authoritative node
// is n2 leaves n1 only when n2's ack arrives, through the normal send
// path, counted as forwarded once.
func TestDeferOverFakes(t *testing.T) {
	d := startDeferNode(t, time.Minute) // only the ack can release it
	p := d.port(t, 2)
	send(t, d.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, p, 7000, 64, "held")))
	d.register(t, flow(p))
	// The worker stored the packet before it sent the register, and
	// forwards nothing of it: nothing is on its way out.
	select {
	case b := <-d.int.Out:
		t.Fatalf("the held packet left before its ack: %x", b)
	default:
	}
	if ts := d.r.Stats().Tunnel; ts.Held != 1 || ts.HeldNow != 1 || ts.Released != 0 {
		t.Errorf("before the ack: held %d, held now %d, released %d; want 1, 1, 0", ts.Held, ts.HeldNow, ts.Released)
	}

	d.f.Step(forward.TunnelHeader{Type: forward.TypeAck, Sender: 2, Receiver: 1, Handler: 1, Flow: flow(p)}, 0)
	pkt := expect(t, d.int.Out, "the held packet, released by the ack")
	if u, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || uint16(u.SrcPort) != p {
		t.Fatalf("want the held datagram from port %d, got %v", p, pkt)
	}
	if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok || ip.TTL != 63 {
		t.Errorf("released packet %v: want TTL 63 (forwarded once)", pkt)
	}
	deadline := time.Now().Add(wait)
	for d.r.Stats().Tunnel.HeldNow != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the slot is freed just after the write
	}
	st := d.r.Stats()
	if ts := st.Tunnel; ts.Released != 1 || ts.HeldNow != 0 || ts.HoldRefused != 0 {
		t.Errorf("after the ack: released %d, held now %d, refused %d; want 1, 0, 0", ts.Released, ts.HeldNow, ts.HoldRefused)
	}
	if fwd := st.Links[0].Forwarded; fwd != 2 {
		t.Errorf("ext0 forwarded %d, want 2 (the warm-up and the released packet)", fwd)
	}
	if ds := d.f.Stats().Sym.Defer; ds.Deferred != 1 || ds.ReleasedAck != 1 || ds.ReleasedTimeout != 0 {
		t.Errorf("filter defer stats %+v, want 1 held, 1 released by ack", ds)
	}
}

// TestDeferTimeoutOverFakes: without an ack the held packet leaves after
// the deferral, not before.
func TestDeferTimeoutOverFakes(t *testing.T) {
	const hold = 30 * time.Millisecond
	d := startDeferNode(t, hold)
	p := d.port(t, 2)
	start := time.Now()
	send(t, d.ext.In, ethFrame(extMAC, clientMAC, udpPacket(t, clientIP, serverIP, p, 7000, 64, "held")))
	d.register(t, flow(p))
	expectUDP(t, d.int.Out, "the held packet, released by the timeout", 7000)
	if el := time.Since(start); el < hold {
		t.Errorf("released after %v, before the deferral (%v) ran out", el, hold)
	}
	if ds := d.f.Stats().Sym.Defer; ds.Deferred != 1 || ds.ReleasedTimeout != 1 || ds.ReleasedAck != 0 {
		t.Errorf("filter defer stats %+v, want 1 held, 1 released by timeout", ds)
	}
}
