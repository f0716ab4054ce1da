package ringnet_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ringway/ringway/ring/ringnet"
)

// Tests on real UDP sockets: node i binds 127.77.1.i:P (path 0) and
// 127.77.2.i:P (path 1). Linux routes all of 127.0.0.0/8 to lo, so these
// addresses need no setup.

// freePort returns a UDP port free on 127.77.1.1 and 127.77.2.1 right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		c, err := ringnet.ListenUDP(netip.MustParseAddrPort("127.77.1.1:0"))
		if err != nil {
			t.Fatalf("bind loopback: %v", err)
		}
		port := c.(interface{ LocalPort() uint16 }).LocalPort()
		c.Close()
		ok := true
		for i := 1; i <= 16; i++ {
			for sub := 1; sub <= 2; sub++ {
				a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, byte(sub), byte(i)}), port)
				c, err := ringnet.ListenUDP(a)
				if err != nil {
					ok = false
					continue
				}
				c.Close()
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free UDP port on 127.77.x.y")
	return 0
}

// tapConn wraps a real socket so a test can play the attacker on the wire:
// see what was sent and send anything from the node's own address.
type tapConn struct {
	ringnet.Conn
	mu   sync.Mutex
	sent [][]byte
}

func (c *tapConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	c.record(b)
	return c.Conn.WriteTo(b, to)
}

// TryWriteTo keeps the driver writing on its own goroutines, as it does
// on the bare socket.
func (c *tapConn) TryWriteTo(b []byte, to netip.AddrPort) (bool, error) {
	tw, ok := c.Conn.(ringnet.TryWriter)
	if !ok {
		return false, nil
	}
	sent, err := tw.TryWriteTo(b, to)
	if sent {
		c.record(b)
	}
	return sent, err
}

func (c *tapConn) record(b []byte) {
	c.mu.Lock()
	if len(c.sent) < 10000 {
		c.sent = append(c.sent, append([]byte(nil), b...))
	}
	c.mu.Unlock()
}

func (c *tapConn) captured() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.sent...)
}

// udpNode is one running driver and what it last committed.
type udpNode struct {
	d     *ringnet.Driver
	core  ringnet.Core
	conns []*tapConn
	done  chan error

	mu    sync.Mutex
	state ringnet.State
	n     int // states seen
}

func (u *udpNode) latest() (ringnet.State, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state, u.n
}

// udpCluster runs drivers with cores from mk on loopback.
type udpCluster struct {
	t      *testing.T
	nodes  [][]netip.AddrPort
	mk     func(id ringnet.NodeID) ringnet.Core
	tweak  func(*ringnet.Config)
	listen ringnet.ListenFunc
	n      []*udpNode
}

func newUDPCluster(t *testing.T, n int, mk func(id ringnet.NodeID) ringnet.Core, tweak func(*ringnet.Config)) *udpCluster {
	return newCluster(t, n, mk, tweak, nil)
}

// newCluster starts n nodes. listen nil means real UDP sockets on a free
// port; otherwise listen (an in-memory network) with port 7000.
func newCluster(t *testing.T, n int, mk func(id ringnet.NodeID) ringnet.Core, tweak func(*ringnet.Config), listen ringnet.ListenFunc) *udpCluster {
	var nodes [][]netip.AddrPort
	onUDP := listen == nil
	if onUDP {
		listen, nodes = ringnet.ListenUDP, addrs(n, freePort(t))
	} else {
		nodes = addrs(n, 7000)
	}
	if onUDP {
		// Real sockets run in real time: use the production timer (a
		// timerfd), which TestConfig replaces for synctest.
		user := tweak
		tweak = func(c *ringnet.Config) {
			c.Timer = ringnet.TimerDefault
			if user != nil {
				user(c)
			}
		}
	}
	uc := &udpCluster{t: t, nodes: nodes, mk: mk, tweak: tweak, listen: listen, n: make([]*udpNode, n)}
	t.Cleanup(func() {
		for i := range uc.n {
			uc.crash(ringnet.NodeID(i + 1))
		}
	})
	for i := range n {
		uc.start(ringnet.NodeID(i + 1))
	}
	return uc
}

func (uc *udpCluster) start(id ringnet.NodeID) *udpNode {
	uc.t.Helper()
	u := &udpNode{core: uc.mk(id), done: make(chan error, 1)}
	cfg := ringnet.TestConfig()
	cfg.Self, cfg.Nodes, cfg.Key, cfg.Logger = id, uc.nodes, key, quiet
	cfg.Listen = func(a netip.AddrPort) (ringnet.Conn, error) {
		c, err := uc.listen(a)
		if err != nil {
			return nil, err
		}
		tc := &tapConn{Conn: c}
		u.conns = append(u.conns, tc)
		return tc, nil
	}
	if uc.tweak != nil {
		uc.tweak(&cfg)
	}
	d, err := ringnet.New(cfg, u.core)
	if err != nil {
		uc.t.Fatalf("node %d: %v", id, err)
	}
	u.d = d
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case s := <-d.States():
				u.mu.Lock()
				u.state, u.n = s, u.n+1
				u.mu.Unlock()
			case <-d.Done():
				return
			}
		}
	}()
	go func() {
		err := d.Run(context.Background())
		<-watching
		u.done <- err
	}()
	uc.n[id-1] = u
	return u
}

// crash stops node id without a leave: its peers just stop hearing it.
func (uc *udpCluster) crash(id ringnet.NodeID) {
	u := uc.n[id-1]
	if u == nil {
		return
	}
	u.d.Close()
	if err := <-u.done; err != nil {
		uc.t.Errorf("node %d Run: %v", id, err)
	}
	uc.n[id-1] = nil
}

// do runs fn on node id's core, under its driver's core lock.
func (uc *udpCluster) do(id ringnet.NodeID, fn func(c ringnet.Core)) {
	uc.t.Helper()
	if err := uc.n[id-1].d.Do(context.Background(), fn); err != nil {
		uc.t.Fatalf("Do on node %d: %v", id, err)
	}
}

// waitFor polls cond every millisecond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", within, what, why)
		}
		time.Sleep(time.Millisecond) // polling interval, not a correctness sleep
	}
}

func TestUDPFakeCores(t *testing.T) {
	var cores []*fakeCore
	uc := newUDPCluster(t, 2, func(ringnet.NodeID) ringnet.Core {
		c := &fakeCore{}
		cores = append(cores, c)
		return c
	}, nil)
	steps := func() []step {
		var s []step
		uc.do(2, func(ringnet.Core) { s = append(s, cores[1].steps...) })
		return s
	}
	// Node 2's announces reach node 1, whose answer reaches node 2: then
	// each echoes the other's boot, and what the cores send is fresh.
	waitFor(t, 5*time.Second, "the drivers learn each other's boot", func() (bool, string) {
		a, b := uc.n[0].d.Stats().AnnouncesReceived, uc.n[1].d.Stats().AnnouncesReceived
		return a > 0 && b > 0, fmt.Sprintf("announces received: %d, %d", a, b)
	})
	skip := len(uc.n[0].conns[0].captured())
	uc.do(1, func(ringnet.Core) {
		cores[0].out = []ringnet.Packet{{To: 2, Path: 0, Data: []byte("zero")}, {To: 2, Path: 1, Data: []byte("one")}}
	})
	waitFor(t, 5*time.Second, "node 2 receives both paths", func() (bool, string) {
		s := steps()
		return len(s) == 2, fmt.Sprint(s)
	})
	// The attacker replays what node 1 sent, from node 1's own address, and
	// forges a datagram with a fresh counter.
	n1 := uc.n[0]
	sent := n1.conns[0].captured()[skip:]
	if len(sent) != 1 {
		t.Fatalf("captured %d datagrams on path 0, want 1", len(sent))
	}
	forged := bytes.Clone(sent[0])
	forged[31] += 9
	for _, b := range [][]byte{sent[0], forged} {
		if _, err := n1.conns[0].Conn.WriteTo(b, uc.nodes[1][0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "node 2 counts the replay and the forgery", func() (bool, string) {
		s := uc.n[1].d.Stats()
		return s.Drops[ringnet.DropReplay] == 1 && s.Drops[ringnet.DropAuth] == 1, fmt.Sprint(s.Drops)
	})
	if s := steps(); len(s) != 2 {
		t.Errorf("core stepped %d datagrams, want 2 (nothing from the attacker)", len(s))
	}
}
