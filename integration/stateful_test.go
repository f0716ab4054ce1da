//go:build linux

package integration

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
	"github.com/ringway/ringway/mgmt"
)

// statefulConns is how many long-lived connections TestStatefulFailover
// runs (RINGWAY_STATEFUL_CONNS overrides; make bench-stateful runs 1,000).
func statefulConns() int {
	if n, err := strconv.Atoi(os.Getenv("RINGWAY_STATEFUL_CONNS")); err == nil && n > 0 {
		return n
	}
	return 60
}

// TestStatefulFailover (issue 12): three nodes, the filter on with
// default drop (only the client's TCP to the server's port 80 may start
// a flow), long-lived TCP echo connections from the client to the server
// (a small message every 20 ms each). The node that handles them all
// (n1, the client's gateway) is killed with -9, cut off its switch or
// stopped; or the authoritative node of a third of them (n3, which owns
// neither gateway) is killed. Every connection survives, no reset is
// seen at either end, the adopting nodes count their adoptions, and the
// filter still refuses a connection the server opens to the client.
func TestStatefulFailover(t *testing.T) {
	n := statefulConns()
	for _, tc := range []struct {
		name   string
		split  bool // the server's gateway on n2 (else on n1 with the client's)
		victim int
		fault  string
	}{
		{"split/kill-handler", true, 1, "kill"},
		{"split/cut-handler", true, 1, "cut"},
		{"split/stop-handler", true, 1, "stop"},
		{"same/kill-handler", false, 1, "kill"},
		{"split/kill-authoritative", true, 3, "kill"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runStatefulFault(t, n, tc.split, tc.victim, tc.fault)
			s := res.summary
			t.Logf("%s: %d connections, %d alive, %d reset (server saw %d), %d failed; stall p50 %v p99 %v max %v; adoptions %d",
				tc.name, s.N, s.Alive, s.Resets, res.serverResets, s.Failed, s.Quantile(0.5), s.Quantile(0.99), s.Quantile(1), res.adoptions)
			if s.Alive != n || s.Resets != 0 || res.serverResets != 0 || s.Corrupt != 0 {
				t.Errorf("%d of %d connections survived, %d reset at the client, %d at the server, %d corrupted: want all alive, no reset",
					s.Alive, n, s.Resets, res.serverResets, s.Corrupt)
			}
			if tc.victim == 1 && res.adoptions == 0 {
				t.Errorf("no adoption counted by the survivors after the handler's loss")
			}
			if !res.blocked {
				t.Errorf("a connection from the server to the client was let through after the fault")
			}
		})
	}
}

// statefulResult is what one fault did to the connections.
type statefulResult struct {
	summary      workload.ConnsSummary
	serverResets uint64
	adoptions    uint64
	blocked      bool // a connection the server opens to the client timed out
}

// runStatefulFault builds a 3-node cluster (filter on, client's gateway
// on n1, the server's on n2 when split, else on n1), opens n long-lived
// connections, applies fault ("kill", "cut", "stop") to node victim,
// and reports what the connections saw.
func runStatefulFault(t *testing.T, n int, split bool, victim int, fault string) statefulResult {
	t.Helper()
	intOwner := "n1"
	if split {
		intOwner = "n2"
	}
	c := newCluster(t, 3, func(i int, c *config.Config) {
		c.VIPs = []config.VIPPolicy{
			{VIP: lab.ExtGateway, Preferred: "n1", Persistence: config.PersistPreferred},
			{VIP: lab.IntGateway, Preferred: intOwner, Persistence: config.PersistPreferred},
		}
		filterToServer(c, 7000)
	})
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 15*time.Second)
	c.waitFor(func(st mgmt.Status) bool {
		return owner(st, lab.ExtGateway.String()) == "n1" && owner(st, lab.IntGateway.String()) == intOwner
	}, 10*time.Second, "the gateways on their preferred nodes")
	l := c.lab
	conns, srv := startEchoConns(t, c, n, "before the fault")
	conns.ResetStalls()

	switch fault {
	case "kill":
		if _, err := l.Signal(l.Node(victim), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	case "cut":
		if err := l.Cut(victim); err != nil {
			t.Fatal(err)
		}
	case "stop":
		if _, err := l.Signal(l.Node(victim), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Signal(l.Node(victim), syscall.SIGCONT) })
	}
	var rest []int
	for i := 1; i <= 3; i++ {
		if i != victim {
			rest = append(rest, i)
		}
	}
	c.waitConverged(rest, 10*time.Second)
	time.Sleep(3 * time.Second) // TCP retransmits (200 ms, 400 ms, ...) find the new path
	res := statefulResult{summary: workload.Summarize(conns.Snapshot(), time.Second), serverResets: srv.Resets()}
	for _, i := range rest {
		st, err := c.status(i)
		if err != nil {
			t.Fatal(err)
		}
		if tu := st.Filter.Tunnel; tu != nil && tu.Replication != nil {
			res.adoptions += tu.Replication.Adoptions
			t.Logf("n%d replication %+v", i, *tu.Replication)
		}
	}
	err := tcpRoundTrip(l, l.Server(), netip.AddrPortFrom(lab.ClientAddr, 9000).String())
	res.blocked = isTimeout(err)
	return res
}

// startEchoConns starts n long-lived TCP echo connections from the client
// to the server's port 80 through the cluster (and the client's listener
// on :9000 that the filter must keep blocked), and fails the test unless
// all n are alive a second later ("when": for the message). It returns
// the connections and the server.
func startEchoConns(t *testing.T, c *cluster, n int, when string) (*workload.Conns, *workload.TCPEchoServer) {
	t.Helper()
	l := c.lab
	srv, err := workload.ListenTCPEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go echoTCP(listenTCP(t, l, l.Client(), ":9000"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	conns, err := workload.StartConns(ctx, l, l.Client(), workload.ConnsConfig{Server: netip.AddrPortFrom(lab.ServerAddr, 80), N: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conns.Stop() })
	time.Sleep(time.Second) // every connection established and replicated
	if s := workload.Summarize(conns.Snapshot(), time.Second); s.Alive != n {
		t.Fatalf("%s: %d of %d connections alive", when, s.Alive, n)
	}
	return conns, srv
}
