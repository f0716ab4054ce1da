//go:build linux

package integration

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

// TestStatefulJoin (issue 12: "a node joins while the connections run:
// none breaks, the joiner becomes authoritative only after its fill").
// Three nodes configured, the filter on with default drop, the client's
// gateway on n1 (the handler of every connection) and the server's on
// n2; n1 and n2 run 60 long-lived TCP echo connections, then n3 starts
// (a join), then n3 is killed with -9 and started again (a restart).
// Each time: no connection breaks or is reset; n3's fill ends without
// its timeout, with replicas copied; and the directory of n1 and n2
// makes n3 authoritative for rows only after n3's fill ended, by the
// time stamps the statuses report (n3's filled_at, n1's and n2's
// auth_since for n3), while every status poll of n1 and n2 that shows n3
// authoritative for rows also shows it filled.
func TestStatefulJoin(t *testing.T) {
	n := statefulConns()
	c := newCluster(t, 3, func(i int, c *config.Config) {
		c.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: "n2", Persistence: config.PersistPreferred},
		}
		filterToServer(c, 7000)
	})
	c.start(1)
	c.start(2)
	c.waitConverged([]int{1, 2}, 15*time.Second)
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == "n2" && allFilled(st, 2)
	}, 15*time.Second, "the gateways on their preferred nodes, n1 and n2 filled")
	l := c.lab
	conns, srv := startEchoConns(t, c, n, "before the join")

	for _, step := range []string{"join", "restart"} {
		conns.ResetStalls()
		if step == "restart" {
			if err := l.StopNode(3, syscall.SIGKILL, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			c.waitConverged([]int{1, 2}, 15*time.Second)
		}
		c.start(3)
		watch := watchJoiner(t, c, 15*time.Second)
		time.Sleep(2 * time.Second) // TCP retransmits find the new path, if any was lost
		s := workload.Summarize(conns.Snapshot(), time.Second)
		t.Logf("%s: n3 filled at %s in %.3f s (%d replicas, %d in bulk); n1 made it authoritative at %s, n2 at %s; "+
			"%d polls saw n3 a member and not yet authoritative; %d connections, %d alive, %d reset (server saw %d); stall p50 %v max %v",
			step, watch.filledAt.Format(time.RFC3339Nano), watch.took, watch.replicas, watch.bulk,
			watch.authSince[1].Format(time.RFC3339Nano), watch.authSince[2].Format(time.RFC3339Nano),
			watch.waitingPolls, s.N, s.Alive, s.Resets, srv.Resets(), s.Quantile(0.5), s.Quantile(1))
		if s.Alive != n || s.Resets != 0 || srv.Resets() != 0 || s.Corrupt != 0 {
			t.Errorf("%s: %d of %d connections alive, %d reset at the client, %d at the server, %d corrupted: want all alive, no reset",
				step, s.Alive, n, s.Resets, srv.Resets(), s.Corrupt)
		}
		if watch.timedOut {
			t.Errorf("%s: n3's fill ended at its timeout", step)
		}
		if watch.replicas == 0 {
			t.Errorf("%s: n3 holds no replica after its fill", step)
		}
		for _, i := range []int{1, 2} {
			if watch.authSince[i].Before(watch.filledAt) {
				t.Errorf("%s: n%d made n3 authoritative at %s, before n3's fill ended at %s",
					step, i, watch.authSince[i].Format(time.RFC3339Nano), watch.filledAt.Format(time.RFC3339Nano))
			}
		}
		for _, p := range watch.bad {
			t.Errorf("%s: %s", step, p)
		}
	}
	if !t.Failed() {
		err := tcpRoundTrip(l, l.Server(), netip.AddrPortFrom(lab.ClientAddr, 9000).String())
		if !isTimeout(err) {
			t.Errorf("a connection from the server to the client after the joins: %v, want refused (timeout)", err)
		}
	}
}

// joinWatch is what the statuses said while n3 joined.
type joinWatch struct {
	filledAt     time.Time // n3's fill ended (its status)
	took         float64
	timedOut     bool
	replicas     int
	bulk         uint64
	authSince    map[int]time.Time // when n1, n2 made n3 authoritative (their status)
	waitingPolls int               // polls where n1 or n2 showed n3 a member, not authoritative
	bad          []string          // polls where n3 was authoritative but not filled
}

// watchJoiner polls n1, n2 and n3 until n1 and n2 both show n3 filled and
// authoritative for rows and n3 shows its fill done, then returns what
// they reported.
func watchJoiner(t *testing.T, c *cluster, within time.Duration) joinWatch {
	t.Helper()
	w := joinWatch{authSince: map[int]time.Time{}}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		done := 0
		for _, i := range []int{1, 2} {
			st, err := c.status(i)
			if err != nil {
				continue
			}
			f := fillOf(st)
			if f == nil {
				continue
			}
			m, ok := f.Nodes["n3"]
			switch {
			case !ok:
			case m.AuthRows > 0 && !m.Filled:
				w.bad = append(w.bad, fmt.Sprintf("n%d shows n3 authoritative for %d rows but not filled", i, m.AuthRows))
			case m.AuthRows == 0:
				w.waitingPolls++
			case m.AuthSince != "":
				if at, err := time.Parse(time.RFC3339Nano, m.AuthSince); err == nil {
					w.authSince[i] = at
					done++
				}
			}
		}
		st, err := c.status(3)
		if f := fillOf(st); err == nil && f != nil && f.State == "filled" && f.Fills > 0 && done == 2 {
			w.filledAt, _ = time.Parse(time.RFC3339Nano, f.FilledAt)
			w.took, w.timedOut = f.Took, f.TimedOut
			r := st.Filter.Tunnel.Replication
			w.replicas, w.bulk = r.Replicas, r.Bulk[1]
			return w
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("n3 did not join filled and authoritative within %v (%+v)", within, w)
	return w
}

// fillOf returns a status's fill section, nil without one.
func fillOf(st mgmt.Status) *mgmt.FillStatus {
	if st.Filter == nil || st.Filter.Tunnel == nil || st.Filter.Tunnel.Replication == nil {
		return nil
	}
	return st.Filter.Tunnel.Replication.Fill
}

// allFilled reports whether st shows k members, all filled.
func allFilled(st mgmt.Status, k int) bool {
	f := fillOf(st)
	if f == nil || len(f.Nodes) != k {
		return false
	}
	for _, m := range f.Nodes {
		if !m.Filled {
			return false
		}
	}
	return true
}
