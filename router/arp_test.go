package router

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestDecideARP(t *testing.T) {
	p := testPlane(t)
	owned := testOwned(vipExt, vipInt)
	ext := &p.links[0]
	type want struct {
		Answer bool
		Learn  learnMode
		Reason DropReason
	}
	req := func(target netip.Addr) arpPacket {
		return arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: target}
	}
	tests := []struct {
		name  string
		frame []byte
		want  want
	}{
		{"request for an owned VIP is answered", arpFrame(broadcastMAC, clientMAC, req(vipExt)), want{Answer: true, Learn: learnCreate}},
		{"unicast request for an owned VIP is answered", arpFrame(extMAC, clientMAC, req(vipExt)), want{Answer: true, Learn: learnCreate}},
		{"request for a VIP we do not own is ignored", arpFrame(broadcastMAC, clientMAC, req(netip.MustParseAddr("203.0.113.92"))), want{Learn: learnUpdate, Reason: DropARPNotOwned}},
		{"request for an owned VIP of the other subnet is ignored here", arpFrame(broadcastMAC, clientMAC, req(vipInt)), want{Learn: learnUpdate, Reason: DropARPNotOwned}},
		{"request for our primary is left to the kernel", arpFrame(broadcastMAC, clientMAC, req(netip.MustParseAddr("203.0.113.1"))), want{Learn: learnCreate, Reason: DropLocal}},
		{"probe from 0.0.0.0 is answered without learning", arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, TargetIP: vipExt}), want{Answer: true}},
		{"reply to us only resolves an awaited host", arpFrame(extMAC, clientMAC, arpPacket{Op: arpReply, SenderMAC: clientMAC, SenderIP: clientIP, TargetMAC: extMAC, TargetIP: ext.primary}), want{Learn: learnUpdate}},
		{"gratuitous reply only updates", arpFrame(broadcastMAC, otherMAC, arpPacket{Op: arpReply, SenderMAC: otherMAC, SenderIP: netip.MustParseAddr("203.0.113.92"), TargetMAC: otherMAC, TargetIP: netip.MustParseAddr("203.0.113.92")}), want{Learn: learnUpdate}},
		{"someone else claiming our VIP is a conflict", arpFrame(broadcastMAC, otherMAC, arpPacket{Op: arpReply, SenderMAC: otherMAC, SenderIP: vipExt, TargetMAC: otherMAC, TargetIP: vipExt}), want{Reason: DropARPConflict}},
		{"our own GARP seen again is not answered", arpFrame(broadcastMAC, extMAC, arpPacket{Op: arpRequest, SenderMAC: extMAC, SenderIP: vipExt, TargetIP: vipExt}), want{Reason: DropOwnFrame}},
		{"unicast to another MAC", arpFrame(otherMAC, clientMAC, req(vipExt)), want{Reason: DropNotOurMAC}},
		{"truncated", arpFrame(broadcastMAC, clientMAC, req(vipExt))[:30], want{Reason: DropTruncated}},
		{"unknown opcode", arpFrame(broadcastMAC, clientMAC, arpPacket{Op: 9, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: vipExt}), want{Learn: learnNone, Reason: DropBadARP}},
		{"off-subnet sender is not learned", arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: serverIP, TargetIP: vipExt}), want{Answer: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := decideARP(tc.frame, ext, owned)
			got := want{Answer: d.answer, Learn: d.learn, Reason: d.reason}
			if tc.want.Reason == DropBadARP {
				got.Learn = learnNone
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decideARP (-want +got):\n%s", diff)
			}
		})
	}
}

func TestARPReplyAndGARPFrames(t *testing.T) {
	p := testPlane(t)
	ext := &p.links[0]
	f := arpFrame(broadcastMAC, clientMAC, arpPacket{Op: arpRequest, SenderMAC: clientMAC, SenderIP: clientIP, TargetIP: vipExt})
	a, d := decideARP(f, ext, testOwned(vipExt))
	if !d.answer {
		t.Fatal("not answered")
	}
	n := putARPReply(f, ext, &a)
	got := decodeARP(t, f[:n])
	want := layers.ARP{Operation: 2, SourceHwAddress: extMAC[:], SourceProtAddress: vipExt.AsSlice(), DstHwAddress: clientMAC[:], DstProtAddress: clientIP.AsSlice()}
	if diff := cmp.Diff(arpFields(want), arpFields(got)); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	for _, reply := range []bool{false, true} {
		n := putGARP(f, ext, vipExt, reply)
		got := decodeARP(t, f[:n])
		want := layers.ARP{Operation: 1, SourceHwAddress: extMAC[:], SourceProtAddress: vipExt.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: vipExt.AsSlice()}
		if reply {
			want.Operation, want.DstHwAddress = 2, extMAC[:]
		}
		if diff := cmp.Diff(arpFields(want), arpFields(got)); diff != "" {
			t.Errorf("GARP reply=%v (-want +got):\n%s", reply, diff)
		}
		if MAC(f[0:6]) != broadcastMAC {
			t.Errorf("GARP reply=%v not broadcast", reply)
		}
	}
}

func arpFields(a layers.ARP) []any {
	return []any{a.Operation, a.SourceHwAddress, a.SourceProtAddress, a.DstHwAddress, a.DstProtAddress}
}

func decodeARP(t *testing.T, f []byte) layers.ARP {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	l, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok {
		t.Fatalf("frame %x is not ARP", f)
	}
	return *l
}

func TestNeighTable(t *testing.T) {
	cfg := neighConfig{reachable: 10 * time.Second, probeWindow: 2 * time.Second, retry: time.Second, tries: 3, queueLen: 2}
	nt := newNeighTable(cfg)
	s := int64(time.Second)
	if _, ok, _ := nt.lookup(serverIP, 0); ok {
		t.Fatal("empty table resolved")
	}
	req, refused := nt.enqueue(serverIP, []byte("p1"), 0)
	if ok := refused == DropNone; !req || !ok {
		t.Fatalf("first packet: request %v ok %v, want both", req, ok)
	}
	if req, refused = nt.enqueue(serverIP, []byte("p2"), 0); req || refused != DropNone {
		t.Fatalf("second packet: request %v refused %v, want queued without a new request", req, refused)
	}
	if _, refused = nt.enqueue(serverIP, []byte("p3"), 0); refused != DropNeighQueueFull {
		t.Fatalf("third packet beyond queueLen 2: refused %v, want %v", refused, DropNeighQueueFull)
	}
	if q := nt.learn(serverIP, otherMAC, learnUpdate, s/2); len(q) != 2 || string(q[0]) != "p1" {
		t.Fatalf("learn released %q, want [p1 p2] (an awaited host may be learned from any ARP)", q)
	}
	if mac, ok, probe := nt.lookup(serverIP, 5*s); !ok || mac != otherMAC || probe {
		t.Fatalf("fresh lookup %v %v probe %v", mac, ok, probe)
	}
	if _, ok, probe := nt.lookup(serverIP, 11*s); !ok || !probe {
		t.Fatalf("stale lookup ok %v probe %v, want used and probed", ok, probe)
	}
	if _, ok, probe := nt.lookup(serverIP, 11*s+1); !ok || probe {
		t.Fatalf("second stale lookup ok %v probe %v, want used, no second probe within retry", ok, probe)
	}
	if _, ok, _ := nt.lookup(serverIP, 13*s); ok {
		t.Fatal("entry past its probe window still used")
	}
	// learnUpdate does not create unknown hosts (RFC 826 merge).
	nt.learn(clientIP, clientMAC, learnUpdate, 0)
	if _, ok, _ := nt.lookup(clientIP, 0); ok {
		t.Fatal("learnUpdate created an entry")
	}
	// Unanswered requests: retried, then the queue fails.
	nt.enqueue(clientIP, []byte("c1"), 20*s)
	var reqs int
	var failed [][]byte
	for now := 20 * s; now <= 25*s; now += s / 2 {
		r, f := nt.tick(now)
		reqs += len(r)
		failed = append(failed, f...)
	}
	if reqs != 2 || len(failed) != 1 {
		t.Fatalf("retries %d failed %d, want 2 retries (3 tries) then 1 failed packet", reqs, len(failed))
	}
	if n := nt.resolvedLen(); n != 0 {
		t.Fatalf("%d expired entries kept after tick", n)
	}
}

// TestNeighTunables: a reload's new reachable time and queue length apply
// to the entries and queues already there.
func TestNeighTunables(t *testing.T) {
	nt := newNeighTable(neighConfig{reachable: 30 * time.Second, probeWindow: 2 * time.Second, retry: time.Second, tries: 3, queueLen: 1})
	s := int64(time.Second)
	nt.learn(serverIP, otherMAC, learnCreate, 0)
	if _, ok, probe := nt.lookup(serverIP, 10*s); !ok || probe {
		t.Fatalf("at 10 s with reachable 30 s: ok %v probe %v, want fresh", ok, probe)
	}
	if _, refused := nt.enqueue(clientIP, []byte("c1"), 10*s); refused != DropNone {
		t.Fatal(refused)
	}
	if _, refused := nt.enqueue(clientIP, []byte("c2"), 10*s); refused != DropNeighQueueFull {
		t.Fatalf("second packet with queue 1: %v", refused)
	}
	nt.setTunables(5*time.Second, 3)
	if _, ok, probe := nt.lookup(serverIP, 10*s+1); ok || probe {
		t.Errorf("at 10 s with reachable 5 s (+2 s probe window): ok %v probe %v, want forgotten", ok, probe)
	}
	for _, p := range []string{"c2", "c3"} {
		if _, refused := nt.enqueue(clientIP, []byte(p), 10*s); refused != DropNone {
			t.Errorf("%s with queue 3: %v", p, refused)
		}
	}
	if _, refused := nt.enqueue(clientIP, []byte("c4"), 10*s); refused != DropNeighQueueFull {
		t.Errorf("fourth packet with queue 3: %v", refused)
	}
	if at, ok := nt.nextAt(10 * s); !ok || at > 11*s {
		t.Errorf("next work at %v (%v), want the pending retry within 1 s", time.Duration(at), ok)
	}
}

func TestGARPSchedule(t *testing.T) {
	g := newGARPSched(garpConfig{count: 3, interval: time.Second, refresh: 10 * time.Second, rate: 2, burst: 2})
	a, b, c := netip.MustParseAddr("203.0.113.91"), netip.MustParseAddr("203.0.113.92"), netip.MustParseAddr("203.0.113.93")
	g.acquire(a, 0)
	g.acquire(b, 0)
	g.acquire(c, 0)
	type step struct {
		at   time.Duration
		want []netip.Addr
	}
	steps := []step{
		{0, []netip.Addr{a, b}},                   // burst of 2 at once, c held back by the rate limit
		{500 * time.Millisecond, []netip.Addr{c}}, // one token back after 0.5 s at 2/s
		{time.Second, []netip.Addr{a}},            // second round: a, then b, as tokens return
		{1500 * time.Millisecond, []netip.Addr{b}},
		{2 * time.Second, []netip.Addr{c}},
		{3 * time.Second, []netip.Addr{a, b}},
		{4 * time.Second, []netip.Addr{c}},
		{5 * time.Second, nil},
		{13 * time.Second, []netip.Addr{a, b}}, // refresh
	}
	for _, s := range steps {
		got := g.due(s.at)
		if diff := cmp.Diff(s.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }), cmpEmpty); diff != "" {
			t.Errorf("at %v (-want +got):\n%s", s.at, diff)
		}
	}
	g.release(a)
	if got := g.due(time.Hour); len(got) != 2 {
		t.Errorf("after release: %v, want b and c only", got)
	}
}

var cmpEmpty = cmp.Transformer("empty", func(s []netip.Addr) []netip.Addr {
	if len(s) == 0 {
		return nil
	}
	return s
})

// A reload's new GARP schedule: a VIP in its initial announcements has at
// most the new count of them still to come, and refreshes follow the new
// period.
func TestGARPSetConfig(t *testing.T) {
	g := newGARPSched(garpConfig{count: 5, interval: time.Second, refresh: time.Hour, rate: 100, burst: 10})
	a := netip.MustParseAddr("203.0.113.91")
	g.acquire(a, 0)
	if got := g.due(0); len(got) != 1 {
		t.Fatalf("first announcement: %v", got)
	}
	g.setConfig(garpConfig{count: 2, interval: time.Second, refresh: 10 * time.Second, rate: 100, burst: 1})
	var at []time.Duration
	for now := time.Duration(0); now <= 30*time.Second; now += 100 * time.Millisecond {
		if len(g.due(now)) > 0 {
			at = append(at, now)
		}
	}
	// At most two more of the initial ones (1 s, 2 s), then a refresh
	// every 10 s.
	want := []time.Duration{time.Second, 2 * time.Second, 12 * time.Second, 22 * time.Second}
	if diff := cmp.Diff(want, at); diff != "" {
		t.Errorf("announcements after the change (-want +got):\n%s", diff)
	}
}
