//go:build linux

package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringway/ringway/mgmt"
)

// TestAutoOffAndDrain: with AUTO switched off (`ringway switch auto off`
// at one node, for the whole cluster), a node that comes back after a cut
// is closed and takes no VIP until an operator opens it; `ringway node
// drain` closes a node and returns once it answers no VIP.
func TestAutoOffAndDrain(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	owns := func(st mgmt.Status, node string) int {
		k := 0
		for _, v := range st.VIPs {
			if v.Owner == node {
				k++
			}
		}
		return k
	}
	if out, err := c.ringway(2, "switch", "-c", c.lab.ConfigPath(2), "auto", "off"); err != nil {
		t.Fatalf("ringway switch auto off: %v\n%s", err, out)
	}
	c.waitFor(func(st mgmt.Status) bool { return !st.Auto }, 5*time.Second, "AUTO off on every node's status")
	if out, err := c.ringway(3, "status", "-c", c.lab.ConfigPath(3)); err != nil || !strings.Contains(out, "AUTO off") {
		t.Errorf("ringway status does not show AUTO off: %v\n%s", err, out)
	}

	// n1 (the gateway pair's preferred node) is cut and comes back: it
	// rejoins closed and owns nothing, instead of taking the pair back.
	if err := c.lab.Cut(1); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool { return !slices.Contains(st.Members, "n1") && owns(st, "n1") == 0 }, 5*time.Second, "n1 dropped")
	if err := c.lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return slices.Contains(st.Members, "n1") && slices.Contains(st.Closed, "n1") && owns(st, "n1") == 0
	}, 10*time.Second, "n1 back in the ring, closed (AUTO off), owning nothing")
	time.Sleep(500 * time.Millisecond) // rotations: nothing goes to n1
	if st, err := c.status(2); err != nil || owns(st, "n1") != 0 {
		t.Fatalf("n1 owns %d VIPs while closed by AUTO off (%v)", owns(st, "n1"), err)
	}
	if out, err := c.ringway(2, "node", "open", "-c", c.lab.ConfigPath(2), "n1"); err != nil {
		t.Fatalf("ringway node open n1: %v\n%s", err, out)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Closed) == 0 && owner(st, "203.0.113.91") == "n1"
	}, 5*time.Second, "the gateway pair back on n1 once opened")

	// Drain n2: the command returns once it answers nothing.
	start := time.Now()
	out, err := c.ringway(3, "node", "drain", "-c", c.lab.ConfigPath(3), "n2")
	if err != nil || !strings.Contains(out, "drained: n2") {
		t.Fatalf("ringway node drain n2: %v\n%s", err, out)
	}
	t.Logf("drain took %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if st, err := c.status(1); err != nil || owns(st, "n2") != 0 || !slices.Contains(st.Closed, "n2") {
		t.Errorf("after drain: n2 owns %d, closed %v (%v)", owns(st, "n2"), st.Closed, err)
	}
}
