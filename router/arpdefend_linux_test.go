package router

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// countHandler counts log records at warning level and above.
type countHandler struct {
	mu    sync.Mutex
	warns []string
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warns = append(h.warns, r.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestARPConflictDefended: another host claiming an owned VIP, by a
// gratuitous reply or by a request, is answered with a defending
// gratuitous ARP (request and reply form, our MAC) and a warning, at most
// once per VIP per ARPDefendInterval; every claim is counted, and the
// claimant's MAC never enters the ARP cache or the VIP's answer.
func TestARPConflictDefended(t *testing.T) {
	r, owned := testRouter(t)
	logs := &countHandler{}
	r.log = slog.New(logs)
	w := r.newWorker(0, nil, r.shards[0])
	ext := r.links[0].dev.(*testLink)
	s := int64(time.Second)
	claimReply := arpFrame(broadcastMAC, otherMAC, arpPacket{Op: arpReply, SenderMAC: otherMAC, SenderIP: vipExt, TargetMAC: broadcastMAC, TargetIP: vipExt})
	claimReq := arpFrame(broadcastMAC, otherMAC, arpPacket{Op: arpRequest, SenderMAC: otherMAC, SenderIP: vipExt, TargetIP: netip.MustParseAddr("203.0.113.10")})
	handle := func(f []byte, now int64) {
		w.handle(append(make([]byte, vnetHdrLen), f...), now, owned)
		w.flush()
	}
	type state struct {
		Written, Warnings, Conflicts, GARPs uint64
	}
	v, _ := owned.lookup(vipExt)
	get := func() state {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return state{ext.written.Load(), uint64(len(logs.warns)), v.c.conflicts.Load(), v.c.garps.Load()}
	}
	steps := []struct {
		name  string
		frame []byte
		at    int64
		want  state
	}{
		{"a gratuitous reply claiming the VIP is defended", claimReply, 100 * s, state{2, 1, 1, 1}},
		{"a request claiming it within the interval is only counted", claimReq, 105 * s, state{2, 1, 2, 1}},
		{"after the interval it is defended again", claimReq, 110 * s, state{4, 2, 3, 2}},
		{"and once only", claimReply, 119 * s, state{4, 2, 4, 2}},
	}
	for _, st := range steps {
		handle(st.frame, st.at)
		if got := get(); got != st.want {
			t.Fatalf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}
	// The last frame written is the reply-form GARP: our MAC for the VIP, broadcast.
	f := ext.lastFrame()
	var a arpPacket
	if err := a.UnmarshalBinary(f[ethHdrLen:]); err != nil || a.Op != arpReply || a.SenderMAC != extMAC || a.SenderIP != vipExt || ethDst(f) != broadcastMAC {
		t.Fatalf("defence frame %x: want a broadcast GARP reply %v is-at %v", f[:42], vipExt, extMAC)
	}
	if got := r.shards[0].links[0].drops[DropARPConflict].load(); got != 4 {
		t.Errorf("arp_conflict drops %d, want 4", got)
	}
	if _, ok, _ := r.neigh[0].lookup(vipExt, 120*s); ok {
		t.Error("the claimant's MAC entered the ARP cache")
	}
}

// TestOnlySolicitedRepliesCreateEntries: an unsolicited ARP reply (or
// gratuitous ARP) for an unknown host creates no ARP cache entry; a reply
// for a next hop the router asked about does, and releases the packet that
// waited; later unsolicited ones refresh (and may change) the known entry.
func TestOnlySolicitedRepliesCreateEntries(t *testing.T) {
	r, owned := testRouter(t)
	ext := r.links[0].dev.(*testLink)
	wExt, wInt := r.newWorker(0, nil, r.shards[0]), r.newWorker(1, nil, r.shards[0])
	host := netip.MustParseAddr("203.0.113.50")
	hostMAC := MAC{0x02, 0, 0, 0, 0x50, 0x50}
	now := r.now()
	handle := func(w *worker, f []byte) {
		w.handle(append(make([]byte, vnetHdrLen), f...), now, owned)
		w.flush()
	}
	reply := func(mac MAC, dst MAC) []byte {
		return arpFrame(dst, mac, arpPacket{Op: arpReply, SenderMAC: mac, SenderIP: host, TargetMAC: dst, TargetIP: netip.MustParseAddr("203.0.113.1")})
	}
	garp := arpFrame(broadcastMAC, hostMAC, arpPacket{Op: arpReply, SenderMAC: hostMAC, SenderIP: host, TargetMAC: hostMAC, TargetIP: host})
	handle(wExt, reply(hostMAC, extMAC))
	handle(wExt, garp)
	if _, ok, _ := r.neigh[0].lookup(host, now); ok {
		t.Fatal("an unsolicited reply created an ARP cache entry")
	}
	// A packet from the server side for host: the router asks, queues it.
	before := ext.written.Load()
	handle(wInt, ipFrame(intMAC, otherMAC, serverIP, host, 64, protoUDP, make([]byte, 8)))
	if ext.written.Load() != before+1 || r.neigh[0].pendingLen() != 1 {
		t.Fatalf("after a packet for an unknown host: %d frames written, %d pending; want 1 ARP request and 1 pending", ext.written.Load()-before, r.neigh[0].pendingLen())
	}
	handle(wExt, reply(hostMAC, extMAC))
	if mac, ok, _ := r.neigh[0].lookup(host, now); !ok || mac != hostMAC {
		t.Fatalf("the solicited reply: lookup %v %v, want %v", mac, ok, hostMAC)
	}
	if f := ext.lastFrame(); ethDst(f) != hostMAC || ethType(f) != ethTypeIPv4 {
		t.Fatalf("the queued packet was not sent to %v on resolution: last frame %x", hostMAC, f[:14])
	}
	// A gratuitous ARP with a new MAC updates the known entry.
	moved := MAC{0x02, 0, 0, 0, 0x51, 0x51}
	handle(wExt, arpFrame(broadcastMAC, moved, arpPacket{Op: arpReply, SenderMAC: moved, SenderIP: host, TargetMAC: moved, TargetIP: host}))
	if mac, ok, _ := r.neigh[0].lookup(host, now); !ok || mac != moved {
		t.Fatalf("a GARP for a known host: lookup %v %v, want the new MAC %v", mac, ok, moved)
	}
}
