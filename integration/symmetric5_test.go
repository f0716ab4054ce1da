//go:build linux

package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/mgmt"
)

// splitOwners is the edit of the split-owners labs: the client's gateway
// VIP preferred on n1, the server's on n2 (no group), the filter on with
// default drop and rules from ext to the server (UDP 7000, TCP 80).
func splitOwners(_ int, c *config.Config) {
	c.VIPs = []config.VIPPolicy{
		{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
		{VIP: lab.IntGateway, Preferred: "n2", Persistence: config.PersistPreferred},
	}
	filterToServer(c, 7000)
}

// labDirectory is the flow directory the lab's nodes build for members,
// from the lab's cluster key.
func labDirectory(t *testing.T, l *lab.Lab, members ...uint16) *forward.Directory {
	t.Helper()
	key, err := config.ReadKey(filepath.Join(l.Dir(), "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := forward.DirectoryKey(key[:])
	if err != nil {
		t.Fatal(err)
	}
	return forward.NewDirectory(dk, members)
}

// symFlow is one client flow of the five-node test: a connected UDP
// socket or TCP connection to the server's echo service from a client
// port chosen for the flow's authoritative node.
type symFlow struct {
	proto uint8
	port  uint16 // the client's
	auth  uint16 // the flow's authoritative node with all five members
	conn  net.Conn
	rd    *bufio.Reader // TCP
	seq   uint32

	// Exchanges and losses by phase (see phase in TestSymmetricFiveNodes).
	done, lost [3]atomic.Int64
}

// exchange sends one numbered message and waits for its echo: false when
// it does not come within wait (UDP: a late echo of an earlier message is
// skipped).
func (f *symFlow) exchange(wait time.Duration) bool {
	f.seq++
	msg := make([]byte, 64)
	binary.BigEndian.PutUint32(msg, f.seq)
	f.conn.SetDeadline(time.Now().Add(wait))
	if _, err := f.conn.Write(msg); err != nil {
		return false
	}
	if f.proto == 6 {
		got := make([]byte, 64)
		_, err := io.ReadFull(f.rd, got)
		return err == nil && binary.BigEndian.Uint32(got) == f.seq
	}
	b := make([]byte, 128)
	for {
		n, err := f.conn.Read(b)
		if err != nil {
			return false
		}
		if n == 64 && binary.BigEndian.Uint32(b) == f.seq {
			return true
		}
	}
}

// pickPorts returns n client ports from first on whose flows (proto, to
// the server's port dport) the directory spreads evenly: n/len(members) per
// authoritative node.
func pickPorts(d *forward.Directory, proto uint8, dport, first uint16, n int) (ports, auths []uint16) {
	per := n / len(d.Members())
	count := map[uint16]int{}
	for p := first; len(ports) < n; p++ {
		k := forward.KeyOf(proto, netip.AddrPortFrom(lab.ClientAddr, p), netip.AddrPortFrom(lab.ServerAddr, dport))
		a, _ := d.Lookup(k)
		if count[a] < per {
			count[a]++
			ports, auths = append(ports, p), append(auths, a)
		}
	}
	return ports, auths
}

// TestSymmetricFiveNodes: five nodes, the client's gateway VIP on n1, the
// server's on n2, the filter on. 200 concurrent flows (160 UDP, 40 TCP)
// whose authoritative nodes are spread evenly over the five members, so
// 120 of them have a third node (n3, n4 or n5: neither owner) as their
// authoritative node. Every exchange of every flow comes back (zero
// loss); n1, the handler of every flow, counted each flow's packets both
// ways; no other node tracks a flow; each third node sent the first
// replies of its flows on to n1 and hinted n2. Then, while the flows keep
// exchanging, n5 leaves gracefully and comes back: every flow keeps
// working through both changes.
func TestSymmetricFiveNodes(t *testing.T) {
	c := newCluster(t, 5, func(i int, cf *config.Config) {
		splitOwners(i, cf)
		// 200 flows start at once on five nodes sharing two cores: in
		// a loaded CI run the register's round trip to the flow's
		// authoritative node outlasted the default 10 ms deferral for
		// 84 of 146 held first packets, and a reply that overtakes its
		// register is dropped by design (4 of 4,000 exchanges lost).
		// The test is about where packets go, not about that bound.
		cf.Filter.Defer = 200 * time.Millisecond
	})
	c.startAll()
	all := []int{1, 2, 3, 4, 5}
	c.waitConverged(all, 20*time.Second)
	// Every node filled too: the flows are picked by the directory of
	// five filled members, and an unfilled node is ranked last (its rows
	// elsewhere until its fill ends: a CI run once saw n3 take 36 of its
	// 40 flows' redirects for that reason).
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == "n2" && allFilled(st, 5)
	}, 10*time.Second, "the client's gateway on n1, the server's on n2, every node filled")
	l := c.lab
	go echoUDP(listenUDP(t, l, l.Server(), ":7000"))
	go echoTCP(listenTCP(t, l, l.Server(), ":80"))

	d := labDirectory(t, l, 1, 2, 3, 4, 5)
	var flows []*symFlow
	udpPorts, udpAuths := pickPorts(d, 17, 7000, 20000, 160)
	tcpPorts, tcpAuths := pickPorts(d, 6, 80, 24000, 40)
	perAuth := map[uint16]int{}
	for i, p := range udpPorts {
		flows = append(flows, &symFlow{proto: 17, port: p, auth: udpAuths[i]})
	}
	for i, p := range tcpPorts {
		flows = append(flows, &symFlow{proto: 6, port: p, auth: tcpAuths[i]})
	}
	for _, f := range flows {
		perAuth[f.auth]++
	}
	t.Logf("flows by authoritative node: %v", perAuth)

	start := time.Now()
	// Open every flow at once (concurrent first packets: 200 registers,
	// held first packets and first replies through the third nodes).
	var wg sync.WaitGroup
	var openErrs atomic.Int64
	for _, f := range flows {
		wg.Go(func() {
			err := l.Do(l.Client(), func() (err error) {
				if f.proto == 6 {
					dl := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: lab.ClientAddr.AsSlice(), Port: int(f.port)}}
					f.conn, err = dl.Dial("tcp4", netip.AddrPortFrom(lab.ServerAddr, 80).String())
					if err == nil {
						f.rd = bufio.NewReader(f.conn)
					}
					return err
				}
				dl := net.Dialer{LocalAddr: &net.UDPAddr{IP: lab.ClientAddr.AsSlice(), Port: int(f.port)}}
				f.conn, err = dl.Dial("udp4", netip.AddrPortFrom(lab.ServerAddr, 7000).String())
				return err
			})
			if err != nil {
				openErrs.Add(1)
				t.Errorf("flow %d/%d (authoritative n%d): %v", f.proto, f.port, f.auth, err)
			}
		})
	}
	wg.Wait()
	if openErrs.Load() > 0 {
		t.FailNow()
	}
	defer func() {
		for _, f := range flows {
			f.conn.Close()
		}
	}()

	// Phase 0: 20 exchanges per flow, all flows at once, no retry.
	const rounds = 20
	for _, f := range flows {
		wg.Go(func() {
			for range rounds {
				f.done[0].Add(1)
				if !f.exchange(2 * time.Second) {
					f.lost[0].Add(1)
				}
			}
		})
	}
	wg.Wait()
	lostBy := map[uint16]int64{}
	var lost int64
	for _, f := range flows {
		lost += f.lost[0].Load()
		lostBy[f.auth] += f.lost[0].Load()
	}
	unplanned0 := c.unplannedChanges(start, all)
	switch {
	case lost != 0 && len(unplanned0) == 0:
		t.Errorf("%d of %d exchanges lost (by authoritative node %v), want none", lost, len(flows)*rounds, lostBy)
	case len(unplanned0) > 0:
		t.Logf("%d of %d exchanges lost (by authoritative node %v) with unplanned membership changes (load?): %v", lost, len(flows)*rounds, lostBy, unplanned0)
	}
	for _, f := range flows {
		if f.lost[0].Load() == rounds {
			t.Errorf("flow %d/%d (authoritative n%d): every exchange lost", f.proto, f.port, f.auth)
		}
	}

	// A ring flap can move the gateway VIPs and so the flows' handler:
	// the per-flow and per-node checks below assume it did not.
	if len(unplanned0) == 0 {
		checkFiveNodeCounters(t, c, flows, perAuth)
	}

	// Phases 1 and 2: the flows keep exchanging (every 20 ms each) while
	// n5 leaves gracefully (phase 1), then comes back (phase 2).
	var phase atomic.Int32
	var lossMu sync.Mutex
	var losses []string
	stop := make(chan struct{})
	for _, f := range flows {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				p := phase.Load()
				f.done[p].Add(1)
				t0 := time.Now()
				if !f.exchange(time.Second) {
					f.lost[p].Add(1)
					lossMu.Lock()
					losses = append(losses, fmt.Sprintf("%s %d/%d(n%d)", t0.Format("05.000"), f.proto, f.port, f.auth))
					lossMu.Unlock()
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	changesFrom := time.Now()
	phase.Store(1)
	t.Logf("leave at %s", time.Now().Format("05.000"))
	if err := l.StopNode(5, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitConverged([]int{1, 2, 3, 4}, 10*time.Second)
	time.Sleep(time.Second)
	phase.Store(2)
	t.Logf("join at %s", time.Now().Format("05.000"))
	c.start(5)
	c.waitConverged(all, 15*time.Second)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if len(losses) > 0 {
		t.Logf("first losses (start of the exchange, flow, authoritative node): %v", losses[:min(len(losses), 20)])
	}
	for _, i := range all {
		if st, err := c.status(i); err == nil && st.Filter != nil && st.Filter.Tunnel != nil {
			tu := st.Filter.Tunnel
			t.Logf("after: n%d: filter drops %v; tunnel redirects %d sent %d received %d forwarded %d sent_on %d registers %v hints %v acks %v registry %d hints_held %d drops %v defer %+v",
				i, st.Filter.Drops, tu.Redirects, tu.Sent, tu.Received, tu.Forwarded, tu.SentOn, tu.Registers, tu.Hints, tu.Acks, tu.Registry, tu.HintsHeld, tu.Drops, tu.Defer)
		}
	}
	// A graceful leave and a join must lose nothing. On this shared
	// 2-core machine the ring sometimes drops a live node under load (a
	// hop unacknowledged) and re-forms at once; such an unplanned change
	// is logged, and then only "every flow keeps working" is asserted.
	unplanned := c.unplannedChanges(changesFrom, []int{1, 2, 3, 4})
	if len(unplanned) > 0 {
		t.Logf("unplanned membership changes during the test (load?): %v", unplanned)
	}
	for p, what := range []string{"", "n5 left", "n5 rejoined"} {
		if p == 0 {
			continue
		}
		var done, lost int64
		var dead []string
		lostBy := map[uint16]int64{}
		for _, f := range flows {
			done += f.done[p].Load()
			lost += f.lost[p].Load()
			lostBy[f.auth] += f.lost[p].Load()
			if f.done[p].Load() == 0 || f.done[p].Load() == f.lost[p].Load() {
				dead = append(dead, fmt.Sprintf("%d/%d(n%d)", f.proto, f.port, f.auth))
			}
		}
		t.Logf("%s: %d exchanges, %d lost (by authoritative node %v)", what, done, lost, lostBy)
		if len(dead) > 0 {
			t.Errorf("%s: %d flows stopped working: %v", what, len(dead), dead)
		}
		if lost != 0 && len(unplanned) == 0 {
			t.Errorf("%s: %d of %d exchanges lost, want none", what, lost, done)
		}
	}
}

// unplannedChanges returns the membership changes the given nodes saw
// since from that were not a graceful leave or a join.
func (c *cluster) unplannedChanges(from time.Time, nodes []int) []string {
	var out []string
	for _, i := range nodes {
		st, err := c.status(i)
		if err != nil {
			out = append(out, fmt.Sprintf("n%d: %v", i, err))
			continue
		}
		for _, e := range st.Events {
			if e.Time.After(from) && e.Kind != "left" && e.Kind != "joined" {
				out = append(out, fmt.Sprintf("n%d saw %s: %s", i, e.Kind, e.Cause))
			}
		}
	}
	return out
}

// checkFiveNodeCounters checks, after TestSymmetricFiveNodes' first phase,
// that both directions of every flow crossed n1, their handler (n1's
// per-flow packet counts), that no other node tracks a flow, and that each
// third node sent its flows' first replies on to n1 and hinted n2.
func checkFiveNodeCounters(t *testing.T, c *cluster, flows []*symFlow, perAuth map[uint16]int) {
	t.Helper()
	l := c.lab
	all := []int{1, 2, 3, 4, 5}
	// Per flow, at the handler: both directions of every flow crossed n1.
	var fl mgmt.Flows
	if err := l.NodeAPI(1, func(cl *mgmt.Client) (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		fl, err = cl.Flows(ctx, mgmt.FlowQuery{Addr: lab.ClientAddr, Limit: 1000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	type fk struct {
		proto string
		port  uint16
	}
	seen := map[fk]mgmt.Flow{}
	for _, x := range fl.Flows {
		seen[fk{x.Proto, x.Src.Port()}] = x
	}
	for _, f := range flows {
		name := map[uint8]string{6: "tcp", 17: "udp"}[f.proto]
		x, ok := seen[fk{name, f.port}]
		ok2 := f.done[0].Load() - f.lost[0].Load()
		switch {
		case !ok:
			t.Errorf("n1 does not track %s flow from port %d (authoritative n%d)", name, f.port, f.auth)
		case x.Handler != "n1" || x.Authoritative != fmt.Sprintf("n%d", f.auth):
			t.Errorf("n1 lists %s flow from port %d with handler %q and authoritative node %q, want n1 and n%d", name, f.port, x.Handler, x.Authoritative, f.auth)
		case x.PacketsOrig < uint64(f.done[0].Load()) || x.PacketsReply < uint64(ok2):
			t.Errorf("n1 counted %s flow from port %d (authoritative n%d) %d packets out and %d back; the client sent %d and had %d echoed",
				name, f.port, f.auth, x.PacketsOrig, x.PacketsReply, f.done[0].Load(), ok2)
		}
	}

	// Per node: nobody but n1 tracks a flow; each third node sent its
	// flows' first replies on to n1 and hinted n2; n2 knows the handler
	// of the flows it is authoritative for.
	sts := map[int]mgmt.Status{}
	for _, i := range all {
		st, err := c.status(i)
		if err != nil || st.Filter == nil || st.Filter.Tunnel == nil {
			t.Fatalf("n%d status: %v %+v", i, err, st.Filter)
		}
		sts[i] = st
		tu := st.Filter.Tunnel
		t.Logf("n%d: flows %d new %d; tunnel redirects %d sent %d received %d forwarded %d sent_on %d registers %v hints %v acks %v registry %d hints_held %d drops %v",
			i, st.Filter.Flows, st.Filter.NewFlows, tu.Redirects, tu.Sent, tu.Received, tu.Forwarded, tu.SentOn, tu.Registers, tu.Hints, tu.Acks, tu.Registry, tu.HintsHeld, tu.Drops)
		if i != 1 && (st.Filter.Flows != 0 || st.Filter.NewFlows != 0) {
			t.Errorf("n%d tracks %d flows (%d new), want none: n1 handles every flow", i, st.Filter.Flows, st.Filter.NewFlows)
		}
		if len(tu.Drops) != 0 {
			t.Errorf("n%d tunnel drops %v, want none", i, tu.Drops)
		}
		if n := uint64(perAuth[uint16(i)]); i >= 3 && (tu.SentOn < n || tu.Hints[0] < n || tu.Registers[1] < n) {
			t.Errorf("n%d, authoritative for %d flows: sent on %d packets, sent %d hints, took %d registers; want at least %d each",
				i, n, tu.SentOn, tu.Hints[0], tu.Registers[1], n)
		}
	}
	if n := perAuth[2]; sts[2].Filter.Tunnel.Registry < n {
		t.Errorf("n2's registry holds %d flows, want at least the %d it is authoritative for", sts[2].Filter.Tunnel.Registry, n)
	}
	if n1 := sts[1].Filter; n1.NewFlows < uint64(len(flows)) {
		t.Errorf("n1 accepted %d flows, want at least %d", n1.NewFlows, len(flows))
	}

}

// TestTunnelInjection: datagrams injected into a node's tunnel port from
// the client's namespace. n3 is in the node map but never runs; the test
// holds the cluster key and seals as n3 (a new boot). The node is n2, the
// authoritative node of a flow n1 handles. A data datagram of hops 1
// carrying a reply of that flow is sent on to n1 and reaches the client
// (the control); the same datagram again is dropped as replayed; a
// datagram with one byte of its ciphertext changed, or sealed with another
// key, is dropped as forged; a datagram of hops 2 (it claims to have been
// redirected already) is not sent on again, and the client never sees its
// packet. Each drop is counted in n2's status.
func TestTunnelInjection(t *testing.T) {
	c := newCluster(t, 3, splitOwners)
	c.start(1)
	c.start(2)
	c.waitConverged([]int{1, 2}, 15*time.Second)
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == "n2"
	}, 10*time.Second, "the client's gateway on n1 and the server's on n2")
	l := c.lab
	go echoUDP(listenUDP(t, l, l.Server(), ":7000"))

	// A flow whose authoritative node is n2, opened by the client: n1
	// handles it and registers it with n2.
	d := labDirectory(t, l, 1, 2)
	ports, _ := pickPorts(d, 17, 7000, 21000, 2)
	var port uint16
	for _, p := range ports {
		k := forward.KeyOf(17, netip.AddrPortFrom(lab.ClientAddr, p), netip.AddrPortFrom(lab.ServerAddr, 7000))
		if a, _ := d.Lookup(k); a == 2 {
			port = p
		}
	}
	f := &symFlow{proto: 17, port: port, auth: 2}
	if err := l.Do(l.Client(), func() (err error) {
		dl := net.Dialer{LocalAddr: &net.UDPAddr{IP: lab.ClientAddr.AsSlice(), Port: int(port)}}
		f.conn, err = dl.Dial("udp4", netip.AddrPortFrom(lab.ServerAddr, 7000).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer f.conn.Close()
	if !f.exchange(2 * time.Second) {
		t.Fatal("the flow's first exchange failed")
	}

	key, err := config.ReadKey(filepath.Join(l.Dir(), "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	n3, err := forward.NewSealer(key[:], 3, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	var sock *net.UDPConn
	if err := l.Do(l.Client(), func() (err error) {
		sock, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.NodeExt(2), config.DefaultForwardPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	reply := func(msg string) []byte {
		return udpPacket(netip.AddrPortFrom(lab.ServerAddr, 7000), netip.AddrPortFrom(lab.ClientAddr, port), []byte(msg))
	}
	seal := func(s *forward.Sealer, hops uint8, msg string) []byte {
		b, err := s.Seal(nil, forward.TunnelHeader{Type: forward.TypeData, Hops: hops, Receiver: 2}, reply(msg))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// received returns what the client's flow socket receives within
	// wait.
	received := func(wait time.Duration) []string {
		var got []string
		b := make([]byte, 2000)
		f.conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := f.conn.Read(b)
			if err != nil {
				return got
			}
			got = append(got, string(b[:n]))
		}
	}
	tunnel := func() *mgmt.TunnelStatus {
		st, err := c.status(2)
		if err != nil || st.Filter == nil || st.Filter.Tunnel == nil {
			t.Fatalf("n2's status: %v %+v", err, st.Filter)
		}
		return st.Filter.Tunnel
	}
	before := tunnel()

	// The control: hops 1, sent on to n1, forwarded to the client.
	hop1 := seal(n3, 1, "injected, hops 1")
	if _, err := sock.Write(hop1); err != nil {
		t.Fatal(err)
	}
	if got := received(time.Second); len(got) != 1 || got[0] != "injected, hops 1" {
		t.Fatalf("the client received %q after a hops-1 datagram to n2, want the injected reply once", got)
	}
	// The same datagram again: replayed.
	sock.Write(hop1)
	// One ciphertext byte changed: forged. Sealed with another key: forged.
	bad := seal(n3, 1, "injected, tampered")
	bad[len(bad)-20] ^= 1
	sock.Write(bad)
	other := make([]byte, 32)
	other[0] = 1
	stranger, err := forward.NewSealer(other, 3, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	sock.Write(seal(stranger, 1, "injected, other key"))
	// Hops 2: authentic and fresh, but it claims a redirect already.
	sock.Write(seal(n3, 2, "injected, hops 2"))
	if got := received(blockedWait); len(got) != 0 {
		t.Errorf("the client received %q, want nothing: replayed, forged and hops-2 datagrams must not be forwarded", got)
	}
	after := tunnel()
	t.Logf("n2 tunnel before: sent_on %d received %d drops %v; after: sent_on %d received %d drops %v",
		before.SentOn, before.Received, before.Drops, after.SentOn, after.Received, after.Drops)
	if got := after.Drops["replayed"] - before.Drops["replayed"]; got != 1 {
		t.Errorf("n2 counted %d replayed datagrams, want 1", got)
	}
	if got := after.Drops["forged"] - before.Drops["forged"]; got != 2 {
		t.Errorf("n2 counted %d forged datagrams, want 2", got)
	}
	// Received: the hops-1 and the hops-2 datagrams; sent on: only the
	// first.
	if got := after.Received - before.Received; got != 2 {
		t.Errorf("n2 received %d data datagrams, want 2 (hops 1 and hops 2)", got)
	}
	if got := after.SentOn - before.SentOn; got != 1 {
		t.Errorf("n2 sent %d injected packets on to their handler, want 1 (the hops-2 one must not be)", got)
	}
	// The flow still works.
	if !f.exchange(2 * time.Second) {
		t.Error("the flow's exchange after the injections failed")
	}
}

// udpPacket returns an IPv4 UDP packet from src to dst carrying payload,
// checksums complete.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], 0x5257)
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^csum(p[:20], 0))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	pseudo := csum(p[12:20], 17+uint32(len(u)))
	binary.BigEndian.PutUint16(u[6:], ^csum(u, uint32(pseudo)))
	return p
}

// csum is the ones' complement sum of b (RFC 1071) added to sum, folded.
func csum(b []byte, sum uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
