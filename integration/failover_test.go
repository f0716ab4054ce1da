//go:build linux

package integration

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
)

// Fail-over budget for these tests: far above the ring's detection time,
// generous for a loaded 2-core CI machine. bench-failover measures the real
// figure.
const failoverBudget = 2 * time.Second

// traffic is the measurement workload: an echo server behind the cluster and
// a 1 kHz stream from the client through the gateway VIPs.
type traffic struct {
	echo   *workload.EchoServer
	stream *workload.Stream
}

func startTraffic(t *testing.T, c *cluster) *traffic {
	t.Helper()
	server := netip.AddrPortFrom(lab.ServerAddr, workload.EchoPort)
	echo, err := workload.ListenEcho(c.lab, c.lab.Server(), server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := workload.StartStream(ctx, c.lab, c.lab.Client(), workload.DefaultStreamConfig(server))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := s.WaitFlowing(wctx, 200*time.Millisecond); err != nil {
		t.Fatalf("no traffic through the cluster: %v", err)
	}
	return &traffic{echo: echo, stream: s}
}

func TestFailoverCut(t *testing.T) {
	for _, mode := range []struct {
		name  string
		crash func(c *cluster)
	}{
		{"cut", func(c *cluster) {
			if err := c.lab.Cut(1); err != nil {
				t.Fatal(err)
			}
		}},
		{"kill", func(c *cluster) {
			if _, err := c.lab.Signal(c.lab.Node(1), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}},
		{"stop", func(c *cluster) {
			if _, err := c.lab.Signal(c.lab.Node(1), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.lab.Signal(c.lab.Node(1), syscall.SIGCONT) })
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			c := newCluster(t, 3, nil)
			c.startAll()
			st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
			if got := owner(st, "203.0.113.91"); got != "n1" {
				t.Fatalf("203.0.113.91 should start on n1 (preferred), is on %q", got)
			}
			tr := startTraffic(t, c)
			time.Sleep(300 * time.Millisecond)
			mode.crash(c)
			st = c.waitConverged([]int{2, 3}, 5*time.Second)
			time.Sleep(500 * time.Millisecond)
			rep := tr.stream.Stop()
			t.Logf("%s: VIP 203.0.113.91 now on %s; stream sent %d received %d, longest gap %v", mode.name, owner(st, "203.0.113.91"), rep.Sent, rep.Received, rep.LongestGap)
			if rep.LongestGap > failoverBudget {
				t.Errorf("longest gap %v, want under %v", rep.LongestGap, failoverBudget)
			}
			if time.Since(tr.stream.LastReply()) > time.Second {
				t.Errorf("the stream did not resume: last reply %v ago", time.Since(tr.stream.LastReply()))
			}
			// The new owner timed its take-over: from the dropper's last
			// ack of n1 to its own first gratuitous ARP for .91.
			newOwner := map[string]int{"n2": 2, "n3": 3}[owner(st, "203.0.113.91")]
			if newOwner == 0 {
				t.Fatalf("203.0.113.91 is on %q, not n2 or n3", owner(st, "203.0.113.91"))
			}
			count, ok, err := c.metric(newOwner, "ringway_failover_detect_to_garp_seconds_count")
			if err != nil || !ok || count < 1 {
				t.Fatalf("n%d's detection-to-GARP histogram: count %v (found %v, err %v), want at least 1", newOwner, count, ok, err)
			}
			sum, _, _ := c.metric(newOwner, "ringway_failover_detect_to_garp_seconds_sum")
			took := time.Duration(sum / count * float64(time.Second))
			t.Logf("%s: detection to GARP on n%d: %v (mean of %v)", mode.name, newOwner, took, count)
			if took <= 0 || took > failoverBudget {
				t.Errorf("detection to GARP %v, want within (0, %v]", took, failoverBudget)
			}
		})
	}
}
