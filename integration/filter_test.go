//go:build linux

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/mgmt"
)

// TestFilter runs one node with the stateful filter on and the kernel as
// client and server: what the rules accept passes with its replies;
// anything else, a connection from the server side, a spoofed source and
// VIP ports not in filter.local are dropped silently (no RST); an ICMP
// port-unreachable about an accepted flow reaches the client.
func TestFilter(t *testing.T) {
	c := newCluster(t, 1, func(i int, c *config.Config) {
		filterToServer(c, 7002)
		c.Filter.Local = []config.LocalService{{Proto: config.ProtoTCP, Ports: []config.PortRange{{First: 2222, Last: 2222}}}}
	})
	c.startAll()
	c.waitConverged([]int{1}, 15*time.Second)
	l := c.lab

	// Services: UDP echo on 7000 and TCP echo on 80 and 81 at the server;
	// TCP listeners on 2222 and 2223 in the node's own OS (on every VIP).
	udpSrv := listenUDP(t, l, l.Server(), ":7000")
	go echoUDP(udpSrv)
	for _, p := range []string{":80", ":81"} {
		go echoTCP(listenTCP(t, l, l.Server(), p))
	}
	for _, p := range []string{":2222", ":2223"} {
		go echoTCP(listenTCP(t, l, l.Node(1), p))
	}
	clientLn := listenTCP(t, l, l.Client(), ":9000")
	go echoTCP(clientLn)

	srv := func(port int) string { return netip.AddrPortFrom(lab.ServerAddr, uint16(port)).String() }
	vip := func(port int) string { return netip.AddrPortFrom(lab.ExtGateway, uint16(port)).String() }

	// Accepted UDP with its reply.
	if err := udpRoundTrip(l, l.Client(), "", srv(7000)); err != nil {
		t.Errorf("UDP to an accepted port: %v", err)
	}
	// A datagram larger than the MTU crosses in fragments, and its echo
	// comes back in fragments: both arrive whole.
	if err := udpRoundTripSize(l, l.Client(), srv(7000), 4000); err != nil {
		t.Errorf("a fragmented UDP datagram of an accepted flow: %v", err)
	}
	// Related ICMP: nothing listens on 7001, the server's port-unreachable
	// reaches the client's connected socket.
	if err := udpRoundTrip(l, l.Client(), "", srv(7001)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP to an accepted port nobody listens on: %v, want connection refused (the ICMP error passed as related)", err)
	}
	// A port no rule accepts: silence.
	if err := udpRoundTrip(l, l.Client(), "", srv(7003)); !isTimeout(err) {
		t.Errorf("UDP to a port no rule accepts: %v, want a timeout", err)
	}
	// A spoofed source: the client also claims an internal address. The
	// server must not receive its datagram (a reply could not come back
	// anyway, so the server's side is what tells).
	spoofSink := listenUDP(t, l, l.Server(), ":7002")
	if err := l.AddAddr(l.Client(), lab.HostIf, netip.MustParsePrefix("198.51.100.77/32")); err != nil {
		t.Fatal(err)
	}
	udpRoundTrip(l, l.Client(), "198.51.100.77:0", srv(7002))
	udpRoundTrip(l, l.Client(), "", srv(7002)) // the same from the client's own address passes
	spoofSink.SetReadDeadline(time.Now().Add(blockedWait))
	b := make([]byte, 64)
	var froms []string
	for {
		_, from, err := spoofSink.ReadFromUDP(b)
		if err != nil {
			break
		}
		froms = append(froms, from.IP.String())
	}
	if len(froms) != 1 || froms[0] != lab.ClientAddr.String() {
		t.Errorf("the server received datagrams from %v, want only the client's own address (the spoofed one dropped)", froms)
	}

	// TCP: accepted both ways; a port no rule accepts times out (no RST);
	// the server cannot open a connection to the client.
	if err := tcpRoundTrip(l, l.Client(), srv(80)); err != nil {
		t.Errorf("TCP to port 80: %v", err)
	}
	if err := tcpRoundTrip(l, l.Client(), srv(81)); !isTimeout(err) {
		t.Errorf("TCP to port 81: %v, want a timeout (dropped, never reset)", err)
	}
	client := netip.AddrPortFrom(lab.ClientAddr, 9000).String()
	if err := tcpRoundTrip(l, l.Server(), client); !isTimeout(err) {
		t.Errorf("TCP from the server to the client: %v, want a timeout", err)
	}

	// Local services on the VIP: 2222 listed, 2223 not.
	if err := tcpRoundTrip(l, l.Client(), vip(2222)); err != nil {
		t.Errorf("TCP to the VIP's listed local service: %v", err)
	}
	if err := tcpRoundTrip(l, l.Client(), vip(2223)); !isTimeout(err) {
		t.Errorf("TCP to a VIP port not in filter.local: %v, want a timeout", err)
	}
	// ICMP echo to the VIP is still answered by the router.
	if err := pingOnce(l, l.Client(), lab.ExtGateway); err != nil {
		t.Errorf("ping the VIP: %v", err)
	}

	// The operator sees why: drop counters by reason in the status, and
	// the tracked flows with the rule that accepted them.
	st, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Filter == nil || !st.Filter.Enabled {
		t.Fatalf("status has no filter section: %+v", st.Filter)
	}
	d := st.Filter.Drops
	if d["spoofed_subnet"] != 1 || d["rule"] < 3 || d["local_not_allowed"] < 1 {
		t.Errorf("filter drops %v, want 1 spoofed_subnet, at least 3 rule (UDP 7003, TCP 81, the server's SYN) and local_not_allowed", d)
	}
	var flows mgmt.Flows
	if err := l.NodeAPI(1, func(cl *mgmt.Client) (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		flows, err = cl.Flows(ctx, mgmt.FlowQuery{Addr: lab.ServerAddr})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	byRule := map[string]int{}
	for _, f := range flows.Flows {
		byRule[f.Rule]++
		if f.Src.Addr() != lab.ClientAddr {
			t.Errorf("flow %+v: the initiator should be the client", f)
		}
	}
	if byRule["udp-service"] < 2 || byRule["web"] < 1 || flows.Count < 3 {
		t.Errorf("flows with the server by rule %v (count %d), want the UDP flows and the web connection", byRule, flows.Count)
	}
}

// TestFilterTableFull: at filter.max_flows new flows are refused while
// the flows already tracked keep passing.
func TestFilterTableFull(t *testing.T) {
	c := newCluster(t, 1, func(i int, c *config.Config) {
		c.Filter.Enabled = true
		c.Filter.Default = config.ActionAccept
		c.Filter.MaxFlows = 2
	})
	c.startAll()
	c.waitConverged([]int{1}, 15*time.Second)
	l := c.lab
	go echoUDP(listenUDP(t, l, l.Server(), ":7000"))
	dst := netip.AddrPortFrom(lab.ServerAddr, 7000).String()
	// Two long-lived flows from fixed ports, then a third.
	conns := make([]net.Conn, 3)
	for i := range conns {
		if err := l.Do(l.Client(), func() (err error) {
			la, _ := net.ResolveUDPAddr("udp4", fmt.Sprintf(":%d", 5001+i))
			conns[i], err = (&net.Dialer{LocalAddr: la}).Dial("udp4", dst)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(blockedWait))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 8))
		return err
	}
	for i, c := range conns[:2] {
		if err := roundTrip(c); err != nil {
			t.Fatalf("flow %d below the cap: %v", i+1, err)
		}
	}
	if err := roundTrip(conns[2]); !isTimeout(err) {
		t.Errorf("a third flow at max_flows 2: %v, want a timeout (refused)", err)
	}
	for i, c := range conns[:2] {
		if err := roundTrip(c); err != nil {
			t.Errorf("flow %d after the table filled: %v, want it to keep passing", i+1, err)
		}
	}
}

// filterToServer turns the filter on with default drop and two rules from
// the external subnet to the server: "udp-service" for UDP 7000 to
// udpLast and "web" for TCP 80.
func filterToServer(c *config.Config, udpLast uint16) {
	server := []config.Net{{Prefix: netip.PrefixFrom(lab.ServerAddr, 32)}}
	ext := []config.Net{{Name: "ext"}}
	c.Filter.Enabled = true
	c.Filter.Default = config.ActionDrop
	c.Filter.Rules = []config.Rule{
		{Name: "udp-service", From: ext, To: server, Proto: config.ProtoUDP,
			Ports: []config.PortRange{{First: 7000, Last: udpLast}}, Action: config.ActionAccept},
		{Name: "web", From: ext, To: server, Proto: config.ProtoTCP,
			Ports: []config.PortRange{{First: 80, Last: 80}}, Action: config.ActionAccept},
	}
}

const blockedWait = 700 * time.Millisecond

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func listenUDP(t *testing.T, l *lab.Lab, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := l.Do(ns, func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echoUDP(c *net.UDPConn) {
	b := make([]byte, 65536)
	for {
		n, a, err := c.ReadFromUDP(b)
		if err != nil {
			return
		}
		c.WriteToUDP(b[:n], a)
	}
}

func listenTCP(t *testing.T, l *lab.Lab, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := l.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func echoTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// udpRoundTripSize sends one datagram of size bytes from ns to dst and
// waits for its echo, whole.
func udpRoundTripSize(l *lab.Lab, ns, dst string, size int) error {
	var c net.Conn
	if err := l.Do(ns, func() (err error) {
		c, err = net.Dial("udp4", dst)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	b := make([]byte, size+100)
	n, err := c.Read(b)
	if err != nil {
		return err
	}
	if n != size || string(b[:n]) != string(msg) {
		return fmt.Errorf("echo of %d bytes, want the %d sent", n, size)
	}
	return nil
}

// udpRoundTrip sends a datagram from ns (from local, "" for any) to dst
// and waits for its echo.
func udpRoundTrip(l *lab.Lab, ns, local, dst string) error {
	var c net.Conn
	err := l.Do(ns, func() (err error) {
		d := net.Dialer{}
		if local != "" {
			if d.LocalAddr, err = net.ResolveUDPAddr("udp4", local); err != nil {
				return err
			}
		}
		c, err = d.Dial("udp4", dst)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(blockedWait))
	msg := []byte("ringway filter test")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil {
		return err
	}
	if string(b[:n]) != string(msg) {
		return fmt.Errorf("echo %q, want %q", b[:n], msg)
	}
	return nil
}

// tcpRoundTrip connects from ns to dst and exchanges one line.
func tcpRoundTrip(l *lab.Lab, ns, dst string) error {
	var c net.Conn
	err := l.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", dst, blockedWait)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := []byte("hello through the filter\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

// pingOnce sends one ICMP echo request from ns to dst and waits for the
// reply.
func pingOnce(l *lab.Lab, ns string, dst netip.Addr) error {
	var c *icmp.PacketConn
	if err := l.Do(ns, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	req, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("ringway")}}).Marshal(nil)
	if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, b[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != dst.String() {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
			return nil
		}
	}
}
