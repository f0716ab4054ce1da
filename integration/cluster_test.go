//go:build linux

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/mgmt"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain removes the ringway binary the tests built (18 MB a run).
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ringwayBin builds the ringway binary once per test run.
func ringwayBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringway-bin-")
		if err != nil {
			binErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "ringway")
		// Without cgo, as `make build`: only then can the node drop its
		// capabilities on every thread (internal/caps).
		build := exec.Command("go", "build", "-o", binPath, "../cmd/ringway")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cluster is the reference lab with n ringway nodes running as processes.
type cluster struct {
	t   *testing.T
	lab *lab.Lab
	bin string
}

// newCluster builds the lab and writes the node configs; it starts nothing.
func newCluster(t *testing.T, n int, edit func(i int, c *config.Config)) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cluster tests build network namespaces and run ringway nodes with raw sockets: run as root (CI does)")
	}
	bin := ringwayBin(t)
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Build(ctx, lab.Spec{Prefix: "rwc" + hex.EncodeToString(b), Nodes: n, StateDir: t.TempDir(), WireChecksums: true})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	c := &cluster{t: t, lab: l, bin: bin}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		l.Close()
	})
	if _, err := l.WriteCluster(edit); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	if err := c.lab.StartNode(c.bin, i, "--log-level", "debug"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) startAll() {
	for i := 1; i <= c.lab.Nodes(); i++ {
		c.start(i)
	}
}

func (c *cluster) dumpLogs() {
	for i := 1; i <= c.lab.Nodes(); i++ {
		b, err := os.ReadFile(c.lab.LogPath(c.lab.Node(i), "ringway"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("--- n%d log (last %d lines)\n%s", i, len(lines), strings.Join(lines, "\n"))
	}
}

func (c *cluster) status(i int) (mgmt.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.lab.NodeStatus(ctx, i)
}

// waitConverged waits until every node in nodes reports the same ring with
// exactly those members, and a VIP table in which every open VIP has an
// owner among them. It returns the last status of the first node.
func (c *cluster) waitConverged(nodes []int, within time.Duration) mgmt.Status {
	c.t.Helper()
	want := make([]string, len(nodes))
	for k, i := range nodes {
		want[k] = fmt.Sprintf("n%d", i)
	}
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		sts, problem := c.statuses(nodes)
		if problem == "" {
			problem = checkAgreement(sts, want)
		}
		if problem == "" {
			return sts[0]
		}
		last = problem
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("cluster did not converge on members %v within %v: %s", want, within, last)
	return mgmt.Status{}
}

func (c *cluster) statuses(nodes []int) ([]mgmt.Status, string) {
	var sts []mgmt.Status
	for _, i := range nodes {
		st, err := c.status(i)
		if err != nil {
			return nil, fmt.Sprintf("n%d: %v", i, err)
		}
		sts = append(sts, st)
	}
	return sts, ""
}

// checkAgreement says what is wrong with a set of statuses, "" if nothing:
// all in one ring with members want, and one live owner for every open VIP.
func checkAgreement(sts []mgmt.Status, want []string) string {
	for _, st := range sts {
		if !slices.Equal(st.Members, want) {
			return fmt.Sprintf("%s sees members %v", st.Node, st.Members)
		}
		if st.RingID != sts[0].RingID {
			return fmt.Sprintf("%s is in ring %d, %s in ring %d", st.Node, st.RingID, sts[0].Node, sts[0].RingID)
		}
		if len(st.VIPs) == 0 {
			return fmt.Sprintf("%s has no VIP table", st.Node)
		}
		for _, v := range st.VIPs {
			if !v.Closed && !slices.Contains(want, v.Owner) {
				return fmt.Sprintf("%s: VIP %s owned by %q", st.Node, v.VIP, v.Owner)
			}
		}
	}
	// Every member holds the same table once converged.
	for _, st := range sts[1:] {
		for k, v := range st.VIPs {
			if k >= len(sts[0].VIPs) || sts[0].VIPs[k].Owner != v.Owner {
				return fmt.Sprintf("%s and %s disagree on the owner of %s", sts[0].Node, st.Node, v.VIP)
			}
		}
	}
	return ""
}

func owner(st mgmt.Status, vip string) string { return st.Owner(netip.MustParseAddr(vip)) }

// metric scrapes node i's /metrics and returns the value of the sample
// whose line starts with name followed by a space (labels included in
// name, as the exposition writes them); ok is false when there is none.
func (c *cluster) metric(i int, name string) (v float64, ok bool, err error) {
	var text string
	err = c.lab.NodeAPI(i, func(cl *mgmt.Client) error {
		var err error
		text, err = cl.Metrics(context.Background())
		return err
	})
	if err != nil {
		return 0, false, err
	}
	for _, line := range strings.Split(text, "\n") {
		if rest, found := strings.CutPrefix(line, name+" "); found {
			v, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil, err
		}
	}
	return 0, false, nil
}

func TestClusterColdStartTogether(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n1" {
		t.Errorf("203.0.113.91 (preferred n1) is owned by %q", got)
	}
	t.Logf("ring %d, members %v, rotation %.1f ms", st.RingID, st.Members, st.Rotation)

	// Status.Holder follows the token: n1 names itself while it holds it,
	// else the member it passed it to (n2). Each holds for a few ms of a
	// rotation, so a few dozen samples see both.
	seen := map[string]bool{}
	for range 40 {
		st, err := c.status(1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(st.Members, st.Holder) {
			t.Fatalf("n1 says the token is at %q, not one of the members %v", st.Holder, st.Members)
		}
		seen[st.Holder] = true
		time.Sleep(3 * time.Millisecond)
	}
	if len(seen) < 2 {
		t.Errorf("in 40 samples n1 always reported the token at %v; it should follow the token around the ring", seen)
	}
}

// ringway runs the ringway CLI inside node i's namespace and returns its
// combined output.
func (c *cluster) ringway(i int, args ...string) (string, error) {
	var out []byte
	err := c.lab.Do(c.lab.Node(i), func() error {
		var err error
		out, err = exec.Command(c.bin, args...).CombinedOutput()
		return err
	})
	return string(out), err
}

// TestNodeCloseOpen: an operator closes the node that owns the gateway VIPs
// for maintenance: they move away (the client's stream keeps flowing) and
// stay away; opened again, the preferred ones come back.
func TestNodeCloseOpen(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n1" {
		t.Fatalf("203.0.113.91 (preferred n1) is on %q before the test", got)
	}
	tr := startTraffic(t, c)
	out, err := c.ringway(2, "node", "close", "-c", c.lab.ConfigPath(2), "n1")
	if err != nil {
		t.Fatalf("ringway node close: %v\n%s", err, out)
	}
	owns := func(st mgmt.Status, node string) int {
		k := 0
		for _, v := range st.VIPs {
			if v.Owner == node {
				k++
			}
		}
		return k
	}
	st = c.waitFor(func(st mgmt.Status) bool {
		return slices.Equal(st.Closed, []string{"n1"}) && owns(st, "n1") == 0
	}, 5*time.Second, "n1 closed and owning nothing")
	if !slices.Equal(st.Members, []string{"n1", "n2", "n3"}) {
		t.Errorf("members %v after closing n1, want all three (a closed node stays in the ring)", st.Members)
	}
	time.Sleep(300 * time.Millisecond) // a few rotations: nothing returns to n1
	if st, err := c.status(3); err != nil || owns(st, "n1") != 0 {
		t.Errorf("closed n1 got VIPs back: %v %+v", err, st.VIPs)
	}
	out, err = c.ringway(3, "node", "list", "-c", c.lab.ConfigPath(3))
	if err != nil || !strings.Contains(out, "n1    member, closed") {
		t.Errorf("ringway node list: %v\n%s", err, out)
	}
	out, err = c.ringway(3, "node", "open", "-c", c.lab.ConfigPath(3), "n1")
	if err != nil {
		t.Fatalf("ringway node open: %v\n%s", err, out)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Closed) == 0 && owner(st, "203.0.113.91") == "n1" && owner(st, "198.51.100.91") == "n1"
	}, 5*time.Second, "the gw1 pair back on n1 after it was opened")
	time.Sleep(300 * time.Millisecond)
	rep := tr.stream.Stop()
	t.Logf("close and open of the gateway's node: sent %d received %d lost %d, longest gap %v", rep.Sent, rep.Received, rep.Lost, rep.LongestGap)
	if rep.LongestGap > 500*time.Millisecond {
		t.Errorf("the stream stopped for %v while its gateway VIP moved twice", rep.LongestGap)
	}
	out, err = c.ringway(1, "node", "close", "-c", c.lab.ConfigPath(1), "n9")
	if err == nil || !strings.Contains(out, `node "n9" is not in the node map`) {
		t.Errorf("closing an unknown node: %v\n%s", err, out)
	}
}

// TestNICMonitor: the external link of the gateway's node loses carrier
// (its switch port goes down). The node stays in the ring over the internal
// subnet, but its NIC monitor marks it unhealthy and it hands its VIPs
// over; with the link back it is healthy again and the preferred pair
// returns.
func TestNICMonitor(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n1" {
		t.Fatalf("203.0.113.91 (preferred n1) is on %q before the test", got)
	}
	if err := c.lab.SetLink(1, "ext", false); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	st = c.waitFor(func(st mgmt.Status) bool {
		if !slices.Equal(st.Unhealthy, []string{"n1"}) {
			return false
		}
		for _, v := range st.VIPs {
			if v.Owner == "n1" {
				return false
			}
		}
		return true
	}, 5*time.Second, "n1 unhealthy and owning nothing")
	t.Logf("n1 gave up its VIPs %v after its external link went down", time.Since(down).Round(time.Millisecond))
	if !slices.Contains(st.Members, "n1") {
		t.Errorf("n1 left the ring (members %v); it should stay over the internal subnet", st.Members)
	}
	if st, err := c.status(1); err != nil || !slices.Equal(st.LinksDown, []string{"ext0"}) {
		t.Errorf("n1's status: links down %v, %v; want [ext0]", st.LinksDown, err)
	}
	if err := c.lab.SetLink(1, "ext", true); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 0 && owner(st, "203.0.113.91") == "n1" && owner(st, "198.51.100.91") == "n1"
	}, 5*time.Second, "n1 healthy with its preferred pair back")
}

// TestPingMonitor: n1 pings the server; when n1's route to it goes (a
// blackhole route in n1's namespace), n1 marks itself unhealthy and hands
// its VIPs over; with the route back the preferred pair returns.
func TestPingMonitor(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *config.Config) {
		if i == 1 {
			cfg.Monitors.Ping = config.PingMonitor{Enabled: true, Interval: 100 * time.Millisecond,
				Timeout: 50 * time.Millisecond, Targets: []netip.Addr{lab.ServerAddr}}
		}
	})
	c.startAll()
	st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	if got := owner(st, "203.0.113.91"); got != "n1" || len(st.Unhealthy) != 0 {
		t.Fatalf("before the test: 203.0.113.91 on %q, unhealthy %v", got, st.Unhealthy)
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
	cut := time.Now()
	c.waitFor(func(st mgmt.Status) bool {
		return slices.Equal(st.Unhealthy, []string{"n1"}) && owner(st, "203.0.113.91") != "n1" && owner(st, "198.51.100.91") != "n1"
	}, 5*time.Second, "n1 unhealthy and its gateway pair moved")
	t.Logf("n1 gave up the gateway VIPs %v after its route to the server went", time.Since(cut).Round(time.Millisecond))
	if st, err := c.status(1); err != nil || !slices.Equal(st.PingFailing, []netip.Addr{lab.ServerAddr}) {
		t.Errorf("n1's status: ping failing %v, %v; want [%s]", st.PingFailing, err, lab.ServerAddr)
	}
	if err := h.RouteDel(route); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 0 && owner(st, "203.0.113.91") == "n1" && owner(st, "198.51.100.91") == "n1"
	}, 5*time.Second, "n1 healthy with its preferred pair back")
}

// TestApplicationMonitor: n1's application check (an operator's command,
// run as the unprivileged user nobody) starts failing; n1 hands its VIPs
// over, and takes its preferred pair back once the check passes again.
func TestApplicationMonitor(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // nobody must see the file
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	broken := filepath.Join(dir, "broken")
	c := newCluster(t, 3, func(i int, cfg *config.Config) {
		if i == 1 {
			// 300 ms: the check runs under normal scheduling (the
			// node is real-time) and must finish within its interval
			// on a loaded CI machine.
			cfg.Monitors.Application = config.ApplicationMonitor{Enabled: true, Interval: 300 * time.Millisecond,
				Command: "echo uid $(id -u); test ! -e " + broken, User: "nobody"}
		}
	})
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 0 && owner(st, "203.0.113.91") == "n1"
	}, 5*time.Second, "before the test: n1 healthy with its preferred VIP")
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return slices.Equal(st.Unhealthy, []string{"n1"}) && owner(st, "203.0.113.91") != "n1"
	}, 5*time.Second, "n1 unhealthy and its gateway VIP moved")
	if st, err := c.status(1); err != nil || !strings.Contains(st.AppFailure, "exit status 1") || !strings.Contains(st.AppFailure, "uid 65534") {
		t.Errorf("n1's status: app failure %q, %v", st.AppFailure, err)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	c.waitFor(func(st mgmt.Status) bool {
		return len(st.Unhealthy) == 0 && owner(st, "203.0.113.91") == "n1"
	}, 5*time.Second, "n1 healthy with its preferred VIP back")
}

// TestMetrics: a node's /metrics reflects the running cluster.
func TestMetrics(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	st := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	var text string
	start := time.Now()
	err := c.lab.NodeAPI(1, func(cl *mgmt.Client) error {
		var err error
		text, err = cl.Metrics(context.Background())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scrape took %v, %d bytes", time.Since(start).Round(time.Millisecond), len(text))
	want := []string{
		`ringway_ring_mode{mode="member"} 1`,
		`ringway_ring_members 3`,
		`ringway_membership_changes_total`,
		`ringway_router_garps_total{nic="ext0"}`,
		`ringway_ring_datagrams_dropped_total{reason=`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	}
	// n1 owns 203.0.113.91 (preferred, group gw1) in the lab.
	if owner(st, "203.0.113.91") == "n1" {
		want = append(want, `ringway_vip_owned{vip="203.0.113.91"} 1`)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
	// The token has gone round many times by now.
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "ringway_ring_tokens_accepted_total "); ok && (v == "0" || v == "") {
			t.Errorf("tokens accepted: %q", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

func TestCLIStatusAndVIPMove(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	out, err := c.ringway(2, "status", "-c", c.lab.ConfigPath(2))
	if err != nil {
		t.Fatalf("ringway status: %v\n%s", err, out)
	}
	for _, want := range []string{"cluster lab, seen from n2 (member)", "members n1 n2 n3", "203.0.113.91   ext     n1     n1         preferred    gw1"} {
		if !strings.Contains(out, want) {
			t.Errorf("ringway status output lacks %q:\n%s", want, out)
		}
	}
	out, err = c.ringway(3, "vip", "move", "-c", c.lab.ConfigPath(3), "203.0.113.94", "n3")
	if err != nil {
		t.Fatalf("ringway vip move: %v\n%s", err, out)
	}
	c.waitFor(func(st mgmt.Status) bool { return owner(st, "203.0.113.94") == "n3" }, 5*time.Second, "203.0.113.94 to move to n3")
	out, err = c.ringway(1, "status", "--json", "--node", lab.MgmtAddr, "--token-file", filepath.Join(c.lab.Dir(), "admin.token"))
	if err != nil || !strings.Contains(out, `"preferred": "n3"`) {
		t.Errorf("ringway status --json --node: %v\n%s", err, out)
	}
	out, err = c.ringway(1, "vip", "move", "-c", c.lab.ConfigPath(1), "203.0.113.94", "n9")
	if err == nil || !strings.Contains(out, `node "n9" is not in the node map`) {
		t.Errorf("moving to an unknown node: %v\n%s", err, out)
	}
	out, err = c.ringway(1, "vip", "list", "-c", c.lab.ConfigPath(1))
	if err != nil || !strings.Contains(out, "203.0.113.94   ext     n3     n3") || strings.Contains(out, "members") {
		t.Errorf("ringway vip list: %v\n%s", err, out)
	}
	out, err = c.ringway(1, "node", "list", "-c", c.lab.ConfigPath(1))
	if err != nil || !strings.Contains(out, "n1    member") || !strings.Contains(out, "n3    member") {
		t.Errorf("ringway node list: %v\n%s", err, out)
	}
}

// TestBuiltinApplicationCheck: every node runs the built-in application
// check (the router's workers decide synthetic probes every 100 ms, the
// stateful filter's included) under a 1 kHz stream through the gateways:
// no node becomes unhealthy, no VIP moves, the stream loses nothing for
// long, and the probes show up in no filter counter. A wedged worker is
// not tested here: the only way to wedge a real worker from outside
// (SIGSTOP) stops the whole process, which the ring already detects; the
// unit tests wedge one (router TestProbeWedgedWorker, monitor
// TestProbeMonitorWedgedWorker).
func TestBuiltinApplicationCheck(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *config.Config) {
		cfg.Monitors.Application = config.ApplicationMonitor{Enabled: true, Interval: 100 * time.Millisecond}
		cfg.Filter.Enabled = true
		cfg.Filter.Default = config.ActionAccept
	})
	c.startAll()
	before := c.waitConverged([]int{1, 2, 3}, 10*time.Second)
	tr := startTraffic(t, c)
	time.Sleep(3 * time.Second) // 30 rounds on every node
	rep := tr.stream.Snapshot()
	st, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Unhealthy) != 0 {
		t.Errorf("unhealthy %v with every data plane working", st.Unhealthy)
	}
	for _, v := range []string{"203.0.113.91", "198.51.100.91"} {
		if owner(st, v) != owner(before, v) {
			t.Errorf("%s moved from %s to %s", v, owner(before, v), owner(st, v))
		}
	}
	for i := 1; i <= 3; i++ {
		s, err := c.status(i)
		if err != nil {
			t.Fatal(err)
		}
		if s.AppFailure != "" {
			t.Errorf("n%d: app failure %q", i, s.AppFailure)
		}
		if s.Filter != nil {
			for r, n := range s.Filter.Drops {
				if strings.HasPrefix(r, "spoofed") && n != 0 {
					t.Errorf("n%d: %d %s drops: probes counted by the filter", i, n, r)
				}
			}
		}
	}
	if rep.Received == 0 || rep.LongestGap > 500*time.Millisecond {
		t.Errorf("stream: %d of %d received, longest gap %v", rep.Received, rep.Sent, rep.LongestGap)
	}
	t.Logf("stream: %d of %d received, longest gap %v", rep.Received, rep.Sent, rep.LongestGap)
}
