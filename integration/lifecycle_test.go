//go:build linux

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

func TestClusterColdStartOneAtATime(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.start(1)
	st := c.waitConverged([]int{1}, 10*time.Second)
	if !st.Alone {
		t.Errorf("a single node should be in alone mode: %+v", st)
	}
	c.start(2)
	c.waitConverged([]int{1, 2}, 10*time.Second)
	c.start(3)
	st = c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n1" {
		t.Errorf("203.0.113.91 (preferred n1) is owned by %q", got)
	}
}

// macOf maps each node's ext0 MAC to its id.
func macOf(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	m := map[string]string{}
	for i := 1; i <= c.lab.Nodes(); i++ {
		hw, err := c.lab.HardwareAddr(c.lab.Node(i), lab.ExtIf)
		if err != nil {
			t.Fatal(err)
		}
		m[hw.String()] = fmt.Sprintf("n%d", i)
	}
	return m
}

// checkOneAnswer asserts that in [from, to) every external VIP was claimed by
// exactly one MAC, the ext0 MAC of its owner in st.
func checkOneAnswer(t *testing.T, obs *workload.ARPObserver, macs map[string]string, st mgmt.Status, from, to time.Time) {
	t.Helper()
	for _, vip := range lab.VIPs(lab.ExtPrefix) {
		got := obs.Answerers(vip, from, to)
		want := owner(st, vip.String())
		if len(got) != 1 || macs[got[0].String()] != want {
			var names []string
			for _, hw := range got {
				names = append(names, macs[hw.String()]+"("+hw.String()+")")
			}
			t.Errorf("VIP %s answered by %v in [%s, %s), want exactly its owner %s",
				vip, names, from.Format("15:04:05.000"), to.Format("15:04:05.000"), want)
		}
	}
}

func TestARPOneOwnerAtATime(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	before := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	macs := macOf(t, c)
	obs := c.watchARP(workload.ARPConfig{Probe: lab.VIPs(lab.ExtPrefix), ProbeInterval: 20 * time.Millisecond})
	t0 := time.Now()
	time.Sleep(time.Second)
	cut := time.Now()
	checkOneAnswer(t, obs, macs, before, t0, cut)

	if err := c.lab.Cut(1); err != nil {
		t.Fatal(err)
	}
	after := c.waitConverged([]int{2, 3}, 5*time.Second)
	settled := time.Now().Add(200 * time.Millisecond)
	time.Sleep(1200 * time.Millisecond)
	checkOneAnswer(t, obs, macs, after, settled, time.Now())

	// The fail-over itself is announced: the new owner of the gateway VIP
	// sent gratuitous ARP.
	newOwner := owner(after, lab.ExtGateway.String())
	garp := false
	for _, e := range obs.Events() {
		garp = garp || (e.Gratuitous && e.IP == lab.ExtGateway && macs[e.MAC.String()] == newOwner && e.Time.After(cut))
	}
	if !garp {
		t.Errorf("no gratuitous ARP for %s from its new owner %s after the cut", lab.ExtGateway, newOwner)
	}
}

// drain is node.Config.Drain's default: how long a leaving node keeps
// forwarding, no longer answering ARP, before it exits.
const drain = time.Second

func TestGracefulStopLosesNothing(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	macs := macOf(t, c)
	obs := c.watchARP(workload.ARPConfig{Probe: lab.VIPs(lab.ExtPrefix), ProbeInterval: 20 * time.Millisecond})
	tr := startTraffic(t, c)
	time.Sleep(300 * time.Millisecond)
	if err := c.lab.StopNode(1, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("n1 did not stop on SIGTERM: %v", err)
	}
	exited := time.Now()
	st := c.waitConverged([]int{2, 3}, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	rep := tr.stream.Stop()
	t.Logf("graceful stop: VIP now on %s; sent %d received %d lost %d, longest gap %v",
		owner(st, "203.0.113.91"), rep.Sent, rep.Received, rep.Lost, rep.LongestGap)
	if rep.Lost != 0 {
		t.Errorf("a planned stop lost %d of %d packets; want none", rep.Lost, rep.Sent)
	}
	// While it drains, the leaving node forwards but no longer claims any
	// VIP: the new owners alone answer ARP (a claim from n1 then would
	// steer hosts to a node about to exit). The last drain period before
	// the exit lies inside the drain; 100 ms spare for the exit itself.
	from := exited.Add(-drain + 100*time.Millisecond)
	checkOneAnswer(t, obs, macs, st, from, exited)
}

// TestSecondSignalStopsAtOnce: a second SIGTERM during the graceful leave
// or drain skips the rest of it, and the node still undoes its kernel
// setup; the others detect it as failed. A second signal right after the
// first (a relayed Ctrl-C) is not a second request.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration // between the two signals
		hurry bool
	}{
		{"hurried", 400 * time.Millisecond, true},
		{"relayed", 10 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, nil)
			c.startAll()
			c.waitConverged([]int{1, 2, 3}, 10*time.Second)
			ns := c.lab.Node(1)
			if v, _ := c.lab.Sysctl(ns, "net.ipv4.conf.ext0.arp_ignore"); v != "1" {
				t.Fatalf("arp_ignore on n1's ext0 is %q while it runs, want 1", v)
			}
			start := time.Now()
			if _, err := c.lab.Signal(ns, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tc.after)
			if err := c.lab.StopNode(1, syscall.SIGTERM, 10*time.Second); err != nil {
				t.Fatalf("n1 did not stop: %v", err)
			}
			took := time.Since(start)
			t.Logf("n1 exited %v after the first SIGTERM", took.Round(time.Millisecond))
			if hurried := took < tc.after+drain-200*time.Millisecond; hurried != tc.hurry {
				t.Errorf("n1 took %v to exit (second signal after %v, drain %v); hurried %v, want %v", took, tc.after, drain, hurried, tc.hurry)
			}
			b, err := os.ReadFile(c.lab.LogPath(ns, "ringway"))
			if err != nil {
				t.Fatal(err)
			}
			log := string(b)
			if got := strings.Contains(log, "second signal: stopping at once"); got != tc.hurry || !strings.Contains(log, "msg=stopped") {
				t.Errorf("n1's log: hurried %v, want %v, and a clean stop:\n%s", got, tc.hurry, log)
			}
			if v, _ := c.lab.Sysctl(ns, "net.ipv4.conf.ext0.arp_ignore"); v != "0" {
				t.Errorf("arp_ignore on n1's ext0 is %q after it stopped, want the original 0", v)
			}
			c.waitConverged([]int{2, 3}, 5*time.Second)
		})
	}
}

func TestTCPTransferSurvivesCrash(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	srv, err := workload.ListenTransfer(c.lab, c.lab.Server(), netip.AddrPortFrom(lab.ServerAddr, workload.TransferPort))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const size = 16 << 20
	tr, err := workload.StartTransfer(ctx, c.lab, c.lab.Client(), workload.TransferConfig{
		Server: netip.AddrPortFrom(lab.ServerAddr, workload.TransferPort), Bytes: size, Rate: 8 << 20, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if tr.Sent() == 0 {
		t.Fatal("the transfer has not started")
	}
	sentAtCrash := tr.Sent()
	if err := c.lab.Cut(1); err != nil {
		t.Fatal(err)
	}
	rep, err := tr.Wait()
	if err != nil {
		t.Fatalf("transfer started before the crash failed: %v", err)
	}
	t.Logf("transfer: %d bytes, %d sent before the crash; %+v", size, sentAtCrash, rep)
}

func TestRejoinPolicies(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	// .92 goes to n1 and becomes sticky to it (persistence current); .93
	// goes to n1 with no preference left (persistence none).
	ops := []mgmt.VIPOp{
		{Op: "move", VIP: netip.MustParseAddr("203.0.113.92"), Node: "n1"},
		{Op: "move", VIP: netip.MustParseAddr("203.0.113.93"), Node: "n1"},
	}
	c.vipOps(2, ops...)
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, "203.0.113.92") == "n1" && owner(st, "203.0.113.93") == "n1"
	}, 5*time.Second, "VIPs .92 and .93 to move to n1")
	c.vipOps(3, mgmt.VIPOp{Op: "stick", VIP: netip.MustParseAddr("203.0.113.92")},
		mgmt.VIPOp{Op: "unprefer", VIP: netip.MustParseAddr("203.0.113.93")})
	c.waitFor(func(st mgmt.Status) bool {
		return persistence(st, "203.0.113.92") == "current" && persistence(st, "203.0.113.93") == "none"
	}, 5*time.Second, "persistence of .92 current and .93 none")

	if err := c.lab.Cut(1); err != nil {
		t.Fatal(err)
	}
	during := c.waitConverged([]int{2, 3}, 5*time.Second)
	for _, v := range []string{"203.0.113.91", "203.0.113.92", "203.0.113.93"} {
		if o := owner(during, v); o == "n1" || o == "" {
			t.Fatalf("%s still on %q while n1 is cut off", v, o)
		}
	}
	macs := macOf(t, c)
	obs := c.watchARP(workload.ARPConfig{})
	healed := time.Now()
	if err := c.lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	// Preference return happens at the current owner's turn: allow a few
	// rotations after the merge.
	after := c.waitFor(func(st mgmt.Status) bool { return owner(st, "203.0.113.91") == "n1" }, 5*time.Second,
		"203.0.113.91 (persistence preferred, n1) to return to n1")
	// Whether n1 kept the gateway VIP through the partition (alone, on its
	// side) or got it back, the client must hear it from n1 again: it learnt
	// the takeover node's MAC meanwhile.
	deadline := time.Now().Add(2 * time.Second)
	for !garpFrom(obs, lab.ExtGateway, macs, "n1", healed) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !garpFrom(obs, lab.ExtGateway, macs, "n1", healed) {
		t.Errorf("no gratuitous ARP for %s from n1 after the heal", lab.ExtGateway)
	}
	if got, want := owner(after, "198.51.100.91"), "n1"; got != want {
		t.Errorf("198.51.100.91, in group gw1 with 203.0.113.91, is on %s, want %s", got, want)
	}
	time.Sleep(500 * time.Millisecond)
	after, err := c.status(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"203.0.113.92", "203.0.113.93"} {
		if got, want := owner(after, v), owner(during, v); got != want {
			t.Errorf("%s (persistence %s) moved from %s to %s when n1 came back; it should stay", v, persistence(after, v), want, got)
		}
	}
	if got := persistence(after, "203.0.113.92"); got != "current" {
		t.Errorf("203.0.113.92 persistence %s after fail-over, want current (sticky to its new host)", got)
	}
}

func persistence(st mgmt.Status, vip string) string {
	v, _ := st.Lookup(netip.MustParseAddr(vip))
	return v.Persistence
}

// vipOps sends operations to node i's management API.
func (c *cluster) vipOps(i int, ops ...mgmt.VIPOp) {
	c.t.Helper()
	err := c.lab.NodeAPI(i, func(cl *mgmt.Client) error {
		for _, op := range ops {
			if err := cl.VIP(context.Background(), op); err != nil {
				return fmt.Errorf("%s %s: %w", op.Op, op.VIP, err)
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// waitFor polls node statuses (any running node) until ok holds.
func (c *cluster) waitFor(ok func(mgmt.Status) bool, within time.Duration, what string) mgmt.Status {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var last mgmt.Status
	for time.Now().Before(deadline) {
		for i := c.lab.Nodes(); i >= 1; i-- {
			st, err := c.status(i)
			if err != nil || len(st.Members) == 0 || !slices.Contains(st.Members, st.Node) {
				continue
			}
			last = st
			if ok(st) {
				return st
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("waited %v for %s; last status from %s: members %v, VIPs %+v", within, what, last.Node, last.Members, last.VIPs)
	return last
}

// garpFrom reports whether the observer saw a gratuitous ARP for vip from
// node's MAC after since.
func garpFrom(obs *workload.ARPObserver, vip netip.Addr, macs map[string]string, node string, since time.Time) bool {
	for _, e := range obs.Events() {
		if e.Gratuitous && e.IP == vip && macs[e.MAC.String()] == node && e.Time.After(since) {
			return true
		}
	}
	return false
}

// TestStopWithoutRing: SIGTERM stops a node that has nobody to hand its
// VIPs to, still starting (it has heard nobody yet) or alone, without
// waiting out the graceful-leave timeout.
func TestStopWithoutRing(t *testing.T) {
	for _, tc := range []struct {
		name string
		join time.Duration // ring.join_timeout: long keeps n1 starting
		mode string
	}{
		{"starting", time.Minute, "starting"},
		{"alone", 0, "member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, func(i int, cfg *config.Config) {
				if tc.join > 0 {
					cfg.Ring.JoinTimeout = tc.join
				}
			})
			c.start(1) // n2 and n3 never run
			deadline := time.Now().Add(10 * time.Second)
			var st mgmt.Status
			var err error
			for st, err = c.status(1); (err != nil || st.Mode != tc.mode) && time.Now().Before(deadline); st, err = c.status(1) {
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil || st.Mode != tc.mode {
				t.Fatalf("n1 did not reach mode %s: %+v, %v", tc.mode, st, err)
			}
			start := time.Now()
			if err := c.lab.StopNode(1, syscall.SIGTERM, 10*time.Second); err != nil {
				t.Fatalf("n1 did not stop on SIGTERM: %v", err)
			}
			t.Logf("n1 (%s) exited %v after SIGTERM", tc.mode, time.Since(start).Round(time.Millisecond))
			b, err := os.ReadFile(c.lab.LogPath(c.lab.Node(1), "ringway"))
			if err != nil {
				t.Fatal(err)
			}
			log := string(b)
			if strings.Contains(log, "graceful leave did not finish") || !strings.Contains(log, "left the ring") || !strings.Contains(log, "msg=stopped") {
				t.Errorf("n1's log should show a leave that finished and a clean stop:\n%s", log)
			}
		})
	}
}

// watchARP records the ARP traffic the client sees (probing as cfg says)
// until the test ends.
func (c *cluster) watchARP(cfg workload.ARPConfig) *workload.ARPObserver {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	obs, err := workload.StartARP(ctx, c.lab, c.lab.Client(), cfg)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		obs.Close()
		cancel()
	})
	return obs
}
