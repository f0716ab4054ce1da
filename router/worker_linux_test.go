package router

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// testRouter is a Router over in-package devices (testLink, testTUN): enough
// for the workers and the timer.
func testRouter(t testing.TB) (*Router, *ownedSet) {
	p := testPlane(t)
	r := &Router{cfg: TestConfig(), plane: p, start: time.Now(), vipCtrs: map[netip.Addr]*vipCounters{}, log: slog.New(slog.DiscardHandler)}
	r.cfg.Batch = 1024
	r.links = []nic{{info: p.links[0], dev: &testLink{mac: p.links[0].mac}}, {info: p.links[1], dev: &testLink{mac: p.links[1].mac}}}
	r.tun = &testTUN{}
	r.neigh = []*neighTable{newNeighTable(r.cfg.neighConfig()), newNeighTable(r.cfg.neighConfig())}
	r.attrib = []*attribTable{newAttribTable(r.cfg.AttribMACs), newAttribTable(r.cfg.AttribMACs)}
	r.shards = []*shard{newShard(2)}
	owned := testOwned(vipExt, vipInt)
	r.owned.Store(owned)
	r.neigh[1].learn(serverIP, otherMAC, learnCreate, r.now())
	v, _ := owned.lookup(vipExt)
	r.setAttribution(0, clientMAC, clientIP.As4(), v.c, r.now())
	return r, owned
}

// TestHandleForwardDoesNotAllocate pins the whole per-packet driver path of
// a forwarded frame (counters, attribution, decision, ARP cache, rewrite,
// send queue) at zero allocations.
func TestHandleForwardDoesNotAllocate(t *testing.T) {
	r, owned := testRouter(t)
	w := r.newWorker(0, nil, r.shards[0])
	frame := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 18))
	buf := make([]byte, vnetHdrLen+len(frame))
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf[vnetHdrLen:], frame)
		w.handle(buf, r.now(), owned)
		w.tx[1].n = 0
	})
	if allocs != 0 {
		t.Fatalf("handle allocates %.1f times per forwarded frame, want 0", allocs)
	}
	c := &r.shards[0].links[0]
	if c.forwarded.load() == 0 || c.drops[DropNeighQueueFull].load() != 0 {
		t.Fatalf("frames not forwarded: forwarded %d", c.forwarded.load())
	}
	// The last frame queued on int0 goes to the server's MAC from int0's, TTL 63.
	out := w.tx[1].bufs[0][vnetHdrLen:]
	if ethDst(out) != otherMAC || ethSrc(out) != intMAC || out[ethHdrLen+8] != 63 {
		t.Fatalf("queued frame %x: want dst %v src %v TTL 63", out[:ethHdrLen+9], otherMAC, intMAC)
	}
	v, _ := owned.lookup(vipExt)
	if v.c.packets.Load() == 0 {
		t.Fatal("forwarded packets not counted on the client's gateway VIP")
	}
}

func BenchmarkHandleForward(b *testing.B) {
	r, owned := testRouter(b)
	w := r.newWorker(0, nil, r.shards[0])
	frame := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 18))
	buf := make([]byte, vnetHdrLen+len(frame))
	now := r.now()
	b.ReportAllocs()
	for b.Loop() {
		copy(buf[vnetHdrLen:], frame)
		w.handle(buf, now, owned)
		w.tx[1].n = 0
	}
}

// TestBatchDoesNotAllocate pins a whole receive batch at zero allocations:
// Read through the FrameReader interface, a forwarded frame and a local
// delivery decided and queued, both queues flushed through LinkDevice.Write
// and TUNDevice.Write.
func TestBatchDoesNotAllocate(t *testing.T) {
	r, _ := testRouter(t)
	in := r.links[0].dev.(*testLink)
	fwd := ipFrame(extMAC, clientMAC, clientIP, serverIP, 64, protoUDP, make([]byte, 18))
	local := ipFrame(extMAC, clientMAC, clientIP, vipExt, 64, protoTCP, make([]byte, 20))
	in.replay = [][]byte{append(make([]byte, vnetHdrLen), fwd...), append(make([]byte, vnetHdrLen), local...)}
	w := r.newWorker(0, in, r.shards[0])
	allocs := testing.AllocsPerRun(1000, func() {
		n, err := w.rd.Read(w.bufs, w.sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.batch(n)
	})
	if allocs != 0 {
		t.Fatalf("a receive batch allocates %.1f times, want 0", allocs)
	}
	out, tun := r.links[1].dev.(*testLink), r.tun.(*testTUN)
	if out.written.Load() < 1000 || tun.written.Load() < 1000 {
		t.Fatalf("%d frames written to int0, %d packets to TUN; want one of each per batch", out.written.Load(), tun.written.Load())
	}
	if f := out.lastFrame(); ethDst(f) != otherMAC || ethSrc(f) != intMAC || f[ethHdrLen+8] != 63 {
		t.Fatalf("frame sent on int0 %x: want dst %v src %v TTL 63", f[:ethHdrLen+9], otherMAC, intMAC)
	}
}

// dropAll is a FilterChecker that drops everything.
type dropAll struct{}

func (dropAll) Pass([]byte, int, int, int64) bool  { return false }
func (dropAll) PassLocal([]byte, int, int64) bool  { return false }
func (dropAll) Check([]byte, int, int, int64) bool { return false }

// TestProbeDoesNotAllocate pins a worker's answer to the application check
// (both probes decided, the filter asked, the answer published) at zero
// allocations, and checks the probes it built.
func TestProbeDoesNotAllocate(t *testing.T) {
	r, _ := testRouter(t)
	r.checker, r.probeAck = dropAll{}, make(chan struct{}, 1)
	w := r.newWorker(0, nil, r.shards[0])
	r.probeFrames(w)
	if w.probeFwd == nil || w.probeSpoof == nil {
		t.Fatal("no probes built")
	}
	if got := addr4(w.probeFwd[ethHdrLen+12:]).String() + " → " + addr4(w.probeFwd[ethHdrLen+16:]).String(); got != "203.0.113.2 → 198.51.100.254" {
		t.Errorf("forward probe %s, want 203.0.113.2 → 198.51.100.254", got)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		w.probe.want.Add(1)
		w.checkProbe()
	})
	if allocs != 0 {
		t.Fatalf("answering a probe allocates %.1f times, want 0", allocs)
	}
	if a := w.probe.answer.Load(); a>>16 != w.probe.want.Load() || probeOutcome(a) != probeOK {
		t.Fatalf("answer %#x, want round %d ok", a, w.probe.want.Load())
	}
}
