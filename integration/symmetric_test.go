//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/mgmt"
)

// TestSymmetricSplitOwners: the client's gateway VIP on n1, the server's
// on n2 (per-VIP preference, no group), the filter on with default drop
// and rules from ext to the server only. The client's packets enter at
// n1, the server's replies at n2, which has no state for them and sends
// them through the tunnel to n1, their flows' handler: a UDP echo
// exchange loses nothing, a TCP echo of a few MB comes back whole, and a
// connection the server opens to the client stays blocked. The nodes'
// counters show the replies crossed the tunnel and n2 tracks no flow.
func TestSymmetricSplitOwners(t *testing.T) {
	c := newCluster(t, 2, func(i int, c *config.Config) {
		c.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: "n2", Persistence: config.PersistPreferred},
		}
		filterToServer(c, 7000)
	})
	c.startAll()
	c.waitConverged([]int{1, 2}, 15*time.Second)
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == "n2"
	}, 10*time.Second, "the client's gateway on n1 and the server's on n2")
	l := c.lab
	start := time.Now()

	go echoUDP(listenUDP(t, l, l.Server(), ":7000"))
	go echoTCP(listenTCP(t, l, l.Server(), ":80"))
	go echoTCP(listenTCP(t, l, l.Client(), ":9000"))
	srv := func(port int) string { return netip.AddrPortFrom(lab.ServerAddr, uint16(port)).String() }

	// UDP: 200 datagrams on one flow, each echoed (sizes up to a full
	// MTU), and 20 flows of one exchange each: nothing lost. The replies
	// cross the tunnel, which carries packets of up to 1424 bytes: the
	// first larger reply (DF, as Linux sends UDP) is answered with ICMP
	// fragmentation needed (router/mss.go), and from then on the server
	// fragments its large replies itself; the fragments follow their first
	// fragment through the tunnel. That first reply is the one loss path
	// MTU discovery costs: each datagram is sent again once if its echo
	// does not come.
	var uc net.Conn
	if err := l.Do(l.Client(), func() (err error) {
		uc, err = net.Dial("udp4", srv(7000))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	lost, retried := 0, 0
	b := make([]byte, 2000)
	echoed := func(msg []byte) bool {
		uc.SetDeadline(time.Now().Add(time.Second))
		if _, err := uc.Write(msg); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := uc.Read(b)
			if err != nil {
				return false
			}
			if bytes.Equal(b[:n], msg) {
				return true
			}
		}
	}
	for i := range 200 {
		msg := bytes.Repeat([]byte{byte(i)}, 1+i*1471/199) // 1 to 1472 bytes: up to a 1500-byte packet
		if !echoed(msg) {
			retried++
			if !echoed(msg) {
				lost++
			}
		}
	}
	t.Logf("UDP echo: %d of 200 datagrams sent twice (path MTU discovery), %d lost", retried, lost)
	// One retry is path MTU discovery's; two more are allowed for a
	// loaded machine (an echo later than 1 s). Each of the 11 datagrams
	// above the tunnel MTU needing one would be a regression.
	if lost != 0 || retried > 3 {
		t.Errorf("UDP echo through split owners: %d of 200 sent twice, %d lost; want at most 3 sent twice (1 for path MTU discovery) and none lost", retried, lost)
	}
	// 20 new flows of one exchange each, one try each: the first reply
	// of a new flow whose authoritative node is n2 would overtake the
	// flow's register (n1 → n2) and be dropped at n2, but n1 holds the
	// flow's first packet until n2 acknowledges the register
	// (filter.defer, pfsync's defer).
	// Source ports of their own, below the ephemeral range: 20 dials
	// from random ports met twice once in a CI run (one flow, not two).
	for i := range 20 {
		if err := udpRoundTrip(l, l.Client(), fmt.Sprintf(":%d", 21000+i), srv(7000)); err != nil {
			t.Errorf("UDP flow %d: first reply lost: %v", i, err)
		}
	}

	// TCP: 4 MB echoed back whole (replies of full segments through the
	// tunnel). The MSS both ends announced was clamped to fit the tunnel
	// (router/mss.go), so no tunnel datagram is fragmented: neither node's
	// kernel creates a fragment during the transfer.
	frags := func() (n uint64) {
		for _, i := range []int{1, 2} {
			n += ipCounter(t, l, l.Node(i), "FragCreates")
		}
		return n
	}
	fragsBefore := frags()
	if err := tcpEcho(l, l.Client(), srv(80), 4<<20); err != nil {
		t.Errorf("TCP echo of 4 MB through split owners: %v", err)
	}
	if n := frags() - fragsBefore; n != 0 {
		t.Errorf("the nodes' kernels created %d IP fragments during the TCP transfer, want none (MSS clamped to the tunnel)", n)
	}

	// A connection the server opens to the client stays blocked.
	if err := tcpRoundTrip(l, l.Server(), netip.AddrPortFrom(lab.ClientAddr, 9000).String()); !isTimeout(err) {
		t.Errorf("TCP from the server to the client: %v, want a timeout", err)
	}

	// The counters: n2 sent the replies to n1 through the tunnel; n1
	// forwarded them as the handler; n2 tracks nothing.
	st1, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := c.status(2)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := st1.Filter.Tunnel, st2.Filter.Tunnel
	if t1 == nil || t2 == nil {
		t.Fatalf("no tunnel section in the status: n1 %+v n2 %+v", st1.Filter, st2.Filter)
	}
	t.Logf("n1 tunnel %+v flows %d; n2 tunnel %+v flows %d", *t1, st1.Filter.Flows, *t2, st2.Filter.Flows)
	// A ring flap on a loaded machine (a live node dropped for a moment)
	// makes n2 adopt n1's flows (issue 12) and moves the counts below;
	// the exchanges above must still have worked, the counts are then
	// not asserted.
	if un := c.unplannedChanges(start, []int{1, 2}); len(un) > 0 {
		t.Logf("unplanned membership changes (load?): %v; counters not checked", un)
		return
	}
	// 200 + 20 UDP echoes, and 4 MB of TCP at most 1448 bytes a packet.
	const replies = 220 + (4<<20)/1448
	if t2.Redirects < replies || t2.Sent < replies || t2.Peers["n1"][0] < replies {
		t.Errorf("n2 redirected %d packets and sent %d (%d to n1), want at least %d each", t2.Redirects, t2.Sent, t2.Peers["n1"][0], replies)
	}
	if t1.Received < replies || t1.Forwarded < replies {
		t.Errorf("n1 received %d packets through the tunnel and forwarded %d, want at least %d each", t1.Received, t1.Forwarded, replies)
	}
	if st2.Filter.Flows != 0 || st2.Filter.NewFlows != 0 {
		t.Errorf("n2 tracks %d flows (%d new since start), want none: n1 handles them all", st2.Filter.Flows, st2.Filter.NewFlows)
	}
	if st1.Filter.NewFlows < 22 {
		t.Errorf("n1 accepted %d flows, want at least 22", st1.Filter.NewFlows)
	}
	if len(t1.Drops)+len(t2.Drops) != 0 {
		t.Errorf("tunnel drops: n1 %v n2 %v, want none", t1.Drops, t2.Drops)
	}
	// The first packets of the flows whose authoritative node is n2 were
	// held until n2 acknowledged their register: released by the ack,
	// none by the deferral's end, none forwarded unheld.
	d := t1.Defer
	t.Logf("n1 defer %+v; acks n1 %v n2 %v; median ack latency < %d µs", d, t1.Acks, t2.Acks, mgmt.BucketQuantile(d.AckLatencyUs, 0.5))
	if d.Deferred == 0 || d.ReleasedAck != d.Deferred || d.ReleasedTimeout != 0 || d.Overflow != 0 || d.Held != 0 {
		t.Errorf("n1 defer %+v: want first packets held and all released by their ack", d)
	}
	if t2.Acks[0] != t1.Acks[1] || t2.Acks[0] < d.Deferred {
		t.Errorf("acks: n2 sent %d, n1 received %d, n1 held %d first packets", t2.Acks[0], t1.Acks[1], d.Deferred)
	}
	// Prometheus sees the same: n2's redirects and the held first packets.
	var metrics string
	if err := c.lab.NodeAPI(2, func(cl *mgmt.Client) (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		metrics, err = cl.Metrics(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var redirects uint64
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "ringway_tunnel_redirects_total "); ok {
			fmt.Sscan(v, &redirects)
		}
	}
	if redirects < t2.Redirects {
		t.Errorf("n2's ringway_tunnel_redirects_total is %d, its status said %d", redirects, t2.Redirects)
	}
	for _, want := range []string{
		`ringway_tunnel_messages_total{direction="sent",type="ack"}`,
		`ringway_filter_deferred_packets_total{outcome="held"}`,
		`ringway_tunnel_peer_packets_total{direction="sent",peer="n1"}`,
		`ringway_tunnel_peer_bytes_total{direction="sent",peer="n1"}`,
		`ringway_tunnel_registry_flows `,
		`ringway_tunnel_hints `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("n2's metrics lack %q", want)
		}
	}
}

// tcpEcho connects from ns to dst (an echo service), writes size bytes
// and reads them back, comparing.
func tcpEcho(l *lab.Lab, ns, dst string, size int) error {
	var c net.Conn
	if err := l.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", dst, 2*time.Second)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + i>>10)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("the %d bytes read back differ from those written", size)
	}
	return nil
}

// ipCounter returns the counter name of the "Ip:" lines of
// /proc/net/snmp in namespace ns (FragCreates, ReasmReqds, ...).
func ipCounter(t *testing.T, l *lab.Lab, ns, name string) uint64 {
	t.Helper()
	v, err := l.SNMP(ns, "Ip:", name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
