package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// reloadYAML is lcConfig's cluster as a file; %ID%, %VIPS% and %EXTRA% are
// filled in per node and per case.
const reloadYAML = `cluster: {name: lifecycle, key_file: /etc/ringway/cluster.key}
node: {id: %ID%}
nodes:
  - {id: n1, addresses: [203.0.113.1]}
  - {id: n2, addresses: [203.0.113.2]}
subnets:
  - {name: ext, interface: ext0, prefix: 203.0.113.0/24, vips: [%VIPS%]}
ring: {tick: 1ms, hop_interval: 1ms, ack_timeout: 2ms, join_timeout: 20ms}
management: {listen: ""}
%EXTRA%`

func reloadFile(id, vips, extra string) string {
	return strings.NewReplacer("%ID%", id, "%VIPS%", vips, "%EXTRA%", extra).Replace(reloadYAML)
}

// TestReload: a reload applies through the token as one epoch that both
// nodes run, whichever node's file changed; a broken file and a key that
// needs a restart are refused with file:line errors and nothing changes;
// a node whose file disagrees with the cluster says which keys differ.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		paths := map[int]string{}
		write := func(id int, content string) {
			t.Helper()
			if err := os.WriteFile(paths[id], []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			paths[id] = filepath.Join(dir, cfg.File.Node.ID+".yaml")
			cfg.File.File = paths[id]
			cfg.File.Cluster.KeyFile = "/etc/ringway/cluster.key"
		})
		n1, n2 := c.node(1), c.node(2)
		ctx := context.Background()
		reload := func(tn *testNode) (res struct {
			Outcome string
			Epoch   uint64
			Errors  []string
		}) {
			t.Helper()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			r := tn.Reload(rctx, mgmt.ReloadOptions{})
			res.Outcome, res.Epoch, res.Errors = r.Outcome, r.Epoch, r.Errors
			return res
		}
		epochs := func() []uint64 { return []uint64{n1.run.Load().epoch, n2.run.Load().epoch} }

		// A broken file: refused with the errors config check gives.
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.94", "ring: {tick: 1ns}\nbogus: 1\n"))
		res := reload(n1)
		if res.Outcome != "refused" || !strings.Contains(strings.Join(res.Errors, "\n"), paths[1]+":") ||
			!strings.Contains(strings.Join(res.Errors, "\n"), `unknown key "bogus"`) {
			t.Fatalf("broken file: %+v", res)
		}
		if !n1.logs.has(slog.LevelError, "reload refused") {
			t.Errorf("the refusal is not logged:\n%s", n1.logs)
		}
		// The ring's clock: refused, saying the restart it needs.
		write(1, strings.Replace(reloadFile("n1", "203.0.113.91-203.0.113.94", ""), "tick: 1ms", "tick: 500us", 1))
		if res := reload(n1); res.Outcome != "refused" || !strings.Contains(strings.Join(res.Errors, "\n"), "restart every node") {
			t.Fatalf("ring tick change: %+v", res)
		}
		if slices.Max(epochs()) != 0 {
			t.Fatalf("epochs %v after refused reloads", epochs())
		}

		// .95 added and .91 preferred on n2, in both files; n1 reloads.
		pref := "vips:\n  - {vip: 203.0.113.91, preferred: n2, persistence: preferred}\n"
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.95", pref))
		write(2, reloadFile("n2", "203.0.113.91-203.0.113.95", pref))
		if res := reload(n1); res.Outcome != "applied" || res.Epoch != 1 {
			t.Fatalf("adding a VIP: %+v", res)
		}
		v91, v95 := netip.MustParseAddr("203.0.113.91"), netip.MustParseAddr("203.0.113.95")
		c.waitFor(time.Second, "both nodes run epoch 1, .95 is answered and .91 is on n2", func() bool {
			return slices.Equal(epochs(), []uint64{1, 1}) && slices.Contains(n2.plane.Owned(), v91) &&
				(slices.Contains(n1.plane.Owned(), v95) || slices.Contains(n2.plane.Owned(), v95))
		})
		if s := n2.Status().Config; len(s.Differs) != 0 || s.Hash != s.FileHash {
			t.Errorf("node 2's file is the cluster's, but status says %+v", s)
		}
		// n2 reloads the same file: nothing to do.
		if res := reload(n2); res.Outcome != "unchanged" || res.Epoch != 1 {
			t.Fatalf("second node's reload of the same file: %+v\n%s", res, n2.logs)
		}

		// .95 removed in n1's file only; n1 reloads: both run it, n2 says
		// its file differs.
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.94", pref))
		if res := reload(n1); res.Outcome != "applied" || res.Epoch != 2 {
			t.Fatalf("removing a VIP: %+v", res)
		}
		c.waitFor(time.Second, "both nodes run epoch 2 and nobody answers .95", func() bool {
			return slices.Equal(epochs(), []uint64{2, 2}) && !slices.Contains(n1.plane.Owned(), v95) && !slices.Contains(n2.plane.Owned(), v95)
		})
		if s := n2.Status().Config; !slices.Equal(s.Differs, []string{"subnets[0].vips"}) || s.Epoch != 2 {
			t.Errorf("node 2's status after a change its file lacks: %+v", s)
		}
		if !n2.logs.has(slog.LevelWarn, "differs from the cluster") {
			t.Errorf("node 2 does not log that its file differs:\n%s", n2.logs)
		}
		// Every node's status lists both files' hashes, from the token.
		c.waitFor(3*time.Second, "the token carries both nodes' file hashes", func() bool {
			s := n1.Status().Config
			return s.Files["n1"] == s.Hash && s.Files["n2"] == n2.Status().Config.FileHash && s.Files["n2"] != s.Hash
		})
		// Both stayed members throughout.
		if st := n1.state.Load(); !slices.Equal(st.Members, []ring.NodeID{1, 2}) {
			t.Errorf("members %v", st.Members)
		}
		// A ring timer: both cores take it.
		write(1, strings.Replace(reloadFile("n1", "203.0.113.91-203.0.113.94", pref), "hop_interval: 1ms", "hop_interval: 3ms", 1))
		if res := reload(n1); res.Outcome != "applied" || res.Epoch != 3 {
			t.Fatalf("a ring timer: %+v", res)
		}
		c.waitFor(time.Second, "both cores hold the token 3 ticks", func() bool {
			for _, tn := range c.nodes {
				var tm ring.Timers
				if tn.ring.Do(ctx, func(ringnet.Core) { tm = tn.ring.core.Timers() }) != nil || tm.HopInterval != 3 {
					return false
				}
			}
			return true
		})
		// Two different files reloaded at once: one applies, the other is
		// refused by the holder (its base is gone) and says to reload again.
		write(1, reloadFile("n1", "203.0.113.91-203.0.113.93", pref))
		write(2, reloadFile("n2", "203.0.113.91-203.0.113.92", pref))
		outcomes := make(chan string, 2)
		for _, tn := range []*testNode{n1, n2} {
			go func() {
				r := reload(tn)
				outcomes <- r.Outcome + " " + strings.Join(r.Errors, ";")
			}()
		}
		got := []string{<-outcomes, <-outcomes}
		slices.Sort(got)
		if !strings.HasPrefix(got[0], "applied") || !strings.HasPrefix(got[1], "refused") || !strings.Contains(got[1], "reload again") {
			t.Errorf("racing reloads: %q", got)
		}
		// The content has left the token after a rotation.
		c.waitFor(time.Second, "the epoch's content leaves the token", func() bool {
			e, ok := ringstate.CurrentEpoch(n1.state.Load().Carriages)
			return ok && len(e.Content) == 0
		})
	})
}

// TestReloadAppendNode: a node appended to every node's map by a reload
// joins the running ring once started, and every node's status names it.
func TestReloadAppendNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			cfg.File.File = filepath.Join(dir, cfg.File.Node.ID+".yaml")
			cfg.File.Cluster.KeyFile = "/etc/ringway/cluster.key"
		})
		three := func(id string) string {
			return strings.Replace(reloadFile(id, "203.0.113.91-203.0.113.94", ""), "  - {id: n2, addresses: [203.0.113.2]}\n",
				"  - {id: n2, addresses: [203.0.113.2]}\n  - {id: n3, addresses: [203.0.113.3]}\n", 1)
		}
		for _, id := range []string{"n1", "n2", "n3"} {
			if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(three(id)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if res := c.node(1).Reload(ctx, mgmt.ReloadOptions{}); res.Outcome != "applied" || !slices.Contains(res.Changes, "nodes") {
			t.Fatalf("appending n3: %+v", res)
		}
		c.waitFor(time.Second, "both nodes know n3", func() bool {
			return slices.Equal(c.node(1).Status().Nodes, []string{"n1", "n2", "n3"}) && slices.Equal(c.node(2).Status().Nodes, []string{"n1", "n2", "n3"})
		})
		f3, err := config.Load(filepath.Join(dir, "n3.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		n3 := c.start(f3, nil, nil)
		c.waitFor(2*time.Second, "n3 joins the ring", func() bool {
			for _, tn := range c.nodes {
				st := tn.state.Load()
				if st == nil || !slices.Equal(st.Members, []ring.NodeID{1, 2, 3}) {
					return false
				}
			}
			return true
		})
		if s := n3.Status().Config; s.Epoch != 1 || s.Hash != s.FileHash {
			t.Errorf("n3's config after joining: %+v", s)
		}
	})
}

// TestReloadDropFlows: a VIP removed by a plain reload leaves the flows
// through it alone; one removed with --drop-flows takes them off every
// node's flow table (the VIP's own flows and those of the hosts that used
// it as gateway), and no other flow; the answer names the VIP. The filter
// follows the VIPs for anti-spoofing.
func TestReloadDropFlows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		filter := "filter: {enabled: true, default: accept}\n"
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			cfg.File.File = filepath.Join(dir, cfg.File.Node.ID+".yaml")
			cfg.File.Cluster.KeyFile = "/etc/ringway/cluster.key"
			cfg.File.Filter.Enabled = true
			cfg.File.Filter.Default = config.ActionAccept
		})
		write := func(vips string) {
			t.Helper()
			for _, id := range []string{"n1", "n2"} {
				if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(reloadFile(id, vips, filter)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		reload := func(drop bool) mgmt.ReloadResult {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return c.node(1).Reload(ctx, mgmt.ReloadOptions{DropFlows: drop})
		}
		// The filter started with the file's VIPs; the same file read
		// again is unchanged.
		write("203.0.113.91-203.0.113.94")
		if res := reload(false); res.Outcome != "unchanged" {
			t.Fatalf("the starting file: %+v", res)
		}
		v93, v94 := netip.MustParseAddr("203.0.113.93"), netip.MustParseAddr("203.0.113.94")
		h93, h94 := netip.MustParseAddr("203.0.113.13"), netip.MustParseAddr("203.0.113.14")
		remote := netip.MustParseAddr("203.0.113.50")
		for _, tn := range c.nodes {
			tn.plane.SetGatewayHosts(v93, h93)
			tn.plane.SetGatewayHosts(v94, h94)
		}
		open := func(src, dst netip.Addr) {
			t.Helper()
			for _, tn := range c.nodes {
				if r := tn.filter.Forward(udpPacket(src, dst), 0, 0, tn.clock()); r != forward.ReasonNone {
					t.Fatalf("a datagram from %v at %s: %v", src, tn.name(tn.self), r)
				}
			}
		}
		flowsOf := func(tn *testNode, a netip.Addr) int { return len(tn.filter.FlowsWith(tn.clock(), 0, a)) }
		open(h93, remote)
		open(h94, remote)
		open(remote, v93) // a flow with the VIP at one end
		if r := c.node(1).filter.Forward(udpPacket(v94, remote), 0, 0, c.node(1).clock()); r != forward.ReasonSpoofVIP {
			t.Fatalf("a datagram from VIP .94: %v, want spoofed_vip", r)
		}

		// .94 removed, without --drop-flows: its hosts' flows stay; the
		// filter no longer refuses .94 as a source.
		write("203.0.113.91-203.0.113.93")
		if res := reload(false); res.Outcome != "applied" || len(res.DropFlows) != 0 {
			t.Fatalf("removing .94: %+v", res)
		}
		c.waitFor(time.Second, "both nodes run epoch 1", func() bool {
			return c.node(1).run.Load().epoch == 1 && c.node(2).run.Load().epoch == 1
		})
		for _, tn := range c.nodes {
			if flowsOf(tn, h94) != 1 {
				t.Errorf("%s dropped .94's host's flow without --drop-flows", tn.name(tn.self))
			}
			if r := tn.filter.Forward(udpPacket(v94, remote), 0, 0, tn.clock()); r != forward.ReasonNone {
				t.Errorf("%s: a datagram from the removed VIP .94: %v, want passed", tn.name(tn.self), r)
			}
		}

		// .93 removed with --drop-flows: its host's flow and its own go on
		// both nodes; the others stay.
		write("203.0.113.91-203.0.113.92")
		res := reload(true)
		if res.Outcome != "applied" || !slices.Equal(res.DropFlows, []string{"203.0.113.93"}) {
			t.Fatalf("removing .93 with --drop-flows: %+v", res)
		}
		c.waitFor(time.Second, "both nodes run epoch 2", func() bool {
			return c.node(1).run.Load().epoch == 2 && c.node(2).run.Load().epoch == 2
		})
		for _, tn := range c.nodes {
			if flowsOf(tn, h93) != 0 || flowsOf(tn, v93) != 0 {
				t.Errorf("%s kept a flow through .93: %+v", tn.name(tn.self), tn.filter.Flows(tn.clock(), 0))
			}
			if flowsOf(tn, h94) != 1 {
				t.Errorf("%s dropped a flow of .94's host, removed without --drop-flows", tn.name(tn.self))
			}
			if !tn.logs.has(slog.LevelInfo, "flows through removed VIPs dropped") {
				t.Errorf("%s does not log the drop", tn.name(tn.self))
			}
		}

		// --drop-flows with a reload that removes nothing: a note.
		write("203.0.113.91-203.0.113.93")
		if res := reload(true); res.Outcome != "applied" || len(res.DropFlows) != 0 || len(res.Notes) != 1 {
			t.Errorf("--drop-flows adding a VIP: %+v", res)
		}
	})
}

// udpPacket is a minimal IPv4 UDP datagram from src to dst.
func udpPacket(src, dst netip.Addr) []byte {
	b := make([]byte, 28)
	b[0], b[3], b[8], b[9] = 0x45, 28, 64, 17
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	b[20], b[21], b[22], b[23], b[25] = 0x13, 0x88, 0x1b, 0x58, 8
	return b
}

// TestReloadMonitorsOnOff: a reload turns the application monitor on (its
// failing check makes both nodes unhealthy) and off again (healthy), and
// the ring carries each verdict; the ping monitor's targets change on a
// node without it, which needs nothing.
func TestReloadMonitorsOnOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		c := newClusterWith(t, fastRing, nil, func(id int, cfg *Config) {
			cfg.File.File = filepath.Join(dir, cfg.File.Node.ID+".yaml")
			cfg.File.Cluster.KeyFile = "/etc/ringway/cluster.key"
		})
		reload := func(extra string) mgmt.ReloadResult {
			t.Helper()
			for _, id := range []string{"n1", "n2"} {
				if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(reloadFile(id, "203.0.113.91-203.0.113.94", extra)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return c.node(1).Reload(ctx, mgmt.ReloadOptions{})
		}
		unhealthy := func(tn *testNode) bool {
			st := tn.state.Load()
			return st != nil && slices.Contains(ringstate.Unhealthy(st.Carriages), vipstate.Node(tn.self))
		}
		if res := reload("monitors: {application: {enabled: true, interval: 100ms, command: 'exit 3'}}\n"); res.Outcome != "applied" {
			t.Fatalf("turning the application check on: %+v", res)
		}
		c.waitFor(5*time.Second, "both nodes run the failing check and the token says so", func() bool {
			return unhealthy(c.node(1)) && unhealthy(c.node(2))
		})
		for _, tn := range c.nodes {
			if f := tn.mons.Load().app.Failure(); !strings.Contains(f, "3") {
				t.Errorf("%s: failure %q, want the exit status", tn.name(tn.self), f)
			}
			if !tn.logs.has(slog.LevelInfo, "monitors changed by the config epoch") {
				t.Errorf("%s does not log the monitor it started", tn.name(tn.self))
			}
		}
		if res := reload("monitors: {ping: {targets: [192.0.2.9]}}\n"); res.Outcome != "applied" {
			t.Fatalf("turning the application check off: %+v", res)
		}
		c.waitFor(5*time.Second, "both nodes healthy without the check", func() bool {
			return !unhealthy(c.node(1)) && !unhealthy(c.node(2))
		})
		for _, tn := range c.nodes {
			if m := tn.mons.Load(); m.app != nil || m.ping != nil {
				t.Errorf("%s still runs %+v", tn.name(tn.self), m)
			}
		}
	})
}

// TestMonitorChangeRetried: a monitor change that cannot be applied (the
// check's user does not exist yet) is not recorded as running, so the next
// config epoch, or a reload of the same file ("unchanged"), applies it once
// the cause is gone.
func TestMonitorChangeRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, fastRing, nil, nil)
		tn := c.node(1)
		next := *tn.run.Load().cfg
		next.Monitors.Application = config.ApplicationMonitor{Enabled: true, Interval: 100 * time.Millisecond, Command: "exit 0", User: "ringway-no-such-user"}
		defer func(l func(string) (uint32, uint32, []uint32, error)) { lookupUser = l }(lookupUser)
		lookupUser = func(name string) (uint32, uint32, []uint32, error) {
			return 0, 0, nil, fmt.Errorf("user: unknown user %s", name)
		}
		tn.applyMonitors(&next)
		if m := tn.mons.Load(); m.app != nil || m.cfg.Application.Enabled {
			t.Fatalf("a check whose user does not exist runs or is recorded as running: app %v, settings %+v", m.app, m.cfg.Application)
		}
		if !tn.logs.has(slog.LevelError, "a monitor change was not applied") {
			t.Error("the failed change is not logged")
		}
		// The operator creates the account; the same settings again.
		lookupUser = func(string) (uint32, uint32, []uint32, error) { return 65534, 65534, nil, nil }
		tn.applyMonitors(&next)
		if m := tn.mons.Load(); m.app == nil || !m.cfg.Application.Enabled {
			t.Errorf("the same settings again, now applicable: app %v, settings %+v", m.app, m.cfg.Application)
		}
	})
}
