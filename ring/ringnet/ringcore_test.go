package ringnet_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
)

// These tests run the real ring core over real UDP on loopback, two paths
// per node.

var _ ringnet.Core = (*ring.Node)(nil)

func realCores(n int, cores []*ring.Node) func(id ringnet.NodeID) ringnet.Core {
	return func(id ringnet.NodeID) ringnet.Core {
		cfg := ring.DefaultConfig()
		cfg.ID, cfg.Paths, cfg.Rand = id, 2, rand.Uint64
		for i := 1; i <= n; i++ {
			cfg.Nodes = append(cfg.Nodes, ring.NodeID(i))
		}
		cfg.Holder = ring.HolderFunc(func(t ring.TokenView) []ring.Carriage {
			if t.Carriages == nil {
				return []ring.Carriage{{Kind: 100, Data: []byte("carriage")}}
			}
			return t.Carriages
		})
		c, err := ring.NewNode(cfg)
		if err != nil {
			panic(err)
		}
		cores[id-1] = c
		return c
	}
}

// agree waits until every running node has committed exactly members.
func (uc *udpCluster) agree(within time.Duration, members ...ringnet.NodeID) {
	uc.t.Helper()
	waitFor(uc.t, within, fmt.Sprintf("running nodes agree on members %v", members), func() (bool, string) {
		var got []string
		ok := true
		for i, u := range uc.n {
			if u == nil {
				continue
			}
			s, _ := u.latest()
			got = append(got, fmt.Sprintf("n%d:%v", i+1, s.Members))
			ok = ok && slices.Equal(s.Members, members)
		}
		return ok, fmt.Sprint(got)
	})
}

func status(uc *udpCluster, cores []*ring.Node, id ringnet.NodeID) ring.Status {
	var s ring.Status
	uc.do(id, func(ringnet.Core) { s = cores[id-1].Status() })
	return s
}

// TestRingOverUDP forms a ring of three, crashes one and restarts it.
func TestRingOverUDP(t *testing.T) {
	cores := make([]*ring.Node, 3)
	uc := newUDPCluster(t, 3, realCores(3, cores), nil)
	uc.agree(10*time.Second, 1, 2, 3)

	// What node 2 sent in its first life, for a replay after its restart.
	var oldBoot [][][]byte
	for _, c := range uc.n[1].conns {
		oldBoot = append(oldBoot, c.captured())
	}

	// Crash node 2: no leave, its sockets just close.
	uc.crash(2)
	start := time.Now()
	uc.agree(10*time.Second, 1, 3)
	t.Logf("crash of node 2 repaired at both survivors in %v", time.Since(start))

	// Restart: a new boot id, accepted at once by the peers.
	before := uc.n[0].d.Stats().PeerRestarts
	uc.start(2)
	uc.agree(10*time.Second, 1, 2, 3)
	if got := uc.n[0].d.Stats().PeerRestarts - before; got != 1 {
		t.Errorf("node 1 saw %d restarts of node 2, want 1", got)
	}
	for id := ringnet.NodeID(1); id <= 3; id++ {
		// A core message of node 2 sent before the peers' answers to its
		// announces came back (on a loaded machine the round trip can
		// exceed the tick before its first hello) is dropped as not fresh
		// and resent; nothing else may be dropped.
		s := uc.n[id-1].d.Stats()
		if d := s.Dropped() - s.Drops[ringnet.DropNotFresh]; d != 0 {
			t.Errorf("node %d dropped %d datagrams on a clean network: %v", id, d, s.Drops)
		}
		if n := s.Drops[ringnet.DropNotFresh]; n != 0 {
			t.Logf("node %d: %d datagrams not fresh around the restart", id, n)
		}
	}

	// An attacker replays node 2's first life, from node 2's addresses: the
	// peers know its newer boot and drop it all as stale.
	before1, before3 := status(uc, cores, 1), status(uc, cores, 3)
	sent := 0
	for p, dgs := range oldBoot {
		for _, b := range dgs {
			var h ringnet.Header
			h.UnmarshalBinary(b)
			uc.n[1].conns[p].Conn.WriteTo(b, uc.nodes[h.To-1][p])
			sent++
		}
	}
	waitFor(t, 10*time.Second, "old boot's datagrams dropped as stale", func() (bool, string) {
		n := uc.n[0].d.Stats().Drops[ringnet.DropStaleBoot] + uc.n[2].d.Stats().Drops[ringnet.DropStaleBoot]
		return n == uint64(sent), fmt.Sprintf("%d of %d", n, sent)
	})
	uc.agree(time.Second, 1, 2, 3)
	for i, b := range []ring.Status{before1, before3} {
		id := []ringnet.NodeID{1, 3}[i]
		if s := status(uc, cores, id); s.Counters.BadInput != b.Counters.BadInput || s.MaxSeq < b.MaxSeq {
			t.Errorf("node %d changed under the replay: before %+v after %+v", id, b, s)
		}
	}
}

// TestRingOverUDPReplayToRestartedNode: a node that restarted knows no
// peer's boot or window, and its peers' old datagrams to it echo its
// previous boot: its driver drops them as not fresh (before format
// version 3 it accepted them, and only the core's ring ids and sequence
// numbers stood between them and its state); nothing may move back, and
// the ring must end whole. TestRingRestartedNodeRefusesReplay isolates
// the restarted node to check that it commits nothing from them.
func TestRingOverUDPReplayToRestartedNode(t *testing.T) {
	cores := make([]*ring.Node, 3)
	uc := newUDPCluster(t, 3, realCores(3, cores), nil)
	uc.agree(10*time.Second, 1, 2, 3)
	// Let the ring move on well past what will be replayed.
	old := [][]byte{}
	oldCore := 0 // not counting node 2's announces
	for _, b := range uc.n[1].conns[0].captured() {
		var h ringnet.Header
		h.UnmarshalBinary(b)
		if h.To == 1 {
			old = append(old, b)
			if h.Kind == ringnet.KindCore {
				oldCore++
			}
		}
	}
	seq := status(uc, cores, 2).MaxSeq
	waitFor(t, 10*time.Second, "ring moves on", func() (bool, string) {
		s := status(uc, cores, 2).MaxSeq
		return s > seq+20, fmt.Sprint(s)
	})
	before2, before3 := status(uc, cores, 2), status(uc, cores, 3)

	uc.crash(1)
	uc.agree(10*time.Second, 2, 3)
	u := uc.start(1)
	// Straight after the restart: the replay reaches node 1 among the first
	// datagrams it reads.
	for _, b := range old {
		uc.n[1].conns[0].Conn.WriteTo(b, uc.nodes[0][0])
	}
	uc.agree(10*time.Second, 1, 2, 3)
	if n := u.d.Stats().Drops[ringnet.DropNotFresh]; n < uint64(oldCore) {
		t.Errorf("restarted node 1 dropped %d datagrams as not fresh; %d old ones for its core were replayed to it", n, oldCore)
	}
	for i, b := range []ring.Status{before2, before3} {
		id := ringnet.NodeID(i + 2)
		if s := status(uc, cores, id); s.MaxSeq < b.MaxSeq {
			t.Errorf("node %d went back: max seq %d, was %d", id, s.MaxSeq, b.MaxSeq)
		}
	}
	t.Logf("restarted node 1: %d old datagrams replayed; driver accepted %d datagrams, dropped %v; core %+v",
		len(old), u.d.Stats().RxDatagrams, u.d.Stats().Drops, status(uc, cores, 1).Counters)
}

// TestRingOverUDPOnePath keeps the ring up when path 0 loses everything.
func TestRingOverUDPOnePath(t *testing.T) {
	cores := make([]*ring.Node, 3)
	var cut atomic.Bool
	uc := newUDPCluster(t, 3, realCores(3, cores), func(c *ringnet.Config) {
		listen := c.Listen
		c.Listen = func(a netip.AddrPort) (ringnet.Conn, error) {
			conn, err := listen(a)
			if err != nil || a.Addr().As4()[2] != 1 { // path 0 is 127.77.1.x
				return conn, err
			}
			return &cutConn{Conn: conn, cut: &cut}, nil
		}
	})
	uc.agree(10*time.Second, 1, 2, 3)
	cut.Store(true)
	var drops [3]uint64
	for id := ringnet.NodeID(1); id <= 3; id++ {
		drops[id-1] = status(uc, cores, id).Counters.Drops
	}
	seq := status(uc, cores, 1).MaxSeq
	waitFor(t, 10*time.Second, "token keeps rotating on path 1", func() (bool, string) {
		s := status(uc, cores, 1)
		return s.MaxSeq >= seq+30, fmt.Sprintf("max seq %d, started at %d", s.MaxSeq, seq)
	})
	uc.agree(5*time.Second, 1, 2, 3)
	for id := ringnet.NodeID(1); id <= 3; id++ {
		// Not an error on a loaded machine (the timers are tens of ms), but
		// worth seeing.
		if d := status(uc, cores, id).Counters.Drops - drops[id-1]; d != 0 {
			t.Logf("node %d dropped a member %d times with path 1 still up", id, d)
		}
	}
}

// cutConn loses every datagram written while cut is set.
type cutConn struct {
	ringnet.Conn
	cut *atomic.Bool
}

func (c *cutConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	if c.cut.Load() {
		return len(b), nil
	}
	return c.Conn.WriteTo(b, to)
}

func (c *cutConn) TryWriteTo(b []byte, to netip.AddrPort) (bool, error) {
	if c.cut.Load() {
		return true, nil
	}
	if tw, ok := c.Conn.(ringnet.TryWriter); ok {
		return tw.TryWriteTo(b, to)
	}
	return false, nil
}

// TestRingOverUDPAttacker replays everything node 1 sent and forges
// datagrams, from node 1's own addresses: all are dropped and counted, the
// cores see none of it, and the ring goes on unchanged.
func TestRingOverUDPAttacker(t *testing.T) {
	cores := make([]*ring.Node, 3)
	uc := newUDPCluster(t, 3, realCores(3, cores), nil)
	uc.agree(10*time.Second, 1, 2, 3)
	n1 := uc.n[0]
	before := [3]ring.Status{status(uc, cores, 1), status(uc, cores, 2), status(uc, cores, 3)}
	drops2 := uc.n[1].d.Stats().Drops
	// Replay only what node 1 sent once every node was up: a datagram sent
	// before its receiver had bound its socket was never seen there, so
	// its replay is rightly accepted as new (on a loaded machine the nodes
	// start milliseconds apart).
	skip := make([]int, len(n1.conns))
	for p, conn := range n1.conns {
		skip[p] = len(conn.captured())
	}
	waitFor(t, 10*time.Second, "node 1 sends after the ring formed", func() (bool, string) {
		sent := 0
		for p, conn := range n1.conns {
			sent += len(conn.captured()) - skip[p]
		}
		return sent >= 20, fmt.Sprintf("%d datagrams", sent)
	})

	var replayed, forged int
	for p, conn := range n1.conns {
		for _, b := range conn.captured()[skip[p]:] {
			var h ringnet.Header
			if err := h.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			to := uc.nodes[h.To-1][p]
			// Replay as is.
			if _, err := conn.Conn.WriteTo(b, to); err != nil {
				t.Fatal(err)
			}
			replayed++
			// Forge: a fresh counter, flipped payload.
			f := bytes.Clone(b)
			f[24] ^= 0x80 // counter far ahead
			f[len(f)-1] ^= 1
			if _, err := conn.Conn.WriteTo(f, to); err != nil {
				t.Fatal(err)
			}
			forged++
		}
	}
	if replayed == 0 {
		t.Fatal("node 1 sent nothing")
	}
	waitFor(t, 10*time.Second, "replays and forgeries counted", func() (bool, string) {
		var rep, auth uint64
		for _, u := range uc.n[1:] {
			s := u.d.Stats()
			rep += s.Drops[ringnet.DropReplay]
			auth += s.Drops[ringnet.DropAuth]
		}
		return rep == uint64(replayed) && auth == uint64(forged), fmt.Sprintf("replay drops %d of %d, auth drops %d of %d", rep, replayed, auth, forged)
	})
	if got := uc.n[1].d.Stats().Drops; got[ringnet.DropAuth] == drops2[ringnet.DropAuth] {
		t.Errorf("node 2 counted no forgery")
	}
	uc.agree(time.Second, 1, 2, 3)
	for id := ringnet.NodeID(1); id <= 3; id++ {
		s, b := status(uc, cores, id), before[id-1]
		// Every injected datagram was counted as a driver drop above, so
		// the core saw none; it rejected nothing and its sequence moved on.
		if s.Counters.BadInput != b.Counters.BadInput || s.MaxSeq < b.MaxSeq {
			t.Errorf("node %d changed under attack:\nbefore %+v\nafter  %+v", id, b, s)
		}
	}
}

// TestRingOverUDPLeave: a node that leaves is removed without a failure.
func TestRingOverUDPLeave(t *testing.T) {
	cores := make([]*ring.Node, 3)
	uc := newUDPCluster(t, 3, realCores(3, cores), nil)
	uc.agree(10*time.Second, 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := uc.n[2].d.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	uc.crash(3) // Run has returned; this collects it
	uc.agree(10*time.Second, 1, 2)
}

// TestRingVirtualTime runs three real cores through their drivers on the
// in-memory network, in virtual time: the driver's ticker drives the core's
// timers, so a crash must be repaired within the design bound (≤ 100 ms at
// three nodes) exactly as the timers say, whatever the load on the machine.
func TestRingVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := ringnettest.New()
		cores := make([]*ring.Node, 3)
		uc := newCluster(t, 3, realCores(3, cores), func(c *ringnet.Config) { c.Logger = quiet }, net.Listen)
		start := time.Now()
		uc.agree(2*time.Second, 1, 2, 3)
		t.Logf("formed in %v (virtual)", time.Since(start))
		for _, victim := range []ringnet.NodeID{2, 1, 3} {
			var survivors []ringnet.NodeID
			for id := ringnet.NodeID(1); id <= 3; id++ {
				if id != victim {
					survivors = append(survivors, id)
				}
			}
			time.Sleep(7 * time.Millisecond) // another phase of the rotation
			start = time.Now()
			uc.crash(victim)
			uc.agree(time.Second, survivors...)
			took := time.Since(start)
			t.Logf("crash of node %d repaired in %v (virtual)", victim, took)
			if took > 100*time.Millisecond {
				t.Errorf("crash of node %d repaired in %v, want ≤ 100 ms", victim, took)
			}
			uc.start(victim)
			uc.agree(2*time.Second, 1, 2, 3)
		}
	})
}
