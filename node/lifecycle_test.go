package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ring/ringnet/ringnettest"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/router/routertest"
)

// These tests run a Node's lifecycle without root: each node of a cluster is
// assembled from a fake data plane (routertest.Fake) and a real ring core
// and driver with a real ringstate holder, over ringnettest's in-memory
// network, inside a testing/synctest bubble whose clock is virtual. So the
// durations asserted (LeaveTimeout, Drain) are exact, however busy the
// machine.

var _ Plane = (*routertest.Fake)(nil)

// lcConfig is a cluster of two nodes on one subnet with four VIPs;
// ringSection is the YAML of its ring section.
func lcConfig(t *testing.T, ringSection string) *config.Config {
	t.Helper()
	c, err := config.Parse("lifecycle.yaml", []byte(`
cluster: {name: lifecycle, key_file: cluster.key}
node: {id: n1}
nodes:
  - {id: n1, addresses: [203.0.113.1]}
  - {id: n2, addresses: [203.0.113.2]}
subnets:
  - {name: ext, interface: ext0, prefix: 203.0.113.0/24, vips: [203.0.113.91-203.0.113.94]}
ring: `+ringSection+`
management: {listen: ""}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastRing detects a lost hop within a few ms; slowRing takes 700 ms
// (ack_timeout × (2^3 − 1)), longer than the tests' LeaveTimeout, so a leave
// whose hop is never acknowledged ends by the LeaveTimeout, not by the ring
// giving up on the peer.
const (
	fastRing = `{tick: 1ms, hop_interval: 1ms, ack_timeout: 2ms, join_timeout: 20ms}`
	slowRing = `{tick: 1ms, hop_interval: 1ms, ack_timeout: 100ms, ack_retries: 2, join_timeout: 20ms}`
)

const (
	testDrain        = 500 * time.Millisecond
	testLeaveTimeout = 300 * time.Millisecond
)

// cluster is the nodes of one lcConfig, each running in its own goroutine.
type cluster struct {
	t     *testing.T
	net   *ringnettest.Network
	nodes []*testNode
}

// testNode is one Node and the test's handles on its parts.
type testNode struct {
	*Node
	plane  *routertest.Fake
	ring   ringDriver
	logs   *logRecorder
	signal context.CancelFunc // the first SIGTERM
	done   chan error         // Run's result
}

// newCluster starts every node of lcConfig(ringSection) with extra parts beside
// each one's plane (extra may be nil), and waits until they form one ring.
func newCluster(t *testing.T, ringSection string, extra func(id ring.NodeID) []part) *cluster {
	t.Helper()
	return newClusterWith(t, ringSection, extra, nil)
}

// newClusterWith is newCluster with each node's Config edited by edit
// (may be nil) before the node is built.
func newClusterWith(t *testing.T, ringSection string, extra func(id ring.NodeID) []part, edit func(id int, cfg *Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: ringnettest.New()}
	base := lcConfig(t, ringSection)
	for i := range base.Nodes {
		f := *base
		f.Node.ID = base.Nodes[i].ID
		c.start(&f, extra, edit)
	}
	t.Cleanup(c.stopAll)
	c.waitFor(2*time.Second, "both nodes form one ring and place every VIP", func() bool {
		for _, tn := range c.nodes {
			st := tn.state.Load()
			if st == nil || !slices.Equal(st.Members, []ring.NodeID{1, 2}) {
				return false
			}
		}
		return len(c.nodes[0].plane.Owned())+len(c.nodes[1].plane.Owned()) == len(base.AllVIPs())
	})
	return c
}

// start builds node f.Node.ID of the cluster as New would, over the
// in-memory network, and runs it.
func (c *cluster) start(f *config.Config, extra func(id ring.NodeID) []part, edit func(id int, cfg *Config)) *testNode {
	t := c.t
	t.Helper()
	key := bytes.Repeat([]byte{0x5a}, ringnet.KeyLen)
	i := f.LocalIndex() - 1
	logs := &logRecorder{}
	cfg := Config{File: f, Drain: testDrain, LeaveTimeout: testLeaveTimeout, Logger: slog.New(logs)}
	if edit != nil {
		edit(i+1, &cfg)
	}
	n, err := newNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The ring as New builds it, over the in-memory network.
	table, err := initialTable(f)
	if err != nil {
		t.Fatal(err)
	}
	rc := ringConfig(f)
	rc.Holder = ringstate.New(ringstate.Config{Initial: table, Balance: balanceConfig(f)})
	rc.Rand = rand.New(rand.NewPCG(1, uint64(i))).Uint64
	core, err := ring.NewNode(rc)
	if err != nil {
		t.Fatal(err)
	}
	dc := driverConfig(f, key, n.log.With("part", "ring"))
	dc.Listen, dc.Timer = c.net.Listen, ringnet.TimerGo
	d, err := ringnet.New(dc, core)
	if err != nil {
		t.Fatal(err)
	}
	if f.FilterEnabled() {
		// The stateful filter as New builds it, without the tunnel
		// (symmetric routing needs sockets): tests call its Forward.
		fc := filterConfig(f)
		fc.Self = 0
		if n.filter, err = forward.New(fc); err != nil {
			t.Fatal(err)
		}
		n.clock = func() int64 { return time.Now().UnixNano() }
	}
	tn := &testNode{Node: n, plane: routertest.NewFake(), ring: ringDriver{d, core}, logs: logs, done: make(chan error, 1)}
	n.ring, n.plane, n.proposer = tn.ring, tn.plane, d
	n.beside = []part{{"local", runnerFunc(n.reportLocal)}, {"monitors", runnerFunc(n.runMonitors)}}
	if extra != nil {
		n.beside = append(n.beside, extra(n.self)...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.signal = cancel
	go func() { tn.done <- n.Run(ctx) }()
	c.nodes = append(c.nodes, tn)
	return tn
}

// stopAll stops every node still running at once and collects it.
func (c *cluster) stopAll() {
	for _, tn := range c.nodes {
		tn.Hurry()
		tn.signal()
	}
	for _, tn := range c.nodes {
		if tn.done != nil {
			<-tn.done
		}
	}
}

// node returns node id (1-based).
func (c *cluster) node(id int) *testNode { return c.nodes[id-1] }

// waitFor polls cond every virtual millisecond until it holds or within has
// passed.
func (c *cluster) waitFor(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("after %v: not true that %s", within, what)
		}
	}
}

// cut drops every datagram from node `from` to node `to`.
func (c *cluster) cut(from, to int) {
	a, b := c.addr(from), c.addr(to)
	c.net.SetFilter(func(f, t netip.AddrPort) bool { return f.Addr() != a || t.Addr() != b })
}

func (c *cluster) addr(id int) netip.Addr { return c.nodes[0].file.PrimaryAddress(id, 0) }

// wait returns Run's result and the virtual time it returned; it fails the
// test if Run has not returned within d.
func (tn *testNode) wait(t *testing.T, d time.Duration) (time.Time, error) {
	t.Helper()
	select {
	case err := <-tn.done:
		tn.done = nil
		return time.Now(), err
	case <-time.After(d):
		t.Fatalf("node %d: Run has not returned %v later", tn.self, d)
		return time.Time{}, nil
	}
}

// waitClosed waits until ch is closed, or fails the test after d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not after %v", what, d)
	}
}

// running reports whether Run has not returned yet.
func (tn *testNode) running() bool { return len(tn.done) == 0 && tn.done != nil }

// checkStopped checks what a user sees of a stopped node: it answers for
// no VIP, forwards nothing, and its ring has stopped.
func (tn *testNode) checkStopped(t *testing.T) {
	t.Helper()
	if got := tn.plane.Owned(); len(got) != 0 {
		t.Errorf("node %d's plane still owns %v after Run returned", tn.self, got)
	}
	select {
	case <-tn.plane.Stopped():
	default:
		t.Errorf("node %d's plane still runs after Run returned", tn.self)
	}
	select {
	case <-tn.ring.Done():
	default:
		t.Errorf("node %d's ring still runs after Run returned", tn.self)
	}
}

// detections counts the times tn's ring found a member gone without a
// leave: a hop to it failed (Drops) or the token was lost with it and
// regenerated.
func detections(t *testing.T, tn *testNode) uint64 {
	t.Helper()
	s, err := tn.ring.Status(context.Background())
	if err != nil {
		t.Fatalf("node %d: ring status: %v", tn.self, err)
	}
	return s.Counters.Drops + s.Counters.Regenerations
}

// vips lists every VIP of f, sorted like the plane's Owned.
func vips(f *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, v := range f.AllVIPs() {
		out = append(out, v.Addr)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

var cmpAddrs = []cmp.Option{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmpopts.EquateEmpty()}

// TestLifecycleLeave: the first signal hands this node's VIPs over to the
// other node through the token; the other node takes them without
// detecting a failure, and this node ends owning nothing.
func TestLifecycleLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, fastRing, nil)
		n1, n2 := c.node(1), c.node(2)
		if len(n1.plane.Owned()) == 0 {
			t.Fatalf("node 1 owns no VIP before leaving (node 2 owns %v): nothing to hand over", n2.plane.Owned())
		}
		n1.signal()
		if _, err := n1.wait(t, testLeaveTimeout+testDrain+time.Second); err != nil {
			t.Fatalf("Run after a graceful leave = %v, want nil", err)
		}
		n1.checkStopped(t)
		if diff := cmp.Diff(vips(n1.file), n2.plane.Owned(), cmpAddrs...); diff != "" {
			t.Errorf("VIPs node 2 owns after node 1 left (-want +got):\n%s", diff)
		}
		if d := detections(t, n2); d != 0 {
			t.Errorf("node 2 detected %d failures: it found node 1 gone instead of taking a hand-over", d)
		}
		if st := n2.state.Load(); !slices.Equal(st.Members, []ring.NodeID{2}) {
			t.Errorf("node 2's ring after the leave: %v, want [2]", st.Members)
		}
		if n1.logs.has(slog.LevelWarn, "") {
			t.Errorf("a graceful leave logged warnings:\n%s", n1.logs)
		}
	})
}

// TestLifecycleDrain: after the leave, the ring stops and the plane answers
// for nothing, but it keeps forwarding for Drain (hosts still send to this
// node's MAC until the new owner's gratuitous ARP reaches them); then it
// stops and Run returns.
func TestLifecycleDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, fastRing, nil)
		n1 := c.node(1)
		n1.signal()
		waitClosed(t, n1.ring.Done(), time.Second, "node 1's ring stops after the leave")
		left := time.Now()
		time.Sleep(testDrain - time.Millisecond)
		if !n1.running() {
			t.Fatalf("Run returned %v after the leave, before the drain of %v ended", time.Since(left), testDrain)
		}
		select {
		case <-n1.plane.Stopped():
			t.Fatalf("the plane stopped during the drain")
		default:
		}
		if got := n1.plane.Owned(); len(got) != 0 {
			t.Errorf("the plane answers for %v during the drain, want nothing", got)
		}
		// The API still answers during the drain: it shows the node in no
		// ring and its VIPs with their new owner.
		st := n1.Status()
		owners := map[string]int{}
		for _, v := range st.VIPs {
			owners[v.Owner]++
		}
		if st.Mode != "stopped" || len(st.Members) != 0 || owners["n2"] != len(vips(n1.file)) {
			t.Errorf("status during the drain: mode %s, members %v, VIPs per owner %v; want stopped, in no ring, all on n2", st.Mode, st.Members, owners)
		}
		waitClosed(t, n1.plane.Stopped(), time.Second, "node 1's plane stops after the drain")
		if got := time.Since(left); got != testDrain {
			t.Errorf("the plane stopped %v after the ring, want the drain, %v", got, testDrain)
		}
		if at, err := n1.wait(t, time.Second); err != nil || at.Sub(left) != testDrain {
			t.Errorf("Run returned %v, %v after the leave; want nil after %v", err, at.Sub(left), testDrain)
		}
		n1.checkStopped(t)
	})
}

// TestLifecycleHurryDuringDrain: a second signal during the drain stops the
// plane at once.
func TestLifecycleHurryDuringDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, fastRing, nil)
		n1 := c.node(1)
		n1.signal()
		waitClosed(t, n1.ring.Done(), time.Second, "node 1's ring stops after the leave")
		time.Sleep(testDrain / 4)
		if !n1.running() {
			t.Fatal("Run returned before the second signal, within the drain")
		}
		n1.Hurry()
		hurried := time.Now()
		at, err := n1.wait(t, testDrain)
		if err != nil || at != hurried {
			t.Errorf("Run returned %v, %v after Hurry; want nil at once", err, at.Sub(hurried))
		}
		n1.checkStopped(t)
		if !n1.logs.has(slog.LevelWarn, "drain cut short") {
			t.Errorf("no warning that the drain was cut short:\n%s", n1.logs)
		}
	})
}

// TestLifecycleLeaveTimeout: the peer never acknowledges the hop that would
// hand this node's VIPs over (its datagrams to this node are lost), so the
// leave ends after LeaveTimeout, with a warning; the drain follows as after
// any leave, and the node ends owning nothing.
func TestLifecycleLeaveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, slowRing, nil)
		n1 := c.node(1)
		c.cut(2, 1)
		n1.signal()
		signalled := time.Now()
		at, err := n1.wait(t, 2*time.Second)
		if err != nil {
			t.Errorf("Run = %v after a leave that timed out, want nil", err)
		}
		if got, want := at.Sub(signalled), testLeaveTimeout+testDrain; got != want {
			t.Errorf("Run returned %v after the signal, want LeaveTimeout + Drain = %v", got, want)
		}
		n1.checkStopped(t)
		if !n1.logs.has(slog.LevelWarn, "graceful leave did not finish") {
			t.Errorf("no warning that the leave did not finish:\n%s", n1.logs)
		}
	})
}

// TestLifecycleHurryCancelsLeave: a second signal while the leave waits for
// the peer stops the node at once, without a drain.
func TestLifecycleHurryCancelsLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, slowRing, nil)
		n1 := c.node(1)
		c.cut(2, 1)
		n1.signal()
		time.Sleep(testLeaveTimeout / 3)
		if !n1.running() {
			t.Fatal("Run returned while the leave could not finish, before LeaveTimeout")
		}
		n1.Hurry()
		hurried := time.Now()
		at, err := n1.wait(t, testLeaveTimeout)
		if err != nil || at != hurried {
			t.Errorf("Run returned %v, %v after Hurry; want nil at once", err, at.Sub(hurried))
		}
		n1.checkStopped(t)
		if !n1.logs.has(slog.LevelWarn, "stopping at once") {
			t.Errorf("no warning that the node stops without handing its VIPs over:\n%s", n1.logs)
		}
		if n1.logs.has(slog.LevelWarn, "graceful leave did not finish") {
			t.Errorf("the leave Hurry cancelled was reported as failed:\n%s", n1.logs)
		}
	})
}

// TestLifecyclePartFails: when a part's Run fails, the node stops without
// a leave and without a drain, Run returns the part's error, and nothing
// keeps running; the other node detects it as failed and takes its VIPs.
func TestLifecyclePartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errBroken := errors.New("broken")
		var fail chan struct{}
		var besideStopped chan struct{}
		c := newCluster(t, fastRing, func(id ring.NodeID) []part {
			if id != 1 {
				return nil
			}
			fail, besideStopped = make(chan struct{}), make(chan struct{})
			return []part{
				{"application monitor", runnerFunc(func(ctx context.Context) error {
					select {
					case <-fail:
						return errBroken
					case <-ctx.Done():
						return nil
					}
				})},
				{"nic monitor", runnerFunc(func(ctx context.Context) error {
					defer close(besideStopped)
					<-ctx.Done()
					return nil
				})},
			}
		})
		n1, n2 := c.node(1), c.node(2)
		close(fail)
		failed := time.Now()
		at, err := n1.wait(t, testLeaveTimeout+testDrain+time.Second)
		if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), "application monitor") {
			t.Errorf("Run = %v, want the application monitor's error", err)
		}
		if at != failed {
			t.Errorf("Run returned %v after the failure, want at once (no leave, no drain)", at.Sub(failed))
		}
		n1.checkStopped(t)
		select {
		case <-besideStopped:
		default:
			t.Error("the other part beside the plane still runs after Run returned")
		}
		c.waitFor(time.Second, "node 2 serves every VIP", func() bool {
			return len(n2.plane.Owned()) == len(n1.file.AllVIPs())
		})
		if d := detections(t, n2); d != 1 {
			t.Errorf("node 2 detected %d failures, want node 1 detected as failed once (it did not leave)", d)
		}
	})
}

// logRecorder is a slog.Handler that keeps every record's level and
// message.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
	lvls []slog.Level
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, msg)
	l.lvls = append(l.lvls, r.Level)
	return nil
}

// has reports whether a record at level or above contains text.
func (l *logRecorder) has(level slog.Level, text string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range l.recs {
		if l.lvls[i] >= level && strings.Contains(m, text) {
			return true
		}
	}
	return false
}

// count returns how many records at level or above contain text.
func (l *logRecorder) count(level slog.Level, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, m := range l.recs {
		if l.lvls[i] >= level && strings.Contains(m, text) {
			n++
		}
	}
	return n
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i, m := range l.recs {
		if l.lvls[i] >= slog.LevelInfo {
			fmt.Fprintf(&b, "  %v %s\n", l.lvls[i], m)
		}
	}
	return b.String()
}

// TestLifecycleHooks: OnReady runs once, when a node first serves from a
// committed state; OnStopping once, when the leave starts, before the
// node hands anything over (systemd's READY=1 and STOPPING=1).
func TestLifecycleHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var calls []string
		record := func(s string) func() {
			return func() { mu.Lock(); calls = append(calls, s); mu.Unlock() }
		}
		var n1Owned int
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			cfg.OnReady = record(fmt.Sprintf("ready %d", id))
			cfg.OnStopping = record(fmt.Sprintf("stopping %d", id))
		})
		n1 := c.node(1)
		n1Owned = len(n1.plane.Owned())
		n1.signal()
		if _, err := n1.wait(t, testLeaveTimeout+testDrain+time.Second); err != nil {
			t.Fatal(err)
		}
		c.node(2).Hurry()
		c.node(2).signal()
		c.node(2).wait(t, time.Second)
		mu.Lock()
		defer mu.Unlock()
		want := []string{"ready 1", "ready 2", "stopping 1", "stopping 2"}
		got := slices.Clone(calls)
		slices.Sort(got[:2]) // the two nodes become ready in either order
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hook calls (-want +got):\n%s", diff)
		}
		if n1Owned == 0 {
			t.Errorf("node 1 owned nothing before it left: the test shows nothing")
		}
	})
}
