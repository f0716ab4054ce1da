package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// needRoot skips tests that build network namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab tests build network namespaces: run as root (CI does)")
	}
}

// testLab builds a lab with a unique prefix and a private state directory,
// torn down by t.Cleanup even when the test fails.
func testLab(t *testing.T, spec Spec) *Lab {
	t.Helper()
	needRoot(t)
	if spec.Prefix == "" {
		spec.Prefix = "labt" + randHex(t)
	}
	if spec.StateDir == "" {
		spec.StateDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Build(ctx, spec)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func randHex(t *testing.T) string {
	var s Spec
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	return s.Prefix[2:]
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		spec Spec
		ok   bool
	}{
		{Spec{}, true},
		{Spec{Prefix: "a", Nodes: MaxNodes}, true},
		{Spec{Prefix: "bad/name"}, false},
		{Spec{Prefix: "waytoolongprefixforanamespace"}, false},
		{Spec{Nodes: MaxNodes + 1}, false},
		{Spec{Nodes: -1}, false},
	}
	for _, tt := range tests {
		err := tt.spec.setDefaults()
		if (err == nil) != tt.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tt.spec, err, tt.ok)
		}
	}
	var s Spec
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if s.Nodes != 3 || len(s.Prefix) != 6 || s.StateDir != DefaultStateDir {
		t.Errorf("defaults = %+v, want 3 nodes, prefix rwXXXX, %s", s, DefaultStateDir)
	}
}

func TestNodeAddresses(t *testing.T) {
	// DESIGN.md "The reference lab": .i up to n9, .i+10 from n10 on, so no
	// node collides with the client/server (.10) or the VIPs (.91-.94).
	for _, tt := range []struct {
		i        int
		ext, int string
	}{{1, "203.0.113.1", "198.51.100.1"}, {9, "203.0.113.9", "198.51.100.9"}, {10, "203.0.113.20", "198.51.100.20"}, {64, "203.0.113.74", "198.51.100.74"}} {
		if got := NodeExt(tt.i).String(); got != tt.ext {
			t.Errorf("NodeExt(%d) = %s, want %s", tt.i, got, tt.ext)
		}
		if got := NodeInt(tt.i).String(); got != tt.int {
			t.Errorf("NodeInt(%d) = %s, want %s", tt.i, got, tt.int)
		}
	}
	seen := map[netip.Addr]int{ClientAddr: 0, ExtGateway: 0}
	for _, v := range VIPs(ExtPrefix) {
		seen[v] = 0
	}
	for i := 1; i <= MaxNodes; i++ {
		if j, dup := seen[NodeExt(i)]; dup {
			t.Errorf("node %d's address %s is taken (by node %d, 0 = client or VIP)", i, NodeExt(i), j)
		}
		seen[NodeExt(i)] = i
	}
}

func TestNames(t *testing.T) {
	l := &Lab{spec: Spec{Prefix: "p", Nodes: 2}}
	want := []string{"p-sw", "p-client", "p-server", "p-n1", "p-n2"}
	if d := cmp.Diff(want, l.Namespaces()); d != "" {
		t.Errorf("Namespaces (-want +got):\n%s", d)
	}
	if got := matchLab("p", []string{"p-sw", "p-n12", "p-x", "pp-sw", "p-sw-2", "q-client", "p-client"}); !cmp.Equal(got, []string{"p-sw", "p-n12", "p-client"}) {
		t.Errorf("prefix match = %v", got)
	}
	if d := cmp.Diff([]netip.Addr{netip.MustParseAddr("198.51.100.91"), netip.MustParseAddr("198.51.100.92"), netip.MustParseAddr("198.51.100.93"), netip.MustParseAddr("198.51.100.94")}, VIPs(IntPrefix), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("VIPs (-want +got):\n%s", d)
	}
}

func TestTopology(t *testing.T) {
	l := testLab(t, Spec{Nodes: 3})
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	// Addresses.
	pfx := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	checks := []struct {
		ns, dev string
		want    []netip.Prefix
	}{
		{l.Client(), HostIf, []netip.Prefix{pfx("203.0.113.10/24")}},
		{l.Server(), HostIf, []netip.Prefix{pfx("198.51.100.10/24")}},
		{l.Node(1), ExtIf, []netip.Prefix{pfx("203.0.113.1/24")}},
		{l.Node(1), IntIf, []netip.Prefix{pfx("198.51.100.1/24")}},
		{l.Node(3), ExtIf, []netip.Prefix{pfx("203.0.113.3/24")}},
		{l.Node(3), IntIf, []netip.Prefix{pfx("198.51.100.3/24")}},
	}
	for _, c := range checks {
		got, err := l.Addrs(c.ns, c.dev)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
			t.Errorf("%s %s addresses (-want +got):\n%s", c.ns, c.dev, d)
		}
	}
	// Default routes of client and server.
	for _, c := range []struct {
		ns string
		gw netip.Addr
	}{{l.Client(), ExtGateway}, {l.Server(), IntGateway}} {
		h, err := l.Netlink(c.ns)
		if err != nil {
			t.Fatal(err)
		}
		routes, err := h.RouteList(nil, netlink.FAMILY_V4)
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(c.gw.AsSlice()) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no default route via %s in %v", c.ns, c.gw, routes)
		}
	}
	// Bridges and their ports.
	h, err := l.Netlink(l.Switch())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ports := map[string][]string{}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	byIndex := map[int]string{}
	for _, k := range links {
		byIndex[k.Attrs().Index] = k.Attrs().Name
	}
	for _, k := range links {
		if m := k.Attrs().MasterIndex; m != 0 {
			ports[byIndex[m]] = append(ports[byIndex[m]], k.Attrs().Name)
		}
	}
	wantPorts := map[string][]string{
		BridgeExt: {"client", "n1-ext", "n2-ext", "n3-ext"},
		BridgeInt: {"server", "n1-int", "n2-int", "n3-int"},
	}
	if d := cmp.Diff(wantPorts, ports, sortSlices); d != "" {
		t.Errorf("bridge ports (-want +got):\n%s", d)
	}
	// Sysctls: a ringway node does not forward, IPv6 is off.
	for _, kv := range [][3]string{
		{l.Node(1), "net.ipv4.ip_forward", "0"},
		{l.Node(1), "net.ipv6.conf.ext0.disable_ipv6", "1"},
		{l.Client(), "net.ipv6.conf.eth0.disable_ipv6", "1"},
	} {
		if got, err := l.Sysctl(kv[0], kv[1]); err != nil || got != kv[2] {
			t.Errorf("%s %s = %q, %v; want %q", kv[0], kv[1], got, err, kv[2])
		}
	}

	// The client reaches node 1's primary address; Cut stops it, Heal restores.
	if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Fatalf("client -> 203.0.113.1 before cut: %v", err)
	}
	if err := l.Cut(1); err != nil {
		t.Fatal(err)
	}
	if !l.IsCut(1) {
		t.Error("IsCut(1) = false after Cut")
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err == nil {
		t.Fatal("client reached 203.0.113.1 while node 1 is cut")
	}
	// The node does not notice: its NIC keeps its carrier.
	nh, err := l.Netlink(l.Node(1))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := nh.LinkByName(ExtIf)
	nh.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ext.Attrs().OperState != netlink.OperUp {
		t.Errorf("node 1 ext0 operstate = %v during a cut, want up (the node must not notice)", ext.Attrs().OperState)
	}
	// Node 2 is not affected by node 1's cut.
	if err := udpExchange(l, l.Client(), NodeExt(2)); err != nil {
		t.Errorf("client -> 203.0.113.2 while node 1 is cut: %v", err)
	}
	// A pulled cable, unlike a cut, is visible to the node.
	if err := l.SetLink(2, "ext", false); err != nil {
		t.Fatal(err)
	}
	if st := operState(t, l, l.Node(2), ExtIf); st == netlink.OperUp {
		t.Errorf("node 2 ext0 operstate = %v with its switch port down, want not up", st)
	}
	if err := l.SetLink(2, "ext", true); err != nil {
		t.Fatal(err)
	}
	waitOper(t, l, l.Node(2), ExtIf, netlink.OperUp)
	if err := udpExchange(l, l.Client(), NodeExt(2)); err != nil {
		t.Errorf("client -> 203.0.113.2 after its port came back up: %v", err)
	}
	// Open sees the cut (as `ringway lab heal` in another process would).
	o, err := Open(l.Prefix(), filepath.Dir(l.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	if !o.IsCut(1) || o.IsCut(2) {
		t.Errorf("Open: IsCut(1)=%v IsCut(2)=%v, want true false", o.IsCut(1), o.IsCut(2))
	}
	if err := o.Heal(1); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(l, l.Client(), NodeExt(1)); err != nil {
		t.Fatalf("client -> 203.0.113.1 after heal: %v", err)
	}
}

var sortSlices = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	sortStrings(out)
	return out
})

// udpExchange runs a UDP echo server on addr's node... it sends a datagram
// from ns to a UDP echo socket bound to addr in the node that owns it and
// waits for the echo.
func udpExchange(l *Lab, from string, to netip.Addr) error {
	node := int(to.As4()[3])
	var srv *net.UDPConn
	if err := l.Do(l.Node(node), func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: to.AsSlice(), Port: 7})
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, a, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], a)
		}
	}()
	var c *net.UDPConn
	if err := l.Do(from, func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: to.AsSlice(), Port: 7})
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	// A few tries: the first may wait for ARP.
	for try := 0; try < 5; try++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == "ping" {
			return nil
		}
	}
	return errors.New("no echo within 1 s")
}

func TestCloseLeavesNothing(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	prefix := "labc" + randHex(t)
	l, err := Build(context.Background(), Spec{Prefix: prefix, Nodes: 2, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Cleanup(prefix, dir) })
	sleep := exec.Command("sleep", "60")
	if err := l.Start(l.Node(1), sleep); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sleep.Wait(); err == nil {
		t.Error("the process started in node 1 exited cleanly, want killed by Close")
	}
	assertGone(t, prefix, dir)
}

func TestCleanupAfterCrash(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	prefix := "labx" + randHex(t)
	l, err := Build(context.Background(), Spec{Prefix: prefix, Nodes: 1, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// A process left running by the "crashed" run, in the server namespace,
	// started by hand (not tracked by the Lab) as a child of a shell.
	sh := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := l.Do(l.Server(), sh.Start); err != nil {
		t.Fatal(err)
	}
	// Drop l without Close (a crash), then clean up by prefix as `lab down` would.
	if err := Cleanup(prefix, dir); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err == nil {
		t.Error("process in the crashed lab survived Cleanup")
	}
	assertGone(t, prefix, dir)
	if err := Cleanup(prefix, dir); err != nil {
		t.Errorf("second Cleanup: %v, want nil (nothing left)", err)
	}
}

// assertGone checks /run/netns, the host's links and the state directory.
func assertGone(t *testing.T, prefix, dir string) {
	t.Helper()
	if left := labNamespaces(prefix); len(left) > 0 {
		t.Errorf("namespaces left in /run/netns: %v", left)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range links {
		if name := k.Attrs().Name; len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			t.Errorf("host link %s left behind", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s left behind (stat: %v)", filepath.Join(dir, prefix), err)
	}
	for _, p := range List(dir) {
		if p == prefix {
			t.Errorf("List still shows %s", prefix)
		}
	}
}

func TestStartSignal(t *testing.T) {
	l := testLab(t, Spec{Nodes: 1})
	cmd := exec.Command("sh", "-c", "echo started; exec sleep 60")
	if err := l.Start(l.Node(1), cmd); err != nil {
		t.Fatal(err)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	// The output goes to the lab's log.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(l.LogPath(l.Node(1), "sh"))
		if err == nil && string(b) == "started\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s = %q, %v; want \"started\\n\"", l.LogPath(l.Node(1), "sh"), b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids, err := l.Pids(l.Node(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("Pids(n1) = %v, want [%d]", pids, cmd.Process.Pid)
	}
	if other, _ := l.Pids(l.Client()); len(other) != 0 {
		t.Errorf("Pids(client) = %v, want none", other)
	}
	n, err := l.Signal(l.Node(1), syscall.SIGKILL)
	if err != nil || n != 1 {
		t.Fatalf("Signal = %d, %v; want 1 process", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitGone(ctx, l.Node(1)); err != nil {
		t.Fatal(err)
	}
	if err := <-waitDone; err == nil {
		t.Error("process exited cleanly after SIGKILL")
	}
	pidsFile, err := os.ReadFile(filepath.Join(l.Dir(), "pids"))
	if err != nil || !strings.Contains(string(pidsFile), l.Node(1)) {
		t.Errorf("pids file = %q, %v; want a line for %s", pidsFile, err, l.Node(1))
	}
}

func TestWireChecksums(t *testing.T) {
	l := testLab(t, Spec{Nodes: 1, WireChecksums: true})
	for _, o := range []Offload{OffloadTxChecksum, OffloadTSO} {
		for _, ns := range []string{l.Client(), l.Server()} {
			on, err := l.OffloadOn(ns, HostIf, o)
			if err != nil {
				t.Fatal(err)
			}
			if on {
				t.Errorf("%s on %s eth0 is on, want off with WireChecksums", o, ns)
			}
		}
	}
	// Nodes keep the veth defaults: the router decides for its own NICs.
	if on, err := l.OffloadOn(l.Node(1), ExtIf, OffloadTxChecksum); err != nil || !on {
		t.Errorf("node ext0 tx-checksumming = %v, %v; want the veth default (on)", on, err)
	}
	if err := l.SetOffload(l.Node(1), ExtIf, OffloadGRO, false); err != nil {
		t.Fatal(err)
	}
	if on, err := l.OffloadOn(l.Node(1), ExtIf, OffloadGRO); err != nil || on {
		t.Errorf("GRO after SetOffload(off) = %v, %v", on, err)
	}
	if err := l.SetOffload(l.Node(1), ExtIf, "warp-drive", true); err == nil {
		t.Error("unknown offload accepted")
	}
}

func operState(t *testing.T, l *Lab, ns, dev string) netlink.LinkOperState {
	t.Helper()
	h, err := l.Netlink(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return link.Attrs().OperState
}

func waitOper(t *testing.T, l *Lab, ns, dev string, want netlink.LinkOperState) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for operState(t, l, ns, dev) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s operstate = %v, want %v", ns, dev, operState(t, l, ns, dev), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
