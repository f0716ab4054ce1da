//go:build linux

package integration

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

// ringID is the ring n1 is in (0 when it does not answer).
func (c *cluster) ringID() uint64 {
	st, err := c.status(1)
	if err != nil {
		return 0
	}
	return st.RingID
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
// member.
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
	ring0 := c.ringID()
	before := tr.stream.Snapshot()
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
	sent, lost := rep.Sent-before.Sent, int64(rep.Sent-rep.Received)-int64(before.Sent-before.Received)
	var gaps []time.Duration
	longest := time.Duration(0)
	for _, g := range rep.Gaps {
		if g.To.After(start) {
			gaps = append(gaps, g.Len)
			longest = max(longest, g.Len)
		}
	}
	t.Logf("stream over the reload: sent %d, lost %d (± the few in flight), gaps ≥ 20 ms: %v (sender's longest pause %v)", sent, lost, gaps, rep.LongestSendGap)
	if ring1 := c.ringID(); ring1 != ring0 {
		// Not the reload's doing: the ring re-formed (a false drop on a
		// loaded machine; the log says why), and a fail-over loses packets.
		t.Logf("the ring re-formed during the reload (ring %x -> %x): loss not checked", ring0, ring1)
	} else if lost > 3 || longest > 100*time.Millisecond {
		// A reply late by a few tens of ms is this loaded 2-core box
		// scheduling the client; a loss or a long stall would be ours.
		t.Errorf("the stream lost %d of %d across the reload, gaps %v", lost, sent, gaps)
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
	ring0 = c.ringID()
	t.Logf("SIGHUP n3 at %s", time.Now().Format("15:04:05.000"))
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
		time.Sleep(25 * time.Millisecond)
	}
	switch ring1 := c.ringID(); {
	case ring1 != ring0 && owners[len(owners)-1] == "n2":
		t.Logf("the ring re-formed during the move (ring %x -> %x): owners %v", ring0, ring1, owners)
	case !slices.Equal(owners, []string{"n1", "n2"}):
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

	for _, i := range all {
		for _, l := range strings.Split(c.log(i), "\n") {
			if strings.Contains(l, "msg=membership change=") && !strings.Contains(l, "change=formed") {
				t.Logf("n%d: %s", i, l) // on this shared 2-core box, load drops nodes now and then
			}
		}
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
	n1SeesN3 := false
	for time.Now().Before(deadline) {
		sts, unreachable := c.statuses(all)
		if unreachable != "" {
			time.Sleep(20 * time.Millisecond) // a slow API on a loaded box: sample again
			continue
		}
		if problem := halfChange(sts, 1); problem != "" {
			t.Fatalf("during the delayed reload: %s", problem)
		}
		if len(sts) == 3 && sts[2].Config != nil && sts[2].Config.Epoch == 1 {
			if applied.IsZero() {
				applied = time.Now()
			}
			differs = sts[2].Config.Differs
			// n1's status shows n3's file hash, off the token.
			if h := sts[0].Config.Files["n3"]; h != "" && h != sts[0].Config.Hash && h == sts[2].Config.FileHash {
				n1SeesN3 = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if applied.IsZero() {
		t.Fatal("n3 never ran epoch 1")
	}
	if !slices.Contains(differs, "subnets[0].vips") {
		t.Errorf("n3's status while its file lacks .95: differs %v", differs)
	}
	if !n1SeesN3 {
		t.Error("n1's status never showed n3's differing file hash")
	}
	if out, err := c.ringway(1, "status", "-c", c.lab.ConfigPath(1)); err != nil || !strings.Contains(out, "config:  epoch 1") || !strings.Contains(out, "n1 = n2 =") {
		t.Errorf("ringway status: %v\n%s", err, out)
	} else {
		t.Logf("%s", out[strings.Index(out, "config:"):][:strings.Index(out[strings.Index(out, "config:"):], "\n")])
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

// TestReloadAppendNode: a fourth node is appended to the node map of a
// running three-node cluster by a reload (SIGHUP on every node); started,
// it joins, and the stream through the gateway loses nothing meanwhile.
func TestReloadAppendNode(t *testing.T) {
	three := func(f *config.Config) { f.Nodes = f.Nodes[:3] }
	c := newCluster(t, 4, func(i int, f *config.Config) {
		if i <= 3 {
			three(f)
		}
	})
	for i := 1; i <= 3; i++ {
		c.start(i)
	}
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	tr := startTraffic(t, c)
	for i := 1; i <= 3; i++ {
		c.writeConfig(i, nil) // the lab's four-node map
	}
	c.hup(1, 2, 3)
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Nodes) == 4 && st.Config != nil && st.Config.Epoch == 1
	}, 3*time.Second, "the node map has n4")
	start := time.Now()
	c.start(4)
	st := c.waitConverged([]int{1, 2, 3, 4}, 10*time.Second)
	t.Logf("n4 joined %v after it started; members %v", time.Since(start).Round(time.Millisecond), st.Members)
	if st.Config == nil || st.Config.Epoch != 1 || st.Config.Files["n4"] == "" {
		// n4 reports its file hash at its first second as a member.
		time.Sleep(1500 * time.Millisecond)
		st, _ = c.status(1)
		if st.Config == nil || st.Config.Files["n4"] != st.Config.Hash {
			t.Errorf("config status with n4: %+v", st.Config)
		}
	}
	rep := tr.stream.Stop()
	t.Logf("stream: sent %d received %d, longest gap %v", rep.Sent, rep.Received, rep.LongestGap)
	if rep.LongestGap > failoverBudget {
		t.Errorf("the stream stalled %v while n4 was added", rep.LongestGap)
	}
}

// TestReloadFilterRules: with the stateful filter on, a reload that takes
// UDP port 7000 out of the rules keeps the open flow to it going and
// refuses a new one; port 7001, still allowed, works.
func TestReloadFilterRules(t *testing.T) {
	c := newCluster(t, 3, func(i int, f *config.Config) { filterToServer(f, 7001) })
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	l := c.lab
	go echoUDP(listenUDP(t, l, l.Server(), ":7000"))
	go echoUDP(listenUDP(t, l, l.Server(), ":7001"))
	server := lab.ServerAddr.String()
	open := "203.0.113.10:40000" // the flow that stays open
	if err := udpRoundTrip(l, l.Client(), open, server+":7000"); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	for i := 1; i <= 3; i++ {
		c.writeConfig(i, func(f *config.Config) {
			filterToServer(f, 7001)
			f.Filter.Rules[0].Ports = []config.PortRange{{First: 7001, Last: 7001}}
		})
	}
	c.hup(1, 2, 3)
	c.waitFor(func(st mgmt.Status) bool { return st.Config != nil && st.Config.Epoch == 1 }, 3*time.Second, "epoch 1")
	time.Sleep(200 * time.Millisecond) // every node has committed it
	if err := udpRoundTrip(l, l.Client(), open, server+":7000"); err != nil {
		t.Errorf("the open flow after the reload: %v", err)
	}
	if err := udpRoundTrip(l, l.Client(), "203.0.113.10:40001", server+":7000"); !isTimeout(err) {
		t.Errorf("a new flow to 7000 after the reload: %v, want it refused (a timeout)", err)
	}
	if err := udpRoundTrip(l, l.Client(), "203.0.113.10:40002", server+":7001"); err != nil {
		t.Errorf("a new flow to 7001: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(c.log(i), `msg="filter rules applied"`) {
			t.Errorf("n%d does not log the new rules", i)
		}
	}
}

// TestReloadMonitor: a reload gives every node's application check (run
// as nobody) a new command, which each runs from its next check on: the
// new check fails, and every node says so on the token.
func TestReloadMonitor(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	app := func(file string) func(*config.Config) {
		return func(f *config.Config) {
			f.Monitors.Application = config.ApplicationMonitor{Enabled: true, Interval: 100 * time.Millisecond,
				Command: "test ! -e " + filepath.Join(dir, file), User: "nobody"}
		}
	}
	c := newCluster(t, 3, func(i int, f *config.Config) { app("old")(f) })
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if st, err := c.status(1); err != nil || len(st.Unhealthy) != 0 {
		t.Fatalf("before the reload: unhealthy %v, %v", st.Unhealthy, err)
	}
	for i := 1; i <= 3; i++ {
		c.writeConfig(i, app("new"))
	}
	c.hup(1, 2, 3)
	st := c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 3 && st.Config != nil && st.Config.Epoch == 1
	}, 5*time.Second, "every node runs the new check, which fails")
	t.Logf("unhealthy after the reload: %v", st.Unhealthy)
}

// TestReloadDropFlows: with the stateful filter on, the client reaches
// the server through gateway VIP .95 (a host route). A reload that
// removes .95 leaves the open TCP connection going (the client still
// holds the old owner's MAC); .95 added back and removed again by
// `ringway reload --drop-flows` cuts the connection opened through it:
// every node drops the client's flows (it used .95 as gateway).
func TestReloadDropFlows(t *testing.T) {
	filter := func(f *config.Config) { filterToServer(f, 7001) }
	both := func(f *config.Config) { filter(f); with95(f) }
	c := newCluster(t, 3, func(i int, f *config.Config) { both(f) })
	c.startAll()
	all := []int{1, 2, 3}
	c.waitConverged(all, 10*time.Second)
	l := c.lab
	go echoTCP(listenTCP(t, l, l.Server(), ":80"))
	h, err := l.Netlink(l.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(lab.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: lab.ServerAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gw: ext95.AsSlice()}
	if err := h.RouteAdd(route); err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(lab.ServerAddr, 80).String()
	dial := func() net.Conn {
		t.Helper()
		var conn net.Conn
		if err := l.Do(l.Client(), func() (err error) {
			conn, err = net.DialTimeout("tcp4", server, 2*time.Second)
			return err
		}); err != nil {
			t.Fatalf("connect to the server through .95: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	echo := func(conn net.Conn, wait time.Duration) error {
		conn.SetDeadline(time.Now().Add(wait))
		msg := []byte("through .95\n")
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		b := make([]byte, len(msg))
		_, err := io.ReadFull(conn, b)
		return err
	}
	epoch := func(want uint64) {
		t.Helper()
		c.waitFor(func(st mgmt.Status) bool { return st.Config != nil && st.Config.Epoch == want }, 3*time.Second, fmt.Sprintf("epoch %d", want))
		time.Sleep(200 * time.Millisecond) // every node has committed it
	}

	a := dial()
	if err := echo(a, 2*time.Second); err != nil {
		t.Fatalf("through .95 before any reload: %v", err)
	}
	// Removed without --drop-flows: the connection goes on.
	for _, i := range all {
		c.writeConfig(i, filter)
	}
	if out, err := c.ringway(1, "reload", "-c", l.ConfigPath(1)); err != nil || strings.Contains(out, "dropped") {
		t.Fatalf("ringway reload: %v\n%s", err, out)
	}
	epoch(1)
	if err := echo(a, 2*time.Second); err != nil {
		t.Errorf("the connection through .95 after a reload removed it (without --drop-flows): %v", err)
	}

	// Added back; a new connection; removed with --drop-flows: cut.
	for _, i := range all {
		c.writeConfig(i, both)
	}
	c.hup(all...)
	epoch(2)
	if err := pingFrom(l, l.Client(), ext95, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	b := dial()
	if err := echo(b, 2*time.Second); err != nil {
		t.Fatalf("through .95 added back: %v", err)
	}
	for _, i := range all {
		c.writeConfig(i, filter)
	}
	out, err := c.ringway(2, "reload", "--drop-flows", "-c", l.ConfigPath(2))
	if err != nil || !strings.Contains(out, "flows through 198.51.100.95, 203.0.113.95 dropped on every node") {
		t.Fatalf("ringway reload --drop-flows: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	epoch(3)
	if err := echo(b, 1500*time.Millisecond); err == nil {
		t.Error("the connection through .95 still works after a reload removed it with --drop-flows")
	}
	dropped := 0
	for _, i := range all {
		for _, line := range strings.Split(c.log(i), "\n") {
			if strings.Contains(line, "flows through removed VIPs dropped") {
				t.Logf("n%d: %s", i, line[strings.Index(line, "msg="):])
				dropped++
			}
		}
	}
	if dropped != 3 {
		t.Errorf("%d nodes log the drop, want 3", dropped)
	}
}

// TestReloadAppendNodeFilter: with the stateful filter on (symmetric
// routing over the inter-node tunnel), a fourth node appended by a reload
// joins; the running nodes' tunnels learn it, so it takes its share of
// the flow directory: connections through the gateway work, and n4
// receives registers for the flows whose authoritative node it is.
func TestReloadAppendNodeFilter(t *testing.T) {
	c := newCluster(t, 4, func(i int, f *config.Config) {
		filterToServer(f, 7001)
		if i <= 3 {
			f.Nodes = f.Nodes[:3]
		}
	})
	for i := 1; i <= 3; i++ {
		c.start(i)
	}
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	l := c.lab
	go echoTCP(listenTCP(t, l, l.Server(), ":80"))
	server := netip.AddrPortFrom(lab.ServerAddr, 80).String()
	if err := tcpRoundTrip(l, l.Client(), server); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	for i := 1; i <= 3; i++ {
		c.writeConfig(i, func(f *config.Config) { filterToServer(f, 7001) })
	}
	c.hup(1, 2, 3)
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Nodes) == 4 && st.Config != nil && st.Config.Epoch == 1
	}, 3*time.Second, "the node map has n4")
	c.start(4)
	c.waitConverged([]int{1, 2, 3, 4}, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // every node has the new directory
	for k := range 30 {
		if err := tcpRoundTrip(l, l.Client(), server); err != nil {
			t.Errorf("connection %d after n4 joined: %v", k, err)
		}
	}
	st, err := c.status(4)
	if err != nil {
		t.Fatal(err)
	}
	if st.Filter == nil || st.Filter.Tunnel == nil || st.Filter.Tunnel.Registers[1] == 0 {
		t.Errorf("n4 received no register over the tunnel: %+v", st.Filter)
	} else {
		t.Logf("n4's tunnel: registers %v, replication %+v", st.Filter.Tunnel.Registers, st.Filter.Tunnel.Replication)
	}
	for i := 1; i <= 3; i++ {
		if strings.Contains(c.log(i), "config epoch not applied here") {
			t.Errorf("n%d did not apply the epoch", i)
		}
	}
}

// TestReloadLocalService: a VIP added by a reload is on every node's TUN
// device, so a local service can listen on it and the client reaches it
// through the VIP's owner; removed, it is no longer a local address.
func TestReloadLocalService(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{1, 2, 3}
	c.waitConverged(all, 10*time.Second)
	l := c.lab
	svc := netip.AddrPortFrom(ext95, 8081).String()
	listen := func(i int) (net.Listener, error) {
		var ln net.Listener
		err := l.Do(l.Node(i), func() (err error) {
			ln, err = net.Listen("tcp4", svc)
			return err
		})
		return ln, err
	}
	if ln, err := listen(1); err == nil {
		ln.Close()
		t.Fatal("listening on .95 before it is a VIP worked")
	}
	for _, i := range all {
		c.writeConfig(i, with95)
	}
	c.hup(all...)
	c.waitFor(func(st mgmt.Status) bool { return st.Config != nil && st.Config.Epoch == 1 }, 3*time.Second, "epoch 1")
	time.Sleep(200 * time.Millisecond) // every node has committed it
	for _, i := range all {
		ln, err := listen(i)
		if err != nil {
			t.Fatalf("n%d: a local service on the VIP added by the reload: %v", i, err)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "n%d\n", i)
				conn.Close()
			}
		}()
	}
	var got []byte
	if err := l.Do(l.Client(), func() error {
		conn, err := net.DialTimeout("tcp4", svc, 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		got, err = io.ReadAll(conn)
		return err
	}); err != nil {
		t.Fatalf("client → the service on .95: %v", err)
	}
	st, _ := c.status(1)
	t.Logf("the service on .95 answered %q (owner %s)", strings.TrimSpace(string(got)), owner(st, ext95.String()))
	if owner := owner(st, ext95.String()); strings.TrimSpace(string(got)) != owner {
		t.Errorf("answered by %q, want the owner %s", got, owner)
	}

	for _, i := range all {
		c.writeConfig(i, nil)
	}
	c.hup(all...)
	c.waitFor(func(st mgmt.Status) bool { return st.Config != nil && st.Config.Epoch == 2 }, 3*time.Second, "epoch 2")
	time.Sleep(200 * time.Millisecond)
	for _, i := range all {
		addrs, err := l.Addrs(l.Node(i), "ringway0")
		if err != nil {
			t.Fatalf("n%d: %v", i, err)
		}
		if slices.Contains(addrs, netip.PrefixFrom(ext95, 32)) {
			t.Errorf("n%d's TUN device still has .95 after it was removed: %v", i, addrs)
		}
	}
}

// TestReloadPingOnOff: a reload turns the ping monitor on in the running
// daemons (its raw socket opened after they dropped their capabilities)
// and changes the ARP cache; n1, whose route to the target then goes, is
// unhealthy; a reload that turns the monitor off makes it healthy again.
func TestReloadPingOnOff(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{1, 2, 3}
	c.waitConverged(all, 10*time.Second)
	ping := func(f *config.Config) {
		f.Monitors.Ping = config.PingMonitor{Enabled: true, Interval: 100 * time.Millisecond,
			Timeout: 50 * time.Millisecond, Targets: []netip.Addr{lab.ServerAddr}}
		f.Router.ARPCache = config.ARPCache{TTL: 10 * time.Second, Queue: 5}
	}
	for _, i := range all {
		c.writeConfig(i, ping)
	}
	c.hup(all...)
	c.waitFor(func(st mgmt.Status) bool { return st.Config != nil && st.Config.Epoch == 1 }, 3*time.Second, "epoch 1")
	time.Sleep(500 * time.Millisecond) // a few ping rounds
	if st, err := c.status(1); err != nil || len(st.Unhealthy) != 0 {
		t.Fatalf("with the ping monitor on and the server reachable: unhealthy %v, %v", st.Unhealthy, err)
	}
	for _, i := range all {
		l := c.log(i)
		if !strings.Contains(l, `msg="monitors changed by the config epoch" on=[ping]`) || !strings.Contains(l, `msg="router.arp_cache applied" ttl=10s queue=5`) {
			t.Errorf("n%d does not log the ping monitor started and the ARP cache applied", i)
		}
	}
	h, err := c.lab.Netlink(c.lab.Node(1))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	route := &netlink.Route{Dst: &net.IPNet{IP: lab.ServerAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Type: unix.RTN_BLACKHOLE}
	if err := h.RouteAdd(route); err != nil {
		t.Fatal(err)
	}
	defer h.RouteDel(route)
	c.waitFor(func(st mgmt.Status) bool { return slices.Equal(st.Unhealthy, []string{"n1"}) }, 5*time.Second,
		"n1 unhealthy by the ping monitor a reload turned on")
	for _, i := range all {
		c.writeConfig(i, nil)
	}
	c.hup(all...)
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 0 && st.Config != nil && st.Config.Epoch == 2
	}, 5*time.Second, "n1 healthy once a reload turned the ping monitor off")
}
