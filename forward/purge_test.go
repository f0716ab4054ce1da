package forward

import (
	"net/netip"
	"testing"
)

// TestDropFlows: the flows with a dropped address at either end go (in
// both directions their next segment meets no_state), the others stay;
// a new connection from the same host starts afresh.
func TestDropFlows(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.Default = Accept })
	other := netip.MustParseAddr("203.0.113.11")
	open := func(src netip.Addr, sport uint16, at int64) {
		run(t, f, []step{
			{"SYN", tcp(src, server, sport, 80, tcpSYN), ext, int_, at, ReasonNone},
			{"SYN-ACK", tcp(server, src, 80, sport, tcpSYN|tcpACK), int_, ext, at, ReasonNone},
			{"ACK", tcp(src, server, sport, 80, tcpACK), ext, int_, at, ReasonNone},
		})
	}
	open(client, 40000, 1)
	open(client, 40001, 1)
	open(other, 40000, 1)
	run(t, f, []step{{"UDP", udp(server, client, 7000, 5000, 10), int_, ext, 1, ReasonNone}})
	if n := f.Stats().Flows; n != 4 {
		t.Fatalf("%d flows before, want 4", n)
	}
	if n := f.DropFlows([]netip.Addr{netip.MustParseAddr("203.0.113.95"), client}, 2); n != 3 {
		t.Errorf("DropFlows removed %d flows, want 3 (the client's)", n)
	}
	st := f.Stats()
	if st.Flows != 1 || st.ByState[StateEstablished] != 1 || st.ByState[StateAssured]+st.ByState[StateUnreplied] != 0 {
		t.Errorf("after: %d flows, by state %v; want the other host's established flow only", st.Flows, st.ByState)
	}
	run(t, f, []step{
		{"the client's next segment", tcp(client, server, 40000, 80, tcpACK), ext, int_, 3, ReasonNoState},
		{"the server's answer", tcp(server, client, 80, 40001, tcpACK), int_, ext, 3, ReasonNoState},
		{"the other host's flow", tcp(other, server, 40000, 80, tcpACK), ext, int_, 3, ReasonNone},
		{"a new connection from the client", tcp(client, server, 40002, 80, tcpSYN), ext, int_, 3, ReasonNone},
	})
	if n := f.DropFlows(nil, 4); n != 0 {
		t.Errorf("DropFlows(nil) removed %d", n)
	}
}

// TestDropFlowsReplicas: the handler's purge removes the replicas at the
// flow's authoritative node and standby, so no node adopts the flow
// afterwards; a node's own purge removes the replicas it holds.
func TestDropFlowsReplicas(t *testing.T) {
	c := newSymCluster(t, nil)
	sp := c.portWithOwners(protoTCP, 80, 2, 3)
	k, _ := keyOf(protoTCP, client.As4(), server.As4(), sp, 80)
	c.send(1, tcp(client, server, sp, 80, tcpSYN), ext, int_)
	c.send(2, tcp(server, client, 80, sp, tcpSYN|tcpACK), int_, ext)
	c.send(1, tcp(client, server, sp, 80, tcpACK), ext, int_)
	c.pumpSync(nil)
	for _, id := range []uint16{2, 3} {
		if _, ok := c.f[id].sym.replicas.get(k, c.now); !ok {
			t.Fatalf("n%d holds no replica before the purge", id)
		}
	}
	if n := c.f[1].DropFlows([]netip.Addr{client}, c.now); n != 1 {
		t.Fatalf("the handler removed %d flows, want 1", n)
	}
	c.pumpSync(nil)
	for _, id := range []uint16{2, 3} {
		if _, ok := c.f[id].sym.replicas.get(k, c.now); ok {
			t.Errorf("n%d still holds the replica after the handler's purge", id)
		}
	}
	for _, at := range []uint16{1, 2} {
		if path := c.send(at, tcp(client, server, sp, 80, tcpACK), ext, int_); path[len(path)-1].Pass {
			t.Errorf("a segment of the dropped flow at n%d passed: %v", at, path)
		}
	}

	// A replica whose handler did not purge goes with the holder's own
	// purge (every node applies the epoch).
	k, _ = keyOf(protoTCP, client.As4(), server.As4(), 50000, 80)
	c.f[2].sym.replicas.apply(&SyncRecord{Flow: k, Handler: 1, State: StateEstablished, Expires: 60000}, 1, 1, 1, c.now)
	if _, ok := c.f[2].sym.replicas.get(k, c.now); !ok {
		t.Fatal("the planted replica is missing")
	}
	c.f[2].DropFlows([]netip.Addr{server}, c.now)
	if _, ok := c.f[2].sym.replicas.get(k, c.now); ok {
		t.Error("n2's own purge left the replica")
	}
}

// TestSetVIPs: a VIP added at run time is refused as a source at once, a
// removed one is not any more; the primary addresses stay refused.
func TestSetVIPs(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.Default = Accept })
	vip91, vip95 := netip.MustParseAddr("203.0.113.91"), netip.MustParseAddr("203.0.113.95")
	primary := netip.MustParseAddr("203.0.113.1")
	check := func(when string, src netip.Addr, want Reason) {
		t.Helper()
		if got := f.Forward(udp(src, server, 5000, 7000, 4), ext, int_, 1); got != want {
			t.Errorf("%s: a datagram from %v: %v, want %v", when, src, got, want)
		}
	}
	check("before", vip91, ReasonSpoofVIP)
	check("before", vip95, ReasonNone)
	f.SetVIPs([]netip.Addr{vip95})
	check("after", vip91, ReasonNone)
	check("after", vip95, ReasonSpoofVIP)
	check("after", primary, ReasonSpoofVIP)
}
