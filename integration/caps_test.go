//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
)

// TestDroppedCapsAndSIGHUP: a node run as root keeps only CAP_NET_ADMIN and
// CAP_NET_RAW once set up (every other integration test runs such nodes
// too: they forward, answer ARP and fail over with them); SIGHUP leaves it
// running and a member, logging the file check; on SIGTERM it still
// restores its kernel settings.
func TestDroppedCapsAndSIGHUP(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.startAll()
	c.waitConverged([]int{1, 2}, 10*time.Second)
	ns := c.lab.Node(1)
	pids, err := c.lab.Pids(ns)
	if err != nil || len(pids) == 0 {
		t.Fatalf("n1's pids: %v %v", pids, err)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[0]))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pids[0], task.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, _ := strings.Cut(l, ":"); (k == "CapEff" || k == "CapBnd") && strings.TrimSpace(v) != "0000000000003000" {
				t.Errorf("n1 thread %s: %s, want only CAP_NET_ADMIN and CAP_NET_RAW (3000)", task.Name(), l)
			}
		}
	}
	if _, err := c.lab.Signal(ns, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c.waitConverged([]int{1, 2}, 5*time.Second)
	if err := c.lab.StopNode(1, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("n1 did not stop: %v", err)
	}
	b, err := os.ReadFile(c.lab.LogPath(ns, "ringway"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"msg=\"dropped capabilities\"", "msg=\"reload: unchanged\"", "msg=stopped"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("n1's log lacks %q:\n%s", want, b)
		}
	}
	if v, _ := c.lab.Sysctl(ns, "net.ipv4.conf.ext0.arp_ignore"); v != "0" {
		t.Errorf("arp_ignore on n1's ext0 is %q after it stopped, want the original 0", v)
	}
	c.waitConverged([]int{2}, 5*time.Second)
}

// TestOnlyTwoCaps: a node started with nothing but CAP_NET_ADMIN and
// CAP_NET_RAW from its first instruction (setpriv limits the bounding
// set, as the systemd unit's CapabilityBoundingSet does) sets itself up,
// answers ARP for its VIP and forwards the client's stream through it,
// and takes a dead node's VIPs over and announces them. Real-time
// scheduling needs CAP_SYS_NICE: it says so and runs normally.
func TestOnlyTwoCaps(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	// The client's and the server's gateways on n2, so that the stream
	// crosses n1 only once n2 is dead.
	c := newCluster(t, 2, func(i int, cfg *config.Config) {
		cfg.Ring.RealtimePriority = 10 // asked for, and not possible without CAP_SYS_NICE
		for j := range cfg.VIPs {
			if v := cfg.VIPs[j].VIP.String(); v == "203.0.113.91" || v == "198.51.100.91" {
				cfg.VIPs[j].Preferred = "n2"
			}
		}
	})
	wrapper := filepath.Join(t.TempDir(), "ringway-two-caps")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --bounding-set=-all,+net_admin,+net_raw --inh-caps=-all -- %s \"$@\"\n", setpriv, c.bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.lab.StartNode(wrapper, 1, "--log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	c.start(2)
	st := c.waitConverged([]int{1, 2}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n2" {
		t.Fatalf("203.0.113.91 on %q, want n2 (preferred)", got)
	}
	pids, err := c.lab.Pids(c.lab.Node(1))
	if err != nil || len(pids) == 0 {
		t.Fatalf("n1's pids: %v %v", pids, err)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, _ := strings.Cut(l, ":"); (k == "CapBnd" || k == "CapEff" || k == "CapPrm") && strings.TrimSpace(v) != "0000000000003000" {
			t.Errorf("n1: %s, want only CAP_NET_ADMIN and CAP_NET_RAW (3000)", l)
		}
	}
	// The client's stream goes through n2, the owner of both gateways;
	// n2 dies: n1 takes its VIPs over and the stream goes on through n1.
	tr := startTraffic(t, c)
	if _, err := c.lab.Signal(c.lab.Node(2), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = c.waitConverged([]int{1}, 5*time.Second)
	for _, v := range []string{"203.0.113.91", "203.0.113.92", "198.51.100.91", "198.51.100.92"} {
		if got := owner(st, v); got != "n1" {
			t.Errorf("%s on %q after n2 died, want n1", v, got)
		}
	}
	time.Sleep(300 * time.Millisecond)
	rep := tr.stream.Stop()
	t.Logf("stream through the two-capability node: sent %d received %d, longest gap %v", rep.Sent, rep.Received, rep.LongestGap)
	if time.Since(tr.stream.LastReply()) > time.Second || rep.LongestGap > failoverBudget {
		t.Errorf("stream: received %d of %d, longest gap %v (budget %v)", rep.Received, rep.Sent, rep.LongestGap, failoverBudget)
	}
	if n, ok, err := c.metric(1, `ringway_vip_garps_total{vip="203.0.113.91"}`); err != nil || !ok || n < 1 {
		t.Errorf("n1 announced 203.0.113.91 %v times (found %v, err %v), want at least once", n, ok, err)
	}
	log, _ := os.ReadFile(c.lab.LogPath(c.lab.Node(1), wrapper)) // the log is named after the program started
	if !strings.Contains(string(log), "real-time scheduling not available") {
		t.Errorf("n1's log does not say it runs without real-time scheduling:\n%s", log)
	}
}
