package ringnet_test

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
)

// chattyCore is a fakeCore that sends its tick count to node 2 on both
// paths at every Tick, as the real core's resends go on every path. Its
// tick count can be read without the driver's core lock.
type chattyCore struct {
	*fakeCore
	n atomic.Int64
}

func (c *chattyCore) Tick() {
	n := c.n.Add(1)
	c.fakeCore.Tick()
	for p := range 2 {
		c.out = append(c.out, ringnet.Packet{To: 2, Path: p, Data: []byte(strconv.FormatInt(n, 10))})
	}
}

// startDriver runs core as node id on network n until the test ends.
func startDriver(t *testing.T, n *ringnettest.Network, nodes [][]netip.AddrPort, id ringnet.NodeID, core ringnet.Core) *ringnet.Driver {
	t.Helper()
	cfg := ringnet.TestConfig()
	cfg.Self, cfg.Nodes, cfg.Key, cfg.Listen, cfg.Logger = id, nodes, key, n.Listen, quiet
	d, err := ringnet.New(cfg, core)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.Run(context.Background()); close(done) }()
	t.Cleanup(func() { d.Close(); <-done })
	return d
}

// seq returns the tick numbers from, from+1, ... to as chattyCore sends them.
func seq(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

// TestDriverBlockedPath: while path 0's socket takes nothing (its writes
// block), the driver keeps ticking on time and keeps sending on path 1;
// path 0's datagrams wait in its queue, in order, up to SendQueue, and the
// rest are dropped and counted. When the socket takes datagrams again the
// queue goes out first, in order, and then what comes next.
func TestDriverBlockedPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := ringnettest.New()
		nodes := addrs(2, 7000)
		release := n.HoldWrites(nodes[0][0]) // node 1, path 0
		defer release()
		c1 := &chattyCore{fakeCore: &fakeCore{}}
		c2 := &fakeCore{}
		// Node 2 first: its announces find nobody. Node 1's announces get
		// counters 1 (path 0, held) and 2 (path 1, answered by node 2, so
		// node 1's datagrams are fresh from its first tick on).
		d2 := startDriver(t, n, nodes, 2, c2)
		synctest.Wait()
		d1 := startDriver(t, n, nodes, 1, c1)
		byPath := func() [2][]string {
			var got [2][]string
			d2.Do(context.Background(), func(ringnet.Core) {
				for _, s := range c2.steps {
					got[s.Path] = append(got[s.Path], s.Data)
				}
			})
			return got
		}

		// Past what path 0 can queue: 2 ms ticks, one datagram each.
		const ticks = ringnet.SendQueue + 26
		time.Sleep(ticks*2*time.Millisecond + time.Microsecond) // virtual time
		synctest.Wait()
		if got := c1.n.Load(); got != ticks {
			t.Errorf("node 1 ticked %d times in %d ms with path 0 blocked, want %d", got, 2*ticks, ticks)
		}
		got := byPath()
		if diff := cmp.Diff(seq(1, ticks), got[1]); diff != "" {
			t.Errorf("node 2's datagrams on path 1 (-want +got):\n%s", diff)
		}
		if len(got[0]) != 0 {
			t.Errorf("node 2 got %d datagrams on the blocked path 0", len(got[0]))
		}
		// Path 0's queue holds the announce and SendQueue-1 ticks.
		s := d1.Stats()
		if s.TxDropped != ticks-ringnet.SendQueue+1 || s.TxDatagrams != ticks+1 || s.TxErrors != 0 {
			t.Errorf("node 1 sent %d, dropped %d, failed %d; want %d sent (path 1), %d dropped (path 0), 0 failed",
				s.TxDatagrams, s.TxDropped, s.TxErrors, ticks+1, ticks-ringnet.SendQueue+1)
		}

		// What node 1 writes on path 0 from now on, in the order it writes it.
		var mu sync.Mutex
		var counters []uint64
		n.SetTap(func(from, to netip.AddrPort, b []byte) {
			if from != nodes[0][0] {
				return
			}
			var h ringnet.Header
			h.UnmarshalBinary(b)
			mu.Lock()
			counters = append(counters, h.Counter)
			mu.Unlock()
		})
		release()
		time.Sleep(10 * time.Millisecond) // 5 more ticks
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		// After the announces (1 and 2), tick k's datagrams got counters
		// 2k+1 (path 0) and 2k+2 (path 1): the queue goes first, oldest
		// first, then the ticks after the release; the dropped ones never.
		want := []uint64{1}
		for k := uint64(1); k < ringnet.SendQueue; k++ {
			want = append(want, 2*k+1)
		}
		for k := uint64(ticks + 1); k <= ticks+5; k++ {
			want = append(want, 2*k+1)
		}
		if diff := cmp.Diff(want, counters); diff != "" {
			t.Errorf("counters written on path 0 after the release (-want +got):\n%s", diff)
		}
	})
}
