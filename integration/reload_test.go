//go:build linux

package integration

import (
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
	"github.com/ringway/ringway/mgmt"
)

var (
	ext95 = netip.MustParseAddr("203.0.113.95")
	int95 = netip.MustParseAddr("198.51.100.95")
)

// writeConfig rewrites node i's config file as the lab wrote it, edited
// by edit (the key and token files stay where they are).
func (c *cluster) writeConfig(i int, edit func(*config.Config)) {
	c.t.Helper()
	f := lab.ClusterConfig(c.lab.Nodes(), i)
	if edit != nil {
		edit(f)
	}
	b, err := f.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.lab.ConfigPath(i), b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// with95 adds VIP .95 on both subnets, grouped.
func with95(f *config.Config) {
	f.Subnets[0].VIPs = append(f.Subnets[0].VIPs, ext95)
	f.Subnets[1].VIPs = append(f.Subnets[1].VIPs, int95)
	f.VIPs = append(f.VIPs, config.VIPPolicy{VIP: ext95, Group: "v95"}, config.VIPPolicy{VIP: int95, Group: "v95"})
}

func (c *cluster) hup(nodes ...int) {
	c.t.Helper()
	for _, i := range nodes {
		if _, err := c.lab.Signal(c.lab.Node(i), syscall.SIGHUP); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *cluster) log(i int) string {
	b, _ := os.ReadFile(c.lab.LogPath(c.lab.Node(i), "ringway"))
	return string(b)
}

// halfChange says what is wrong with a sample of statuses taken during a
// reload, "" if nothing: every node's table has both .95s or neither, and
// a node whose table has them runs epoch want.
func halfChange(sts []mgmt.Status, want uint64) string {
	for _, st := range sts {
		_, e := st.Lookup(ext95)
		_, i := st.Lookup(int95)
		if e != i {
			return fmt.Sprintf("%s's table has .95 on one subnet only", st.Node)
		}
		if e && (st.Config == nil || st.Config.Epoch != want) {
			return fmt.Sprintf("%s's table has .95 but it runs %+v", st.Node, st.Config)
		}
		if !e && st.Config != nil && st.Config.Epoch == want {
			return fmt.Sprintf("%s runs epoch %d without .95 in its table", st.Node, want)
		}
	}
	return ""
}

// TestReload: under a 1 kHz stream through the gateway VIPs, VIP .95 is
// added to every node's file and every node gets SIGHUP: the client
// reaches it within 3 s and the stream loses nothing; removed again
// (`ringway reload` on one node, SIGHUP on the others), nobody answers it;
// the gateway group's preferred node changed by a reload moves it once; a
// broken file is refused (file:line in the log) and its node stays a
// member; a fourth node appended to the map is refused as needing a
// restart of every node.
func TestReload(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{1, 2, 3}
	c.waitConverged(all, 10*time.Second)
	tr := startTraffic(t, c)

	// Add .95.
	for _, i := range all {
		c.writeConfig(i, with95)
	}
	start := time.Now()
	c.hup(all...)
	if err := pingFrom(c.lab, c.lab.Client(), ext95, 3*time.Second); err != nil {
		t.Fatalf("203.0.113.95 after the reload: %v", err)
	}
	t.Logf("203.0.113.95 answered %v after SIGHUP", time.Since(start).Round(time.Millisecond))
	st := c.waitConverged(all, 5*time.Second)
	if st.Config == nil || st.Config.Epoch != 1 || st.Config.FileHash != st.Config.Hash {
		t.Errorf("config status after the reload: %+v", st.Config)
	}
	for _, i := range all {
		if l := c.log(i); !strings.Contains(l, `msg="config epoch applied" epoch=1`) {
			t.Errorf("n%d does not log epoch 1", i)
		}
	}
	time.Sleep(200 * time.Millisecond)
	rep := tr.stream.Snapshot()
	t.Logf("stream over the reload: sent %d received %d, longest gap %v", rep.Sent, rep.Received, rep.LongestGap)
	if rep.Sent-rep.Received > 20 { // at 1 kHz, 20 ms in flight at most
		t.Errorf("the stream lost %d of %d across the reload", rep.Sent-rep.Received, rep.Sent)
	}
	if rep.LongestGap > 100*time.Millisecond {
		t.Errorf("the stream stalled %v across the reload", rep.LongestGap)
	}

	// Remove it again: the CLI on n2, SIGHUP on the others.
	for _, i := range all {
		c.writeConfig(i, nil)
	}
	out, err := c.ringway(2, "reload", "-c", c.lab.ConfigPath(2))
	if err != nil || !strings.Contains(out, "applied: the cluster runs config epoch 2") {
		t.Fatalf("ringway reload: %v\n%s", err, out)
	}
	c.hup(1, 3)
	st = c.waitFor(func(st mgmt.Status) bool {
		_, ok := st.Lookup(ext95)
		return !ok && st.Config != nil && st.Config.Epoch == 2
	}, 3*time.Second, "203.0.113.95 leaves the table")
	if err := pingFrom(c.lab, c.lab.Client(), ext95, time.Second); err == nil {
		t.Error("203.0.113.95 still answers after it was removed")
	}

	// The gateway group prefers n2: it moves once.
	prefer2 := func(f *config.Config) {
		for k := range f.VIPs {
			f.VIPs[k].Preferred = "n2"
		}
	}
	for _, i := range all {
		c.writeConfig(i, prefer2)
	}
	c.hup(3)
	var owners []string
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.status(3)
		if err == nil {
			if o := owner(st, "203.0.113.91"); len(owners) == 0 || owners[len(owners)-1] != o {
				owners = append(owners, o)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(owners, []string{"n1", "n2"}) {
		t.Errorf("owners of 203.0.113.91 over the preference change: %v, want [n1 n2]", owners)
	}
	if err := pingFrom(c.lab, c.lab.Client(), lab.ExtGateway, time.Second); err != nil {
		t.Errorf("gateway after the move: %v", err)
	}

	// A broken file on n3: refused, n3 keeps serving and stays a member.
	if err := os.WriteFile(c.lab.ConfigPath(3), []byte("cluster: {name: lab}\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.hup(3)
	time.Sleep(300 * time.Millisecond)
	if l := c.log(3); !strings.Contains(l, "reload refused") || !strings.Contains(l, c.lab.ConfigPath(3)+":2") {
		t.Errorf("n3 does not log the refusal with file:line")
	}
	st = c.waitConverged(all, 3*time.Second)
	if st.Config.Epoch != 3 {
		t.Errorf("epoch %d after a refused reload, want 3", st.Config.Epoch)
	}

	// A fourth node appended: refused, a restart of every node is needed.
	c.writeConfig(3, func(f *config.Config) {
		prefer2(f)
		f.Nodes = append(f.Nodes, config.NodeEntry{ID: "n4", Addresses: []netip.Addr{lab.NodeExt(4), lab.NodeInt(4)}})
	})
	out, err = c.ringway(3, "reload", "-c", c.lab.ConfigPath(3))
	if err == nil || !strings.Contains(out, "restart every node") {
		t.Errorf("appending a node: %v\n%s", err, out)
	}

	rep = tr.stream.Stop()
	t.Logf("stream over the whole test: sent %d received %d, longest gap %v", rep.Sent, rep.Received, rep.LongestGap)
	if rep.LongestGap > failoverBudget {
		t.Errorf("the stream stalled %v", rep.LongestGap)
	}
}

// TestReloadDelayed: .95 is added to every node's file but n3's, and n1
// and n2 get SIGHUP; n3's file follows 5 s later, then its SIGHUP. Every
// node applies epoch 1 together (n3 from the token, reporting that its
// file differs), no sample shows a half change, and n3's own reload
// changes nothing.
func TestReloadDelayed(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{1, 2, 3}
	c.waitConverged(all, 10*time.Second)
	c.writeConfig(1, with95)
	c.writeConfig(2, with95)
	c.hup(1, 2)
	var differs []string
	deadline := time.Now().Add(5 * time.Second)
	applied := time.Time{}
	for time.Now().Before(deadline) {
		sts, problem := c.statuses(all)
		if problem == "" {
			problem = halfChange(sts, 1)
		}
		if problem != "" && !strings.Contains(problem, "context deadline") {
			t.Fatalf("during the delayed reload: %s", problem)
		}
		if len(sts) == 3 && sts[2].Config != nil && sts[2].Config.Epoch == 1 {
			if applied.IsZero() {
				applied = time.Now()
			}
			differs = sts[2].Config.Differs
		}
		time.Sleep(20 * time.Millisecond)
	}
	if applied.IsZero() {
		t.Fatal("n3 never ran epoch 1")
	}
	if !slices.Contains(differs, "subnets[0].vips") {
		t.Errorf("n3's status while its file lacks .95: differs %v", differs)
	}
	c.writeConfig(3, with95)
	c.hup(3)
	c.waitFor(func(st mgmt.Status) bool {
		return st.Config != nil && len(st.Config.Differs) == 0 && st.Config.FileHash == st.Config.Hash
	}, 3*time.Second, "n3's file agrees with the cluster once updated")
	time.Sleep(300 * time.Millisecond)
	for _, i := range all {
		st, err := c.status(i)
		if err != nil || st.Config.Epoch != 1 {
			t.Errorf("n%d: epoch %+v, %v; want 1 (n3's reload of the same file changes nothing)", i, st.Config, err)
		}
	}
	if l := c.log(3); !strings.Contains(l, `msg="reload: unchanged"`) {
		t.Errorf("n3's reload of the cluster's file is not a no-op")
	}
	if err := pingFrom(c.lab, c.lab.Client(), ext95, 3*time.Second); err != nil {
		t.Error(err)
	}
}
