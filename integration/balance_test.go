//go:build linux

package integration

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/mgmt"
)

// echoLoad sends ICMP echo requests of size bytes from the lab's client to
// each VIP at its rate (packets/s) until ctx is done. The VIP's owner
// answers them itself and counts their bytes on the VIP: traffic that
// measurably belongs to one VIP.
func echoLoad(t *testing.T, c *cluster, ctx context.Context, rates map[netip.Addr]int, size int) {
	t.Helper()
	var conn net.PacketConn
	err := c.lab.Do(c.lab.Client(), func() error {
		var err error
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	wg.Add(2)
	go func() { // drain the replies
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		const tick = 10 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		payload := make([]byte, size)
		seq := 0
		acc := map[netip.Addr]float64{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			for vip, pps := range rates {
				acc[vip] += float64(pps) * tick.Seconds()
				for ; acc[vip] >= 1; acc[vip]-- {
					seq++
					m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x7777, Seq: seq & 0xffff, Data: payload}}
					b, _ := m.Marshal(nil)
					conn.WriteTo(b, &net.IPAddr{IP: vip.AsSlice()})
				}
			}
		}
	}()
}

// TestBalancing: skewed traffic over three VIPs that one node owns. With
// L.BAL off (switched at run time through the token), nothing moves; with
// it on, the VIPs spread until every node carries one, in a bounded
// number of moves, and then nothing moves back and forth while the
// traffic stays steady (RINGWAY_BALANCE_STEADY sets how long that is
// watched: 10 s here, 5m in `make test-balance`).
func TestBalancing(t *testing.T) {
	steady := 10 * time.Second
	if s := os.Getenv("RINGWAY_BALANCE_STEADY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RINGWAY_BALANCE_STEADY=%q: %v", s, err)
		}
		steady = d
	}
	c := newCluster(t, 3, func(i int, cfg *config.Config) {
		cfg.Balancing.Cooldown = 2 * time.Second // default 30 s: a test would wait minutes
		cfg.Balancing.MinRate = 100_000
	})
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	vips := []netip.Addr{netip.MustParseAddr("203.0.113.92"), netip.MustParseAddr("203.0.113.93"), netip.MustParseAddr("203.0.113.94")}
	// All three on n1, then without a preference (persistence none: only
	// balancing may move them), and L.BAL off. A token regenerated from an
	// older copy (a slow start on a busy machine) can undo operations that
	// were applied: check it all, and set it again if need be.
	ready := func(st mgmt.Status) bool {
		for _, v := range vips {
			if r, _ := st.Lookup(v); r.Owner != "n1" || r.Persistence != "none" {
				return false
			}
		}
		return !st.Balancing
	}
	for try := 1; ; try++ {
		for _, v := range vips {
			c.vipOps(1, mgmt.VIPOp{Op: "move", VIP: v, Node: "n1"})
		}
		c.waitFor(func(st mgmt.Status) bool {
			for _, v := range vips {
				if st.Owner(v) != "n1" {
					return false
				}
			}
			return true
		}, 5*time.Second, "the three VIPs on n1")
		for _, v := range vips {
			c.vipOps(1, mgmt.VIPOp{Op: "unprefer", VIP: v})
		}
		if err := c.lab.NodeAPI(2, func(cl *mgmt.Client) error {
			return cl.Switch(context.Background(), mgmt.SwitchOp{Switch: "balancing", To: "off"})
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if st, err := c.status(3); err == nil && ready(st) {
			break
		} else if try == 3 {
			t.Fatalf("three tries to put the VIPs on n1 without preference and L.BAL off; last status %+v, %v", st.VIPs, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 150 packets/s of 1000 bytes each: about 150 kB/s per VIP, 450 kB/s
	// on n1, a mean of 150 kB/s per node (over balancing.min_rate).
	rates := map[netip.Addr]int{vips[0]: 150, vips[1]: 150, vips[2]: 150}
	echoLoad(t, c, ctx, rates, 1000)

	owners := func() []string {
		st, err := c.status(2)
		if err != nil {
			return nil
		}
		var o []string
		for _, v := range vips {
			o = append(o, st.Owner(v))
		}
		return o
	}
	watch := func(d time.Duration) (moves int, last []string) {
		last = owners()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			time.Sleep(100 * time.Millisecond)
			o := owners()
			if o == nil {
				continue
			}
			for i := range o {
				if o[i] != last[i] {
					moves++
				}
			}
			last = o
		}
		return moves, last
	}
	// L.BAL off: the load is on the token, and nothing moves.
	c.waitFor(func(st mgmt.Status) bool {
		for _, n := range st.NodeStates {
			if n.ID == "n1" && n.Load > 300_000 {
				return true
			}
		}
		return false
	}, 10*time.Second, "n1's load (about 450 kB/s) on the token")
	if moves, o := watch(6 * time.Second); moves != 0 || !slices.Equal(o, []string{"n1", "n1", "n1"}) {
		t.Fatalf("with L.BAL off: %d moves, owners %v; want none", moves, o)
	}

	// L.BAL on: the VIPs spread, one per node.
	if err := c.lab.NodeAPI(3, func(cl *mgmt.Client) error {
		return cl.Switch(context.Background(), mgmt.SwitchOp{Switch: "balancing", To: "on"})
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var moves int
	var o []string
	for {
		m, last := watch(500 * time.Millisecond)
		moves += m
		o = last
		s := slices.Clone(o)
		slices.Sort(s)
		if slices.Equal(s, []string{"n1", "n2", "n3"}) {
			break
		}
		if time.Since(start) > 30*time.Second {
			st, _ := c.status(2)
			t.Fatalf("with L.BAL on, after 30 s: owners %v, %d moves; loads %+v", o, moves, st.NodeStates)
		}
	}
	t.Logf("balanced in %v with %d moves: owners %v", time.Since(start).Round(100*time.Millisecond), moves, o)
	if moves > 4 {
		t.Errorf("%d moves to spread 3 VIPs over 3 nodes; want at most 4", moves)
	}
	// Steady traffic: nothing moves back and forth.
	later, o2 := watch(steady)
	st, _ := c.status(2)
	t.Logf("then %v of steady traffic: %d moves, owners %v, loads %+v", steady, later, o2, st.NodeStates)
	if later != 0 {
		t.Errorf("%d moves during %v of steady traffic after balancing; want none", later, steady)
	}
	var mean, most uint64
	for _, n := range st.NodeStates {
		mean += n.Load
		most = max(most, n.Load)
	}
	mean /= uint64(len(st.NodeStates))
	if float64(most) > 1.25*float64(mean)+10_000 {
		t.Errorf("loads %+v: the busiest node is above the 25 %% threshold over the mean %d", st.NodeStates, mean)
	}
}
