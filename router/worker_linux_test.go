package router

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// testRouter is a Router without sockets: enough for worker.handle, whose
// output stops in the send queues (flush is never called).
func testRouter(t testing.TB) (*Router, *ownedSet) {
	p := testPlane(t)
	r := &Router{cfg: TestConfig(), plane: p, start: time.Now(), vipCtrs: map[netip.Addr]*vipCounters{}}
	r.cfg.Batch = 1024
	r.links = []*link{{info: p.links[0]}, {info: p.links[1]}}
	r.neigh = []*neighTable{newNeighTable(r.cfg.neighConfig()), newNeighTable(r.cfg.neighConfig())}
	r.attrib = make([]atomic.Pointer[map[MAC]*vipCounters], 2)
	r.shards = []*shard{newShard(2)}
	owned := testOwned(vipExt, vipInt)
	r.owned.Store(owned)
	r.neigh[1].learn(serverIP, otherMAC, learnCreate, r.now())
	v, _ := owned.lookup(vipExt)
	r.setAttribution(0, clientMAC, v.c)
	return r, owned
}

// TestHandleForwardDoesNotAllocate pins the whole per-packet driver path of
// a forwarded frame (counters, attribution, decision, ARP cache, rewrite,
// send queue) at zero allocations.
func TestHandleForwardDoesNotAllocate(t *testing.T) {
	r, owned := testRouter(t)
	w := r.newWorker(0, 0, r.shards[0])
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
	q := w.tx[1]
	out := unsafe.Slice(q.iovs[0].Base, q.iovs[0].Len)[vnetHdrLen:]
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
	w := r.newWorker(0, 0, r.shards[0])
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
