package tunnelnet

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/router"
)

// fakeCore stands in for the filter: it records what the tunnel steps it
// with and hands out the messages a test queues.
type fakeCore struct {
	mu    sync.Mutex
	got   []forward.TunnelHeader
	out   []forward.TunnelHeader
	ready chan struct{}
	step  chan struct{}
	epoch atomic.Uint64
}

func newFakeCore() *fakeCore {
	return &fakeCore{ready: make(chan struct{}, 1), step: make(chan struct{}, 16)}
}

func (c *fakeCore) Step(h forward.TunnelHeader, _ int64) {
	c.mu.Lock()
	c.got = append(c.got, h)
	c.mu.Unlock()
	c.step <- struct{}{}
}

func (c *fakeCore) TunnelMessages(dst []forward.TunnelHeader) []forward.TunnelHeader {
	c.mu.Lock()
	defer c.mu.Unlock()
	dst = append(dst, c.out...)
	c.out = nil
	return dst
}

func (c *fakeCore) TunnelReady() <-chan struct{} { return c.ready }

func (c *fakeCore) Epoch() uint64 { return c.epoch.Load() }

func (c *fakeCore) queue(h forward.TunnelHeader) {
	c.mu.Lock()
	c.out = append(c.out, h)
	c.mu.Unlock()
	c.ready <- struct{}{}
}

var (
	key   = bytes.Repeat([]byte{7}, 32)
	addr1 = netip.MustParseAddrPort("127.0.0.21:47947")
	addr2 = netip.MustParseAddrPort("127.0.0.22:47947")
)

func start(t *testing.T, self uint16, local netip.AddrPort, core *fakeCore) *Driver {
	return startReads(t, self, local, core, false)
}

func startReads(t *testing.T, self uint16, local netip.AddrPort, core *fakeCore, readsSocket bool) *Driver {
	t.Helper()
	d, err := New(Config{Self: self, Key: key, Boot: uint64(time.Now().UnixNano()), Local: []netip.AddrPort{local},
		Peers: map[uint16][]netip.AddrPort{1: {addr1}, 2: {addr2}}, Core: core, ReadsSocket: readsSocket,
		Now: func() int64 { return 0 }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("cannot bind %v on loopback: %v", local, err)
	}
	runDriver(t, d)
	return d
}

// runDriver runs d until the test ends.
func runDriver(t *testing.T, d *Driver) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A packet sent to a peer arrives whole with its sender and hop count;
// registers reach the peer's filter; a datagram sealed with another
// cluster key is refused and counted, and reaches nobody.
func TestTunnelLoopback(t *testing.T) {
	c1, c2 := newFakeCore(), newFakeCore()
	// n1 is a membership behind n2: its datagrams carry its epoch and
	// n2 counts them as stale (and still takes them).
	older, newer := forward.MembershipEpoch(10, []uint16{1, 2}), forward.MembershipEpoch(20, []uint16{1, 2, 3})
	c1.epoch.Store(older)
	c2.epoch.Store(newer)
	d1 := start(t, 1, addr1, c1)
	d2 := start(t, 2, addr2, c2)

	ip := bytes.Repeat([]byte{0x45, 1, 2, 3}, 100)
	if err := d1.Send(2, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	got, from, hops, _ := readOne(t, d2)
	if !bytes.Equal(got, ip) || from != 1 || hops != 1 {
		t.Errorf("got %d bytes from node %d with hops %d, want the %d sent by node 1 with hops 1", len(got), from, hops, len(ip))
	}

	k := forward.Key{A: [4]byte{198, 51, 100, 10}, B: [4]byte{203, 0, 113, 10}, PA: 7000, PB: 5000, Proto: 17} // canonical: A < B
	c1.queue(forward.TunnelHeader{Type: forward.TypeRegister, Receiver: 2, Handler: 1, Flow: k})
	select {
	case <-c2.step:
	case <-time.After(5 * time.Second):
		t.Fatal("the register did not arrive")
	}
	c2.mu.Lock()
	reg := c2.got[0]
	c2.mu.Unlock()
	if reg.Type != forward.TypeRegister || reg.Sender != 1 || reg.Handler != 1 || reg.Flow != k || reg.Epoch != older {
		t.Errorf("register arrived as %+v", reg)
	}
	if st := d2.Stats(); st.EpochStale != 2 || st.EpochFuture != 0 {
		t.Errorf("n2 counted %d stale and %d future datagrams, want 2 stale (the packet and the register)", st.EpochStale, st.EpochFuture)
	}

	// Another cluster's key: refused.
	other, err := forward.NewSealer(bytes.Repeat([]byte{8}, 32), 1, uint64(time.Now().UnixNano())+1)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Seal(nil, forward.TunnelHeader{Type: forward.TypeData, Hops: 1, Receiver: 2}, ip)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(forged)
	deadline := time.Now().Add(5 * time.Second)
	for d2.Stats().Tunnel.Drops[forward.TunnelForged] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a datagram of another cluster key was not counted as forged: %+v", d2.Stats().Tunnel)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := d2.Stats(); st.Received != 1 {
		t.Errorf("received %d data packets, want only the one sent by node 1", st.Received)
	}
}

// readOne reads one packet from d within 5 s.
func readOne(t *testing.T, d *Driver) ([]byte, uint16, uint8, router.Segments) {
	t.Helper()
	bufs := [][]byte{make([]byte, 70000)}
	sizes, froms, hops, segs := make([]int, 1), make([]uint16, 1), make([]uint8, 1), make([]router.Segments, 1)
	done := make(chan error, 1)
	go func() {
		n, err := d.Read(0, bufs, sizes, froms, hops, segs, 0)
		if err == nil && n != 1 {
			err = net.UnknownNetworkError("no packet")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet arrived")
	}
	return bufs[0][:sizes[0]], froms[0], hops[0], segs[0]
}

// A TCP super-packet crosses whole, as one datagram, with its GSO type and
// segment size; one too large for a datagram is refused with
// ErrSegmentsTooBig (the router then cuts it); an authentic datagram whose
// GSO prefix is malformed is dropped and counted.
func TestTunnelSuperPacket(t *testing.T) {
	c1, c2 := newFakeCore(), newFakeCore()
	d1 := start(t, 1, addr1, c1)
	d2 := start(t, 2, addr2, c2)

	ip := bytes.Repeat([]byte{0x45, 9, 8, 7}, 60000/4)
	seg := router.Segments{GSOType: forward.GSOTCPv4 | forward.GSOECN, Size: 1384}
	if err := d1.Send(2, 2, seg, ip); err != nil {
		t.Fatal(err)
	}
	got, from, hops, gotSeg := readOne(t, d2)
	if !bytes.Equal(got, ip) || from != 1 || hops != 2 || gotSeg != seg {
		t.Errorf("got %d bytes from node %d, hops %d, %+v; want %d from node 1, hops 2, %+v", len(got), from, hops, gotSeg, len(ip), seg)
	}
	if err := d1.Send(2, 1, seg, make([]byte, forward.MaxGSOPacket+1)); err != router.ErrSegmentsTooBig {
		t.Errorf("Send of %d bytes: %v, want ErrSegmentsTooBig", forward.MaxGSOPacket+1, err)
	}
	if st1, st2 := d1.Stats(), d2.Stats(); st1.Whole[0] != 1 || st2.Whole[1] != 1 {
		t.Errorf("whole sent %d, received %d; want 1 and 1", st1.Whole[0], st2.Whole[1])
	}

	// Sealed with the cluster key as node 1 (a later boot), but the GSO
	// prefix says UDP GSO.
	s, err := forward.NewSealer(key, 1, uint64(time.Now().UnixNano())+1)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := s.Seal(nil, forward.TunnelHeader{Type: forward.TypeDataGSO, Hops: 1, Receiver: 2}, append([]byte{5, 0, 5, 0x68}, ip[:100]...))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(bad)
	deadline := time.Now().Add(5 * time.Second)
	for d2.Stats().BadGSO == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a malformed GSO prefix was not counted: %+v", d2.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := d2.Stats(); st.Received != 1 {
		t.Errorf("received %d data packets, want 1", st.Received)
	}
}

// With ReadsSocket, Read reads the socket itself: packets and
// super-packets arrive through it, several in one Read when they are
// there, and a register is stepped by the filter while Read waits.
func TestTunnelReadsSocket(t *testing.T) {
	c1, c2 := newFakeCore(), newFakeCore()
	d1 := start(t, 1, addr1, c1)
	d2 := startReads(t, 2, addr2, c2, true)
	if !d2.direct {
		t.Fatal("one local address and ReadsSocket, but Read does not read the socket")
	}
	ip := bytes.Repeat([]byte{0x45, 1, 2, 3}, 100)
	big := bytes.Repeat([]byte{0x45, 4, 5, 6}, 10000)
	seg := router.Segments{GSOType: forward.GSOTCPv4, Size: 1000}
	if err := d1.Send(2, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	if err := d1.Send(2, 1, seg, big); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // both in the socket's buffer
	bufs := [][]byte{make([]byte, 70000), make([]byte, 70000), make([]byte, 70000)}
	sizes, froms, hops, segs := make([]int, 3), make([]uint16, 3), make([]uint8, 3), make([]router.Segments, 3)
	n, err := d2.Read(0, bufs, sizes, froms, hops, segs, 20)
	if err != nil || n != 2 {
		t.Fatalf("Read = %d, %v; want both packets", n, err)
	}
	if !bytes.Equal(bufs[0][20:20+sizes[0]], ip) || segs[0] != (router.Segments{}) || !bytes.Equal(bufs[1][20:20+sizes[1]], big) || segs[1] != seg {
		t.Errorf("read %d bytes %+v and %d bytes %+v", sizes[0], segs[0], sizes[1], segs[1])
	}

	readDone := make(chan error, 1)
	go func() {
		_, err := d2.Read(0, bufs, sizes, froms, hops, segs, 0)
		readDone <- err
	}()
	k := forward.Key{A: [4]byte{198, 51, 100, 10}, B: [4]byte{203, 0, 113, 10}, PA: 7000, PB: 5000, Proto: 17}
	c1.queue(forward.TunnelHeader{Type: forward.TypeRegister, Receiver: 2, Handler: 1, Flow: k})
	select {
	case <-c2.step:
	case <-time.After(5 * time.Second):
		t.Fatal("the register did not reach the filter")
	}
	d2.Close()
	select {
	case err := <-readDone:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// SendBatch: a batch of packets arrives whole and in order, counted.
func TestTunnelSendBatch(t *testing.T) {
	c1, c2 := newFakeCore(), newFakeCore()
	d1 := start(t, 1, addr1, c1)
	d2 := startReads(t, 2, addr2, c2, true)
	var pkts []router.TunnelPacket
	for i := range 5 {
		pkts = append(pkts, router.TunnelPacket{To: 2, Hops: 1, IP: bytes.Repeat([]byte{0x45, byte(i)}, 200+i)})
	}
	if failed := d1.SendBatch(pkts); failed != 0 {
		t.Fatalf("%d of 5 not sent", failed)
	}
	for i := range pkts {
		got, from, hops, seg := readOne(t, d2)
		if !bytes.Equal(got, pkts[i].IP) || from != 1 || hops != 1 || seg.Size != 0 {
			t.Fatalf("packet %d: got %d bytes from %d hops %d", i, len(got), from, hops)
		}
	}
	if st := d1.Stats(); st.Sent != 5 || st.PerPeer[2].Sent != 5 {
		t.Errorf("sent %d (%d to node 2), want 5", st.Sent, st.PerPeer[2].Sent)
	}
}

// A run of equal datagrams to one peer leaves as one UDP GSO message and
// is split again by Read (UDP_GRO): every packet arrives, in order.
func TestTunnelSendRun(t *testing.T) {
	c1, c2 := newFakeCore(), newFakeCore()
	d1 := start(t, 1, addr1, c1)
	d2 := startReads(t, 2, addr2, c2, true)
	var pkts []router.TunnelPacket
	for i := range 20 {
		n := 1400
		if i == 19 {
			n = 300
		}
		pkts = append(pkts, router.TunnelPacket{To: 2, Hops: 1, IP: bytes.Repeat([]byte{byte(i)}, n)})
	}
	if failed := d1.SendBatch(pkts); failed != 0 {
		t.Fatalf("%d of 20 not sent", failed)
	}
	for i := range pkts {
		got, _, _, _ := readOne(t, d2)
		if !bytes.Equal(got, pkts[i].IP) {
			t.Fatalf("packet %d: got %d bytes starting %d", i, len(got), got[0])
		}
	}
}

// TestTunnelAddPeers: a node appended to the node map (a reload) is
// neither sent to nor believed until AddPeers; then both ways work, and
// the peers known before keep working.
func TestTunnelAddPeers(t *testing.T) {
	addr3 := netip.MustParseAddrPort("127.0.0.23:47947")
	three := map[uint16][]netip.AddrPort{1: {addr1}, 2: {addr2}, 3: {addr3}}
	c1, c2, c3 := newFakeCore(), newFakeCore(), newFakeCore()
	d1 := start(t, 1, addr1, c1) // knows n1 and n2
	d2 := start(t, 2, addr2, c2)
	d3 := startPeers(t, 3, addr3, c3, three)
	ip := bytes.Repeat([]byte{0x45, 9, 8, 7}, 50)
	if err := d1.Send(3, 1, router.Segments{}, ip); err == nil {
		t.Error("n1 sent to n3 before it knew it")
	}
	if err := d3.Send(1, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d1.Stats().Tunnel.Drops[forward.TunnelUnknownSender] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("n1 did not refuse n3's datagram as from an unknown sender: %+v", d1.Stats().Tunnel)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d1.AddPeers(three)
	if err := d1.Send(3, 1, router.Segments{}, ip); err != nil {
		t.Fatalf("n1 to n3 after AddPeers: %v", err)
	}
	if got, from, _, _ := readOne(t, d3); !bytes.Equal(got, ip) || from != 1 {
		t.Errorf("n3 got %d bytes from n%d", len(got), from)
	}
	if err := d3.Send(1, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	if got, from, _, _ := readOne(t, d1); !bytes.Equal(got, ip) || from != 3 {
		t.Errorf("n1 got %d bytes from n%d", len(got), from)
	}
	if err := d1.Send(2, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	if _, from, _, _ := readOne(t, d2); from != 1 {
		t.Errorf("n2 got a packet from n%d", from)
	}
	if st := d1.Stats(); st.PerPeer[3].Sent != 1 || st.PerPeer[3].Received != 1 {
		t.Errorf("n1's counters for n3: %+v", st.PerPeer[3])
	}
}

func startPeers(t *testing.T, self uint16, local netip.AddrPort, core *fakeCore, peers map[uint16][]netip.AddrPort) *Driver {
	t.Helper()
	d, err := New(Config{Self: self, Key: key, Boot: uint64(time.Now().UnixNano()), Local: []netip.AddrPort{local},
		Peers: peers, Core: core, Now: func() int64 { return 0 }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("cannot bind %v on loopback: %v", local, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

// With ReadsSocket and two local addresses, the router gets a reader per
// socket (Paths), and a packet that arrives on the second address is read
// by Read(1) straight from that socket.
func TestTunnelReadsEachPath(t *testing.T) {
	addr2b := netip.MustParseAddrPort("127.0.0.32:47947")
	c1, c2 := newFakeCore(), newFakeCore()
	d1, err := New(Config{Self: 1, Key: key, Boot: uint64(time.Now().UnixNano()), Local: []netip.AddrPort{addr1},
		Peers: map[uint16][]netip.AddrPort{2: {addr2b}}, Core: c1,
		Now: func() int64 { return 0 }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("cannot bind %v on loopback: %v", addr1, err)
	}
	d2, err := New(Config{Self: 2, Key: key, Boot: uint64(time.Now().UnixNano()), Local: []netip.AddrPort{addr2, addr2b},
		Peers: map[uint16][]netip.AddrPort{1: {addr1}}, Core: c2, ReadsSocket: true,
		Now: func() int64 { return 0 }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		d1.Close()
		t.Skipf("cannot bind %v on loopback: %v", addr2b, err)
	}
	runDriver(t, d1)
	runDriver(t, d2)
	if got := d2.Paths(); got != 2 {
		t.Fatalf("Paths() = %d with two local addresses, want 2", got)
	}
	bufs := [][]byte{make([]byte, 2000)}
	sizes, froms, hops, segs := make([]int, 1), make([]uint16, 1), make([]uint8, 1), make([]router.Segments, 1)
	if _, err := d2.Read(2, bufs, sizes, froms, hops, segs, 0); err == nil {
		t.Error("Read(2) of two paths did not fail")
	}
	ip := bytes.Repeat([]byte{0x45, 9, 8, 7}, 50)
	if err := d1.Send(2, 1, router.Segments{}, ip); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := d2.Read(1, bufs, sizes, froms, hops, segs, 0)
		got <- result{n, err}
	}()
	select {
	case r := <-got:
		if r.err != nil || r.n != 1 || froms[0] != 1 || !bytes.Equal(bufs[0][:sizes[0]], ip) {
			t.Errorf("Read(1) = %d, %v, from n%d, %d bytes; want the packet from n1", r.n, r.err, froms[0], sizes[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the packet sent to the second address did not reach Read(1)")
	}
}

// TestSockaddr4 pins the destination sendmmsg gets: the port in network
// byte order, an IPv4-mapped address as IPv4, and anything else refused
// (family AF_UNSPEC, which writeBatch does not send).
func TestSockaddr4(t *testing.T) {
	for _, tc := range []struct {
		in     string
		family uint16
		port   [2]byte
		addr   [4]byte
	}{
		{"192.0.2.7:7400", unix.AF_INET, [2]byte{0x1c, 0xe8}, [4]byte{192, 0, 2, 7}},
		{"[::ffff:198.51.100.1]:1", unix.AF_INET, [2]byte{0, 1}, [4]byte{198, 51, 100, 1}},
		{"[2001:db8::1]:7400", 0, [2]byte{}, [4]byte{}},
	} {
		sa := sockaddr4(netip.MustParseAddrPort(tc.in))
		port := *(*[2]byte)(unsafe.Pointer(&sa.Port))
		if sa.Family != tc.family || port != tc.port || sa.Addr != tc.addr {
			t.Errorf("sockaddr4(%s) = family %d port % x addr %v, want %d, % x, %v", tc.in, sa.Family, port, sa.Addr, tc.family, tc.port, tc.addr)
		}
	}
}

// TestTunnelSendBatchDoesNotAllocate: once warm, sealing and sending a
// batch allocates nothing, datagram by datagram and as UDP GSO runs (the
// runs' buffers are a slice of the batch's datagrams; loopback's MTU
// leaves segMax 0, so the test sets it).
func TestTunnelSendBatchDoesNotAllocate(t *testing.T) {
	if raceOn {
		t.Skip("the race detector makes sync.Pool drop batches; make test runs this test without it")
	}
	d1 := start(t, 1, addr1, newFakeCore())
	// Node 2's address is a socket nobody reads (the kernel drops what
	// its buffer cannot hold): AllocsPerRun counts the whole process,
	// and a receiving driver's goroutine allocates queue buffers.
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr2))
	if err != nil {
		t.Skipf("cannot bind %v on loopback: %v", addr2, err)
	}
	defer sink.Close()
	var pkts []router.TunnelPacket
	for i := range 8 {
		pkts = append(pkts, router.TunnelPacket{To: 2, Hops: 1, IP: bytes.Repeat([]byte{0x45, byte(i)}, 500)})
	}
	for _, seg := range []int64{0, 1500} {
		d1.segMax.Store(seg)
		if failed := d1.SendBatch(pkts); failed != 0 {
			t.Fatalf("segMax %d: %d of 8 not sent", seg, failed)
		}
		failed := 0
		if a := testing.AllocsPerRun(50, func() { failed += d1.SendBatch(pkts) }); a != 0 {
			t.Errorf("segMax %d: %.1f allocations per batch of 8, want 0", seg, a)
		}
		if failed != 0 {
			t.Errorf("segMax %d: %d packets not sent while measuring", seg, failed)
		}
	}
}
