//go:build linux

package integration

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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
