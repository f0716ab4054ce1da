//go:build linux

package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/router"
)

// routerLab is the reference lab with one gateway node running the router
// in its namespace and owning every VIP (static ownership).
type routerLab struct {
	lab *lab.Lab
	r   *router.Router
	ns  netns.NsHandle
}

func startRouterLab(t *testing.T) *routerLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("router integration tests build network namespaces and open AF_PACKET sockets: run as root (CI does)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Build(ctx, lab.Spec{Prefix: "rtr" + hex.EncodeToString(b), Nodes: 1, StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	ns, err := netns.GetFromPath(l.NetnsPath(l.Node(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	vips := append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...)
	cfg := router.TestConfig()
	cfg.Netns = ns
	cfg.Links = []router.Link{
		{Name: "ext0", Primary: netip.PrefixFrom(lab.NodeExt(1), 24)},
		{Name: "int0", Primary: netip.PrefixFrom(lab.NodeInt(1), 24)},
	}
	cfg.VIPs = vips
	cfg.RxQueues = 2 // exercise the PACKET_FANOUT path
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := router.New(cfg)
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Run: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	r.SetOwned(vips)
	return &routerLab{lab: l, r: r, ns: ns}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestRouterLab runs every behaviour of the data plane against real kernel
// hosts in one lab (building a lab costs seconds; the checks are fast).
func TestRouterLab(t *testing.T) {
	rl := startRouterLab(t)
	l := rl.lab
	extVIP, intVIP := lab.ExtGateway, lab.IntGateway

	t.Run("client pings the VIP", func(t *testing.T) {
		if err := pingFrom(l, l.Client(), extVIP, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		// The internal VIP answers too, reached through the router.
		if err := pingFrom(l, l.Client(), intVIP, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client ARP cache holds the node's MAC for the VIP", func(t *testing.T) {
		want, _ := rl.r.LinkMAC("ext0")
		h, err := l.Netlink(l.Client())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		neighs, err := h.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		var got net.HardwareAddr
		for _, n := range neighs {
			if n.IP.Equal(extVIP.AsSlice()) {
				got = n.HardwareAddr
			}
		}
		if got.String() != want.String() {
			t.Fatalf("client's ARP entry for %v is %v, want the node's ext0 MAC %v", extVIP, got, want)
		}
	})

	t.Run("no VIP on ext0 or int0", func(t *testing.T) {
		for _, dev := range []string{"ext0", "int0"} {
			addrs, err := l.Addrs(l.Node(1), dev)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range addrs {
				if slices.Contains(append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...), a.Addr()) {
					t.Errorf("VIP %v is on %s", a, dev)
				}
			}
		}
	})

	t.Run("UDP client to server and back", func(t *testing.T) {
		srv, err := workload.ListenEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, 7007))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var c *net.UDPConn
		if err := l.Do(l.Client(), func() error {
			var err error
			c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.ServerAddr, 7007)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 2048)
		got := 0
		for i := 0; i < 50 && got < 10; i++ {
			msg := fmt.Appendf(nil, "ringway %d", i)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			if string(buf[:n]) == string(msg) {
				got++
			}
		}
		if got < 10 {
			t.Fatalf("%d of 10 UDP echoes came back through the router", got)
		}
	})

	t.Run("TCP 100 MB client to server with matching SHA-256", func(t *testing.T) {
		srv, err := workload.ListenTransfer(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, workload.TransferPort))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		tr, err := workload.StartTransfer(ctx, l, l.Client(), workload.TransferConfig{Server: srv.Addr(), Bytes: 100 << 20, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := tr.Wait()
		if err != nil {
			t.Fatalf("transfer: %v", err)
		}
		t.Logf("100 MB in %v (%.0f Mbit/s), sha256 %x matched at the server", rep.Duration, float64(rep.Bytes)*8/rep.Duration.Seconds()/1e6, rep.SHA256[:8])
	})

	t.Run("TCP service on a VIP in the node namespace answers", func(t *testing.T) {
		var ln net.Listener
		if err := l.Do(l.Node(1), func() error {
			var err error
			ln, err = net.Listen("tcp4", netip.AddrPortFrom(extVIP, 8080).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					line, _ := bufio.NewReader(c).ReadString('\n')
					fmt.Fprintf(c, "node says %s", line)
				}()
			}
		}()
		var reply string
		err := l.Do(l.Client(), func() error {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.Dial("tcp4", netip.AddrPortFrom(extVIP, 8080).String())
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "hello\n")
			reply, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil || reply != "node says hello\n" {
			t.Fatalf("service on %v:8080: reply %q, err %v", extVIP, reply, err)
		}
	})

	t.Run("bulk TCP to and from a service on a VIP (GSO through TUN)", func(t *testing.T) {
		// Client → node: large segments arrive as GSO super-frames and go to
		// the TUN device with their virtio-net header.
		srv, err := workload.ListenTransfer(l, l.Node(1), netip.AddrPortFrom(extVIP, workload.TransferPort))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tr, err := workload.StartTransfer(ctx, l, l.Client(), workload.TransferConfig{Server: srv.Addr(), Bytes: 20 << 20, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Wait(); err != nil {
			t.Fatalf("client → VIP service: %v", err)
		}
		// Node → client: the OS writes GSO super-frames into the TUN device;
		// the router sends them on with their header for the NIC to segment.
		var ln net.Listener
		if err := l.Do(l.Node(1), func() error {
			var err error
			ln, err = net.Listen("tcp4", netip.AddrPortFrom(extVIP, 8081).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		const size = 20 << 20
		data := make([]byte, size)
		rand.Read(data)
		want := sha256.Sum256(data)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write(data)
		}()
		var got [32]byte
		var n int64
		err = l.Do(l.Client(), func() error {
			c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(extVIP, 8081).String(), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			h := sha256.New()
			n, err = io.Copy(h, c)
			copy(got[:], h.Sum(nil))
			return err
		})
		if err != nil || n != size || got != want {
			t.Fatalf("VIP service → client: %d of %d bytes, sha256 match %v, err %v", n, size, got == want, err)
		}
	})

	t.Run("no route yields ICMP destination unreachable", func(t *testing.T) {
		// The router has only its connected subnets: 192.0.2.0/24 is unroutable.
		from, typ, err := udpProbe(l, l.Client(), netip.MustParseAddr("192.0.2.1"), 64)
		if err != nil {
			t.Fatal(err)
		}
		if typ != ipv4.ICMPTypeDestinationUnreachable || from != lab.NodeExt(1) {
			t.Fatalf("got %v from %v, want destination unreachable from %v", typ, from, lab.NodeExt(1))
		}
	})

	t.Run("TTL 1 yields ICMP time exceeded", func(t *testing.T) {
		from, err := ttlOneProbe(l, l.Client(), lab.ServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		if from != lab.NodeExt(1) {
			t.Fatalf("time exceeded from %v, want the node's primary %v", from, lab.NodeExt(1))
		}
	})

	t.Run("a released VIP is no longer answered", func(t *testing.T) {
		released := netip.MustParseAddr("203.0.113.92")
		keep := slices.DeleteFunc(append(lab.VIPs(lab.ExtPrefix), lab.VIPs(lab.IntPrefix)...), func(a netip.Addr) bool { return a == released })
		acq, rel := rl.r.SetOwned(keep)
		if len(acq) != 0 || len(rel) != 1 || rel[0] != released {
			t.Fatalf("SetOwned: acquired %v released %v, want only %v released", acq, rel, released)
		}
		if err := pingFrom(l, l.Client(), released, time.Second); err == nil {
			t.Fatalf("%v answered after release", released)
		}
		if err := pingFrom(l, l.Client(), extVIP, 2*time.Second); err != nil {
			t.Fatalf("%v stopped answering when another VIP was released: %v", extVIP, err)
		}
	})

	st := rl.r.Stats()
	ext := st.Links[0]
	t.Logf("ext0: %+v", ext)
	t.Logf("int0: %+v", st.Links[1])
	if ext.ARPReplies == 0 || ext.GARPs == 0 || ext.Forwarded == 0 || ext.EchoReplies == 0 || ext.ICMPErrors == 0 || ext.Local == 0 {
		t.Errorf("ext0 counters missing activity: %+v", ext)
	}
	var vipARP uint64
	for _, v := range st.VIPs {
		if v.VIP == extVIP {
			vipARP = v.ARPReplies
			if v.Packets == 0 {
				t.Errorf("VIP %v counted no packets: %+v", extVIP, v)
			}
		}
	}
	if vipARP == 0 {
		t.Errorf("VIP %v counted no ARP replies", extVIP)
	}
}

// TestRouterCloseRestoresKernel checks that Close undoes the kernel setup
// and removes the TUN device with its VIPs and policy rules.
func TestRouterCloseRestoresKernel(t *testing.T) {
	rl := startRouterLab(t)
	l, node := rl.lab, rl.lab.Node(1)
	if v, _ := l.Sysctl(node, "net.ipv4.conf.ext0.arp_ignore"); v != "1" {
		t.Fatalf("arp_ignore on ext0 is %q while running, want 1", v)
	}
	h, err := l.Netlink(node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("ringway0"); err != nil {
		t.Fatalf("TUN device missing while running: %v", err)
	}
	// Let Run start (the first GARPs go out) so Close stops a running router.
	for deadline := time.Now().Add(5 * time.Second); rl.r.Stats().Links[0].GARPs == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no GARP sent within 5 s of Run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rl.r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v, _ := l.Sysctl(node, "net.ipv4.conf.ext0.arp_ignore"); v != "0" {
		t.Errorf("arp_ignore on ext0 is %q after Close, want the original 0", v)
	}
	if _, err := h.LinkByName("ringway0"); err == nil {
		t.Error("TUN device still present after Close")
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Table == router.TestConfig().TUNTable {
			t.Errorf("policy rule %v left after Close", r)
		}
	}
	// With the router gone and its nftables drop removed, the kernel (ip_forward=0)
	// answers nothing for the VIP: the client's ping fails.
	if err := pingFrom(l, l.Client(), lab.ExtGateway, 500*time.Millisecond); err == nil {
		t.Error("the VIP still answers after Close")
	}
}

// pingFrom sends ICMP echo requests from namespace ns to dst until one is
// answered or the timeout passes.
func pingFrom(l *lab.Lab, ns string, dst netip.Addr, timeout time.Duration) error {
	var c *icmp.PacketConn
	if err := l.Do(ns, func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(deadline); seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x7277, Seq: seq, Data: []byte("ringway ping")}}
		b, _ := m.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			rm, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || rm.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := rm.Body.(*icmp.Echo); ok && e.ID == 0x7277 && e.Seq == seq && from.String() == dst.String() {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %v within %v", dst, timeout)
}

// ttlOneProbe sends UDP with TTL 1 from ns to dst and returns the source of
// the ICMP time exceeded that comes back.
func ttlOneProbe(l *lab.Lab, ns string, dst netip.Addr) (netip.Addr, error) {
	from, typ, err := udpProbe(l, ns, dst, 1)
	if err == nil && typ != ipv4.ICMPTypeTimeExceeded {
		err = fmt.Errorf("got ICMP %v from %v, want time exceeded", typ, from)
	}
	return from, err
}

// udpProbe sends UDP with the given TTL from ns to dst until an ICMP error
// comes back, and returns its source and type.
func udpProbe(l *lab.Lab, ns string, dst netip.Addr, ttl int) (netip.Addr, ipv4.ICMPType, error) {
	var ic *icmp.PacketConn
	var uc net.PacketConn
	if err := l.Do(ns, func() error {
		var err error
		if ic, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0"); err != nil {
			return err
		}
		uc, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		return netip.Addr{}, 0, err
	}
	defer ic.Close()
	defer uc.Close()
	pc := ipv4.NewPacketConn(uc)
	if err := pc.SetTTL(ttl); err != nil {
		return netip.Addr{}, 0, err
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := uc.WriteTo([]byte("probe"), &net.UDPAddr{IP: dst.AsSlice(), Port: 33434}); err != nil {
			return netip.Addr{}, 0, err
		}
		ic.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, from, err := ic.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && (m.Type == ipv4.ICMPTypeTimeExceeded || m.Type == ipv4.ICMPTypeDestinationUnreachable) {
				a, _ := netip.ParseAddr(from.String())
				return a, m.Type.(ipv4.ICMPType), nil
			}
		}
	}
	return netip.Addr{}, 0, errors.New("no ICMP error within 5 s")
}

// TestRouterProbe: over real AF_PACKET sockets (two fanout queues per NIC)
// and the real TUN device, every worker answers the application check on
// its own goroutine, woken from an idle Read (the read deadline), round
// after round, in a few milliseconds; and with traffic flowing too.
func TestRouterProbe(t *testing.T) {
	rl := startRouterLab(t)
	round := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			start := time.Now()
			res, err := rl.r.Probe(ctx)
			took := time.Since(start)
			cancel()
			if errors.Is(err, router.ErrNotRunning) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // Run starting
				continue
			}
			if err != nil {
				t.Fatalf("%s: Probe: %v", what, err)
			}
			var names []string
			for _, p := range res {
				names = append(names, p.Worker)
				if !p.Answered || p.Failure != "" {
					t.Errorf("%s: %+v, want answered without failure", what, p)
				}
			}
			if got := strings.Join(names, ", "); got != "ext0 queue 0, ext0 queue 1, int0 queue 0, int0 queue 1, tun" {
				t.Errorf("%s: workers %s", what, got)
			}
			if took > 500*time.Millisecond {
				t.Errorf("%s: Probe took %v", what, took)
			}
			return
		}
	}
	for i := range 5 {
		round(fmt.Sprintf("idle round %d", i))
	}
	for i := range 5 {
		if err := pingFrom(rl.lab, rl.lab.Client(), lab.ServerAddr, time.Second); err != nil {
			t.Fatalf("ping through the router: %v", err)
		}
		round(fmt.Sprintf("round %d after traffic", i))
	}
}
