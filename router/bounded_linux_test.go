package router

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
)

// allocBytes returns the bytes f allocates on the heap.
func allocBytes(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestFloodCostsBoundedMemoryAndCPU is the security review's attack: any
// host on a subnet sends 10,000 ARP requests for the VIP from random MACs
// and addresses, then packets towards 20,000 distinct unresolved next hops.
// The tables stay at their caps, a flood frame costs a bounded number of
// bytes (the copy-on-write attribution map cost ~100 KB per frame at 4,000
// MACs), refused packets cost nothing, and a known flow's frame is forwarded
// as before without allocating.
func TestFloodCostsBoundedMemoryAndCPU(t *testing.T) {
	r, owned := testRouter(t)
	// int0 as a /16, so the attacker can name 20,000 next hops on it.
	p := r.plane
	p.links[1].prefix = netip.MustParsePrefix("198.51.0.0/16")
	rt, err := newRouteTable([]netip.Prefix{p.links[0].prefix, p.links[1].prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.routes = rt
	w := r.newWorker(0, nil, r.shards[0])
	c := &r.shards[0].links[1]
	buf := make([]byte, vnetHdrLen+2048)
	handle := func(f []byte) {
		n := copy(buf[vnetHdrLen:], f)
		w.handle(buf[:vnetHdrLen+n], r.now(), owned)
	}
	known := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 18))
	forwardKnown := func() {
		handle(known)
		w.flush()
	}
	checkKnown := func(when string) {
		t.Helper()
		fwd := r.shards[0].links[0].forwarded.load()
		if a := testing.AllocsPerRun(200, forwardKnown); a != 0 {
			t.Fatalf("%s: forwarding a known flow allocates %.1f times per frame, want 0", when, a)
		}
		if got := r.shards[0].links[0].forwarded.load() - fwd; got < 200 {
			t.Fatalf("%s: %d known-flow frames forwarded, want every one", when, got)
		}
	}
	checkKnown("before the flood")

	// 10,000 ARP requests for the VIP from random MACs and sender addresses.
	rng := rand.New(rand.NewPCG(1, 2))
	const arps = 10000
	frames := make([][]byte, arps)
	for i := range frames {
		mac := MAC{0x02, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(2 + rng.IntN(80))}) // .2-.81: hosts, not the VIP or primary
		frames[i] = arpFrame(broadcastMAC, mac, arpPacket{Op: arpRequest, SenderMAC: mac, SenderIP: ip, TargetIP: vipExt})
	}
	half := arps / 2
	for _, f := range frames[:half] {
		handle(f)
	}
	// Once the tables are full, a flood frame costs a bounded number of
	// bytes: one attribution entry and one ARP cache entry at most.
	bytes := allocBytes(func() {
		for _, f := range frames[half:] {
			handle(f)
		}
		w.flush()
	})
	if per := bytes / uint64(arps-half); per > 512 {
		t.Errorf("an ARP request from a new MAC allocates %d bytes with full tables, want ≤ 512", per)
	}
	at := r.attrib[0]
	if at.len() > at.cap() || at.len() < at.cap()*15/16 || at.cap() != r.cfg.AttribMACs {
		t.Errorf("attribution table holds %d MACs, cap %d (config %d): want full, never above", at.len(), at.cap(), r.cfg.AttribMACs)
	}
	if got := r.neigh[0].resolvedLen(); got > r.cfg.NeighEntries || got > 80 {
		t.Errorf("ARP cache holds %d hosts, want at most the 80 addresses used", got)
	}
	checkKnown("after 10,000 ARP requests from random MACs")

	// Packets to 20,000 distinct unresolved next hops on int0.
	seen := map[[4]byte]bool{}
	var dsts []netip.Addr
	for len(dsts) < 20000 {
		a := [4]byte{198, 51, byte(1 + rng.IntN(254)), byte(1 + rng.IntN(254))}
		if a == serverIP.As4() || a == vipInt.As4() || a == p.links[1].primary.As4() || seen[a] {
			continue
		}
		seen[a] = true
		dsts = append(dsts, netip.AddrFrom4(a))
	}
	for _, d := range dsts {
		handle(ipFrame(extMAC, clientMAC, clientIP, d, 64, protoUDP, make([]byte, 1000)))
		w.flush()
	}
	nt := r.neigh[1]
	if nt.pendingLen() != r.cfg.NeighPending {
		t.Errorf("%d next hops pending, want the cap %d", nt.pendingLen(), r.cfg.NeighPending)
	}
	nt.mu.Lock()
	queued := nt.queued
	nt.mu.Unlock()
	if queued > r.cfg.NeighQueueBytes || queued > r.cfg.NeighPending*(ethHdrLen+ipv4MinHdr+1000+vnetHdrLen) {
		t.Errorf("%d bytes queued for unresolved next hops, want at most one frame per pending next hop and ≤ %d", queued, r.cfg.NeighQueueBytes)
	}
	if got, want := c.drops[DropNeighPendingFull].load(), uint64(len(dsts)-r.cfg.NeighPending); got != want {
		t.Errorf("neigh_pending_full drops %d, want %d", got, want)
	}
	if got := c.arpResolves.load(); got != uint64(r.cfg.NeighPending) {
		t.Errorf("%d ARP requests sent, want one per admitted next hop (%d)", got, r.cfg.NeighPending)
	}
	// A packet for one more next hop is refused without a copy.
	more := ipFrame(extMAC, clientMAC, clientIP, netip.MustParseAddr("198.51.255.1"), 64, protoUDP, make([]byte, 1000))
	if a := testing.AllocsPerRun(100, func() { handle(more); w.flush() }); a != 0 {
		t.Errorf("a packet refused at the pending cap allocates %.1f times, want 0", a)
	}
	checkKnown("after 20,000 unresolved next hops")

	st := r.Stats()
	if l := st.Links[1]; l.Pending != r.cfg.NeighPending || l.Drops[DropNeighPendingFull] == 0 {
		t.Errorf("int0 stats: pending %d, neigh_pending_full %d", l.Pending, l.Drops[DropNeighPendingFull])
	}
	if l := st.Links[0]; l.Attributed != at.len() || l.AttribEvicted == 0 {
		t.Errorf("ext0 stats: attributed %d (table %d), evicted %d", l.Attributed, at.len(), l.AttribEvicted)
	}
}

// A host's broadcast request for a VIP another node answers teaches this
// node which VIP the host uses: when the VIP moves here, the host's
// traffic is counted to it at once. A request for an address that is no
// VIP teaches nothing (and creates no counters).
func TestAttributionFromOthersRequests(t *testing.T) {
	r, owned := testRouter(t)
	other := netip.MustParseAddr("203.0.113.92")
	vc := &vipCounters{}
	r.vipCtrs[other] = vc
	w := r.newWorker(0, nil, r.shards[0])
	buf := make([]byte, vnetHdrLen+2048)
	handle := func(f []byte) {
		n := copy(buf[vnetHdrLen:], f)
		w.handle(buf[:vnetHdrLen+n], r.now(), owned)
	}
	host := MAC{0x02, 0, 0, 0, 0x10, 0x11}
	hostIP := netip.MustParseAddr("203.0.113.11")
	handle(arpFrame(broadcastMAC, host, arpPacket{Op: arpRequest, SenderMAC: host, SenderIP: hostIP, TargetIP: other}))
	if got := lookupAttrib(r.attrib[0], host); got != vc {
		t.Fatalf("after %v asked for %v (not owned here): attributed to %p, want %v's counters %p", hostIP, other, got, other, vc)
	}
	if got := r.GatewayHosts([]netip.Addr{other}); !slices.Equal(got, []netip.Addr{hostIP}) {
		t.Errorf("GatewayHosts(%v) = %v, want [%v]", other, got, hostIP)
	}
	// The host asks for another VIP: it counts on that one now.
	third := netip.MustParseAddr("203.0.113.93")
	r.SetVIPs([]netip.Addr{third}) // a reload added it
	handle(arpFrame(broadcastMAC, host, arpPacket{Op: arpRequest, SenderMAC: host, SenderIP: hostIP, TargetIP: third}))
	if got := r.GatewayHosts([]netip.Addr{other}); len(got) != 0 {
		t.Errorf("after the host asked for %v, GatewayHosts(%v) = %v, want none", third, other, got)
	}
	if got := r.GatewayHosts([]netip.Addr{third, other}); !slices.Equal(got, []netip.Addr{hostIP}) {
		t.Errorf("GatewayHosts(%v, %v) = %v, want [%v]", third, other, got, hostIP)
	}
	delete(r.vipCtrs, third)
	stranger := MAC{0x02, 0, 0, 0, 0x10, 0x12}
	handle(arpFrame(broadcastMAC, stranger, arpPacket{Op: arpRequest, SenderMAC: stranger, SenderIP: netip.MustParseAddr("203.0.113.12"), TargetIP: netip.MustParseAddr("203.0.113.77")}))
	if got := lookupAttrib(r.attrib[0], stranger); got != nil || len(r.vipCtrs) != 1 {
		t.Errorf("a request for a non-VIP attributed %p, %d VIP counters", got, len(r.vipCtrs))
	}
}
