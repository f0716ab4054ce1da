package ringnet_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
)

var key = bytes.Repeat([]byte{0x5a}, ringnet.KeyLen)

// fakeCore records its inputs and emits what the test queues. It is touched
// only under the driver's core lock (the tests reach it through Do), like a
// real core.
type fakeCore struct {
	steps   []step
	ticks   int
	out     []ringnet.Packet
	states  []ringnet.State
	events  []ringnet.Event
	left    bool
	stepErr error
}

type step struct {
	From ringnet.NodeID
	Path int
	Data string
}

func (c *fakeCore) Step(from ringnet.NodeID, path int, data []byte) error {
	c.steps = append(c.steps, step{from, path, string(data)})
	return c.stepErr
}
func (c *fakeCore) Tick() { c.ticks++ }
func (c *fakeCore) HasReady() bool {
	return len(c.out) > 0 || len(c.states) > 0 || len(c.events) > 0 || c.left
}
func (c *fakeCore) Ready() ringnet.Ready {
	rd := ringnet.Ready{Packets: c.out, Events: c.events, Left: c.left}
	if n := len(c.states); n > 0 {
		s := c.states[n-1] // a real core reports its latest committed state
		rd.State = &s
	}
	c.out, c.states, c.events, c.left = nil, nil, nil, false
	return rd
}
func (c *fakeCore) Leave() { c.left = true }

var _ ringnet.Core = (*fakeCore)(nil)

// fakeCluster is n drivers with fake cores on an in-memory network, two
// paths each: node i is 127.77.1.i:7000 on path 0 and 127.77.2.i:7000 on path 1.
type fakeCluster struct {
	t     *testing.T
	net   *ringnettest.Network
	nodes [][]netip.AddrPort
	d     []*ringnet.Driver
	c     []*fakeCore
	done  []chan error
}

func addrs(n int, port uint16) [][]netip.AddrPort {
	var nodes [][]netip.AddrPort
	for i := 1; i <= n; i++ {
		nodes = append(nodes, []netip.AddrPort{
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 1, byte(i)}), port),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 2, byte(i)}), port),
		})
	}
	return nodes
}

func newFakeCluster(t *testing.T, n int, tweak func(*ringnet.Config)) *fakeCluster {
	fc := &fakeCluster{t: t, net: ringnettest.New(), nodes: addrs(n, 7000)}
	fc.d = make([]*ringnet.Driver, n)
	fc.c = make([]*fakeCore, n)
	fc.done = make([]chan error, n)
	for i := range n {
		fc.start(ringnet.NodeID(i+1), tweak)
	}
	t.Cleanup(fc.closeAll)
	return fc
}

func (fc *fakeCluster) start(id ringnet.NodeID, tweak func(*ringnet.Config)) {
	cfg := ringnet.TestConfig()
	cfg.Self, cfg.Nodes, cfg.Key, cfg.Listen = id, fc.nodes, key, fc.net.Listen
	cfg.Logger = quiet
	if tweak != nil {
		tweak(&cfg)
	}
	c := &fakeCore{}
	d, err := ringnet.New(cfg, c)
	if err != nil {
		fc.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	fc.d[id-1], fc.c[id-1], fc.done[id-1] = d, c, done
	// The new driver's announces and its running peers' answers: from
	// here on each knows the other's boot, so datagrams between them are
	// fresh (a datagram sent before that is dropped as not fresh, and a
	// fake core does not resend).
	synctest.Wait()
}

func (fc *fakeCluster) closeAll() {
	for _, d := range fc.d {
		if d != nil {
			d.Close()
		}
	}
}

// do runs fn on node id's core, under its driver's core lock.
func (fc *fakeCluster) do(id ringnet.NodeID, fn func(c *fakeCore)) {
	fc.t.Helper()
	if err := fc.d[id-1].Do(context.Background(), func(ringnet.Core) { fn(fc.c[id-1]) }); err != nil {
		fc.t.Fatalf("Do on node %d: %v", id, err)
	}
}

func (fc *fakeCluster) steps(id ringnet.NodeID) []step {
	var s []step
	fc.do(id, func(c *fakeCore) { s = append(s, c.steps...) })
	return s
}

func TestDriverDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 3, nil)
		s1before := fc.d[0].Stats()
		fc.do(1, func(c *fakeCore) {
			c.out = []ringnet.Packet{{To: 2, Path: 0, Data: []byte("p0")}, {To: 2, Path: 1, Data: []byte("p1")}, {To: 3, Path: 1, Data: nil}}
		})
		synctest.Wait()
		byPath := cmpopts.SortSlices(func(a, b step) bool { return a.Path < b.Path })
		if diff := cmp.Diff([]step{{1, 0, "p0"}, {1, 1, "p1"}}, fc.steps(2), byPath); diff != "" {
			t.Errorf("node 2 steps (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]step{{1, 1, ""}}, fc.steps(3)); diff != "" {
			t.Errorf("node 3 steps (-want +got):\n%s", diff)
		}
		s1, s2 := fc.d[0].Stats(), fc.d[1].Stats()
		if n, b := s1.TxDatagrams-s1before.TxDatagrams, s1.TxBytes-s1before.TxBytes; n != 3 || b != 3*ringnet.Overhead+4 {
			t.Errorf("node 1 sent %d datagrams, %d bytes; want 3, %d", n, b, 3*ringnet.Overhead+4)
		}
		if s2.RxDatagrams != 2 || s2.Dropped() != 0 {
			t.Errorf("node 2: %d received, %d dropped; want 2, 0", s2.RxDatagrams, s2.Dropped())
		}
	})
}

func TestDriverTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 1, func(c *ringnet.Config) { c.Tick = 5 * time.Millisecond })
		time.Sleep(100*time.Millisecond + time.Microsecond) // virtual time
		synctest.Wait()
		var ticks int
		fc.do(1, func(c *fakeCore) { ticks = c.ticks })
		if ticks != 20 {
			t.Errorf("ticks after 100 ms at 5 ms = %d, want 20", ticks)
		}
	})
}

// TestDriverBadInput checks that forged, replayed and misaddressed datagrams
// are counted by reason and never reach the core.
func TestDriverBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 3, nil)
		var mu sync.Mutex
		var captured [][]byte
		fc.net.SetTap(func(from, to netip.AddrPort, b []byte) {
			mu.Lock()
			captured = append(captured, b)
			mu.Unlock()
		})
		fc.do(1, func(c *fakeCore) { c.out = []ringnet.Packet{{To: 2, Path: 0, Data: []byte("token")}} })
		synctest.Wait()
		mu.Lock()
		real := captured[0]
		mu.Unlock()
		from, to := fc.nodes[0][0], fc.nodes[1][0]

		forged := append([]byte(nil), real...) // fresh counter, altered payload
		forged[31] += 5
		forged[ringnet.HeaderLen] ^= 0xff
		staleForged := append([]byte(nil), real...) // seen counter: a replay by its header
		staleForged[ringnet.HeaderLen] ^= 0xff
		resealed := append([]byte(nil), real...)
		resealed[31]++ // next counter, same ciphertext
		inject := []struct {
			from netip.AddrPort
			to   netip.AddrPort
			b    []byte
		}{
			{from, to, real},               // replay
			{from, to, forged},             // forgery
			{from, to, staleForged},        // forgery of a seen counter
			{from, to, resealed},           // header tampered
			{from, to, real[:10]},          // short
			{from, to, make([]byte, 3000)}, // oversize (truncated to MaxDatagram+1 by the read)
			{fc.nodes[2][0], to, real},     // right datagram, wrong source
			{from, fc.nodes[1][1], real},   // arrived on path 1
			{from, fc.nodes[2][0], real},   // for node 2, delivered to node 3
			{netip.MustParseAddrPort("192.0.2.7:9"), to, bytes.Repeat([]byte{ringnet.Version}, 100)}, // junk
		}
		for _, in := range inject {
			if !fc.net.Inject(in.from, in.to, in.b) {
				t.Fatalf("inject to %v failed", in.to)
			}
		}
		synctest.Wait()
		if diff := cmp.Diff([]step{{1, 0, "token"}}, fc.steps(2)); diff != "" {
			t.Errorf("node 2 steps (-want +got):\n%s", diff)
		}
		if s := fc.steps(3); len(s) != 0 {
			t.Errorf("node 3 stepped %v", s)
		}
		var want2 [ringnet.NumDropReasons]uint64
		want2[ringnet.DropReplay] = 2
		want2[ringnet.DropAuth] = 2
		want2[ringnet.DropShort] = 1
		want2[ringnet.DropOversize] = 1
		want2[ringnet.DropUnknownSender] = 1
		want2[ringnet.DropWrongPath] = 1
		want2[ringnet.DropMalformed] = 1 // junk: the version byte right, reserved bytes set
		if diff := cmp.Diff(want2, fc.d[1].Stats().Drops); diff != "" {
			t.Errorf("node 2 drops (-want +got):\n%s", diff)
		}
		if got := fc.d[2].Stats().Drops[ringnet.DropNotForUs]; got != 1 {
			t.Errorf("node 3 not_for_us = %d, want 1", got)
		}
	})
}

// TestDriverRestart restarts node 1: node 2 accepts the new boot at once and
// drops the old boot's datagrams from then on.
func TestDriverRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 2, nil)
		var mu sync.Mutex
		var captured [][]byte
		fc.net.SetTap(func(from, to netip.AddrPort, b []byte) {
			mu.Lock()
			captured = append(captured, b)
			mu.Unlock()
		})
		fc.do(1, func(c *fakeCore) {
			c.out = []ringnet.Packet{{To: 2, Data: []byte("old1")}, {To: 2, Data: []byte("old2")}}
		})
		synctest.Wait()
		mu.Lock()
		oldPacket := captured[1]
		mu.Unlock()
		// Crash and restart node 1 a little later.
		fc.d[0].Close()
		if err := <-fc.done[0]; err != nil {
			t.Fatalf("Run after Close: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		fc.start(1, nil)
		if fc.d[0].Boot() <= 0 {
			t.Fatal("no boot id")
		}
		fc.do(1, func(c *fakeCore) { c.out = []ringnet.Packet{{To: 2, Data: []byte("new")}} })
		synctest.Wait()
		fc.net.Inject(fc.nodes[0][0], fc.nodes[1][0], oldPacket) // a replay of the old boot
		synctest.Wait()
		if diff := cmp.Diff([]step{{1, 0, "old1"}, {1, 0, "old2"}, {1, 0, "new"}}, fc.steps(2)); diff != "" {
			t.Errorf("node 2 steps (-want +got):\n%s", diff)
		}
		s := fc.d[1].Stats()
		if s.PeerRestarts != 1 || s.Drops[ringnet.DropStaleBoot] != 1 {
			t.Errorf("peer restarts = %d, stale_boot drops = %d; want 1, 1", s.PeerRestarts, s.Drops[ringnet.DropStaleBoot])
		}
	})
}

func TestDriverStatesLatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 1, nil)
		for id := uint64(1); id <= 5; id++ {
			fc.do(1, func(c *fakeCore) { c.states = []ringnet.State{{RingID: id, Seq: id}} })
		}
		got := <-fc.d[0].States()
		if got.RingID != 5 {
			t.Errorf("first state read = ring %d, want 5 (latest)", got.RingID)
		}
		select {
		case s := <-fc.d[0].States():
			t.Errorf("second state %d, want none", s.RingID)
		default:
		}
		fc.do(1, func(c *fakeCore) { c.states = []ringnet.State{{RingID: 6, Seq: 6}} })
		if got := <-fc.d[0].States(); got.RingID != 6 {
			t.Errorf("next state = ring %d, want 6", got.RingID)
		}
	})
}

// TestDriverStatesOnlyChanges: a state that differs from the last one
// offered only in Seq (every token hop commits one) is not offered again;
// any other difference is.
func TestDriverStatesOnlyChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 1, nil)
		base := ringnet.State{RingID: 7, Seq: 1, Members: []ringnet.NodeID{1, 2}, Holder: 1,
			Carriages: []ring.Carriage{{Kind: 1, Data: []byte("table")}}}
		with := func(f func(s *ringnet.State)) ringnet.State {
			s := base
			s.Members = slices.Clone(base.Members)
			s.Carriages = []ring.Carriage{{Kind: 1, Data: []byte("table")}}
			f(&s)
			return s
		}
		for _, tc := range []struct {
			name  string
			state ringnet.State
			want  bool
		}{
			{"first", base, true},
			{"only seq", with(func(s *ringnet.State) { s.Seq = 2 }), false},
			{"only seq again", with(func(s *ringnet.State) { s.Seq = 3 }), false},
			{"members", with(func(s *ringnet.State) { s.Seq, s.Members = 4, []ringnet.NodeID{1} }), true},
			{"members back", with(func(s *ringnet.State) { s.Seq = 5 }), true},
			{"carriage", with(func(s *ringnet.State) { s.Seq, s.Carriages[0].Data = 6, []byte("tablf") }), true},
			{"ring id", with(func(s *ringnet.State) { s.Seq, s.Carriages[0].Data, s.RingID = 7, []byte("tablf"), 8 }), true},
			{"no quorum", with(func(s *ringnet.State) { s.Seq, s.Carriages[0].Data, s.RingID, s.NoQuorum = 8, []byte("tablf"), 8, true }), true},
		} {
			fc.do(1, func(c *fakeCore) { c.states = []ringnet.State{tc.state} })
			var got *ringnet.State
			select {
			case s := <-fc.d[0].States():
				got = &s
			default:
			}
			if (got != nil) != tc.want {
				t.Errorf("%s: delivered = %v, want %v", tc.name, got != nil, tc.want)
			}
			if got != nil && got.Seq != tc.state.Seq {
				t.Errorf("%s: delivered seq %d, want %d", tc.name, got.Seq, tc.state.Seq)
			}
		}
	})
}

// TestDriverSameStateHook: Config.SameState replaces the default rule; a
// state is compared with the last one delivered, not the last committed.
func TestDriverSameStateHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 1, func(c *ringnet.Config) {
			c.SameState = func(a, b *ringnet.State) bool { return a.RingID == b.RingID }
		})
		for _, tc := range []struct {
			name  string
			state ringnet.State
			want  bool
		}{
			{"first", ringnet.State{RingID: 7, Seq: 1}, true},
			{"same ring, other members", ringnet.State{RingID: 7, Seq: 2, Members: []ringnet.NodeID{1}}, false},
			{"other ring", ringnet.State{RingID: 8, Seq: 3}, true},
			{"same as delivered", ringnet.State{RingID: 8, Seq: 4, Members: []ringnet.NodeID{1, 2}}, false},
		} {
			fc.do(1, func(c *fakeCore) { c.states = []ringnet.State{tc.state} })
			delivered := false
			select {
			case <-fc.d[0].States():
				delivered = true
			default:
			}
			if delivered != tc.want {
				t.Errorf("%s: delivered = %v, want %v", tc.name, delivered, tc.want)
			}
		}
	})
}

// TestDriverCoreBusy: while the core is busy (a Do that blocks), datagrams
// wait in the socket's buffer and are all stepped, in order, afterwards.
func TestDriverCoreBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 2, nil)
		release := make(chan struct{})
		blocked := make(chan struct{})
		go fc.d[1].Do(context.Background(), func(ringnet.Core) { close(blocked); <-release })
		<-blocked
		var want []step
		fc.do(1, func(c *fakeCore) {
			for i := range 10 {
				c.out = append(c.out, ringnet.Packet{To: 2, Data: []byte{'a' + byte(i)}})
				want = append(want, step{1, 0, string([]byte{'a' + byte(i)})})
			}
		})
		synctest.Wait()
		if n := fc.d[1].Stats().RxDatagrams; n != 0 {
			t.Errorf("core stepped %d datagrams while busy, want 0", n)
		}
		close(release)
		synctest.Wait()
		if diff := cmp.Diff(want, fc.steps(2)); diff != "" {
			t.Errorf("node 2 steps (-want +got):\n%s", diff)
		}
	})
}

func TestDriverCoreRejectAndBadAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 2, nil)
		fc.do(2, func(c *fakeCore) { c.stepErr = errors.New("bad token") })
		fc.do(1, func(c *fakeCore) {
			c.out = []ringnet.Packet{{To: 2, Data: []byte("x")}, {To: 9}, {To: 2, Path: 2}, {To: 1}}
		})
		synctest.Wait()
		fc.do(2, func(*fakeCore) {}) // let node 2 step what it received
		if got := fc.d[1].Stats().Drops[ringnet.DropCoreReject]; got != 1 {
			t.Errorf("core_reject = %d, want 1", got)
		}
		if got := fc.d[0].Stats().TxErrors; got != 3 {
			t.Errorf("tx errors for unknown node, path, self = %d, want 3", got)
		}
	})
}

func TestDriverLeaveAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 2, nil)
		if err := fc.d[0].Leave(context.Background()); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if err := <-fc.done[0]; err != nil {
			t.Errorf("Run after leave = %v, want nil", err)
		}
		select {
		case <-fc.d[0].Left():
		default:
			t.Error("Left not closed")
		}
		if err := fc.d[0].Do(context.Background(), func(ringnet.Core) {}); !errors.Is(err, ringnet.ErrClosed) {
			t.Errorf("Do after stop = %v, want ErrClosed", err)
		}
		synctest.Wait() // node 2's Run has started (else it would return ErrClosed)
		fc.d[1].Close()
		if err := <-fc.done[1]; err != nil {
			t.Errorf("Run after Close = %v", err)
		}
		if err := fc.d[1].Run(context.Background()); !errors.Is(err, ringnet.ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
		// Context cancellation stops Run too.
		cfg := ringnet.TestConfig()
		cfg.Self, cfg.Nodes, cfg.Key, cfg.Listen = 1, fc.nodes, key, fc.net.Listen
		d, err := ringnet.New(cfg, &fakeCore{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v", err)
		}
		d.Close()
	})
}

func TestCloseWithoutRun(t *testing.T) {
	n := ringnettest.New()
	cfg := ringnet.TestConfig()
	cfg.Self, cfg.Nodes, cfg.Key, cfg.Listen = 1, addrs(2, 7000), key, n.Listen
	d, err := ringnet.New(cfg, &fakeCore{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	// The addresses are free again.
	d2, err := ringnet.New(cfg, &fakeCore{})
	if err != nil {
		t.Fatalf("rebind after Close: %v", err)
	}
	d2.Close()
}

func TestNewErrors(t *testing.T) {
	good := func() ringnet.Config {
		c := ringnet.TestConfig()
		c.Self, c.Nodes, c.Key, c.Listen = 1, addrs(3, 7000), key, ringnettest.New().Listen
		c.Names = []string{"n1", "n2", "n3"}
		return c
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		tweak func(*ringnet.Config)
		want  string
	}{
		{"no nodes", func(c *ringnet.Config) { c.Nodes = nil }, "node map is empty"},
		{"self 0", func(c *ringnet.Config) { c.Self = 0 }, "position 0 is not in the node map"},
		{"self 4", func(c *ringnet.Config) { c.Self = 4 }, "position 4 is not in the node map (1..3)"},
		{"short key", func(c *ringnet.Config) { c.Key = key[:16] }, "cluster key is 16 bytes, want 32"},
		{"path count differs", func(c *ringnet.Config) { c.Nodes[2] = c.Nodes[2][:1] }, "nodes[n3] has 1 addresses but nodes[n1] has 2"},
		{"unspecified", func(c *ringnet.Config) { c.Nodes[1][0] = ap("0.0.0.0:7000") }, "nodes[n2].addresses[0] = 0.0.0.0:7000 is not a usable"},
		{"port 0", func(c *ringnet.Config) { c.Nodes[1][1] = ap("127.77.2.2:0") }, "nodes[n2].addresses[1]"},
		{"duplicate", func(c *ringnet.Config) { c.Nodes[2][0] = c.Nodes[0][0] }, "address 127.77.1.1:7000 is listed for nodes[n1] and nodes[n3]"},
		{"not local", func(c *ringnet.Config) {
			c.Listen = ringnet.ListenUDP
			c.Nodes[0][0] = ap("203.0.113.1:7000")
		}, "address 203.0.113.1 is not configured on any interface of this host: check nodes[n1].addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.tweak(&c)
			d, err := ringnet.New(c, &fakeCore{})
			if err == nil {
				d.Close()
				t.Fatalf("New: no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)

func newNet() *ringnettest.Network { return ringnettest.New() }

func TestDriverEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 1, func(c *ringnet.Config) { c.EventQueue = 3 })
		fc.do(1, func(c *fakeCore) { c.events = make([]ringnet.Event, 5) })
		for range 3 {
			<-fc.d[0].Events()
		}
		select {
		case <-fc.d[0].Events():
			t.Error("a 4th event was queued beyond EventQueue = 3")
		default:
		}
		if got := fc.d[0].Stats().EventsDropped; got != 2 {
			t.Errorf("events dropped = %d, want 2", got)
		}
	})
}

// TestDriverResendsWhenBootLearnt: a core packet that went out echoing a
// peer's earlier boot (the peer restarted and its announces were lost) is
// dropped there as not fresh; as soon as the peer's new boot is learnt,
// from any authentic datagram, the driver sends it again, echoing the new
// boot, without waiting for the core to resend.
func TestDriverResendsWhenBootLearnt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeCluster(t, 2, nil)
		fc.d[1].Close()
		if err := <-fc.done[1]; err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a later boot id (virtual time stands still)
		// Node 2 restarts, but nothing it sends reaches node 1 for now.
		n2 := map[netip.AddrPort]bool{fc.nodes[1][0]: true, fc.nodes[1][1]: true}
		fc.net.SetFilter(func(from, to netip.AddrPort) bool { return !n2[from] })
		fc.start(2, nil)
		fc.do(1, func(c *fakeCore) { c.out = []ringnet.Packet{{To: 2, Data: []byte("x")}} })
		synctest.Wait()
		if s := fc.steps(2); len(s) != 0 {
			t.Fatalf("node 2 stepped %v echoing its earlier boot", s)
		}
		if got := fc.d[1].Stats().Drops[ringnet.DropNotFresh]; got != 1 {
			t.Fatalf("node 2 not_fresh drops = %d, want 1", got)
		}
		fc.net.SetFilter(nil)
		fc.do(2, func(c *fakeCore) { c.out = []ringnet.Packet{{To: 1, Data: []byte("y")}} })
		synctest.Wait()
		if diff := cmp.Diff([]step{{1, 0, "x"}}, fc.steps(2)); diff != "" {
			t.Errorf("node 2 steps (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]step{{2, 0, "y"}}, fc.steps(1)); diff != "" {
			t.Errorf("node 1 steps (-want +got):\n%s", diff)
		}
		if s := fc.d[0].Stats(); s.Resent != 1 || s.PeerRestarts != 1 {
			t.Errorf("node 1 resent %d, saw %d restarts; want 1, 1", s.Resent, s.PeerRestarts)
		}
	})
}
