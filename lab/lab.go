package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Lab is a built reference lab. Its methods are safe for concurrent use.
type Lab struct {
	spec Spec
	dir  string // <StateDir>/<Prefix>

	mu     sync.Mutex
	closed bool
	procs  []*proc
	cut    map[int]bool
	group  map[int]int       // Partition: node -> group (absent: on the lab's bridges)
	relays map[string]*relay // Impair: switch port -> its relay
}

// state is lab.json in the state directory: what Open and Cleanup need.
type state struct {
	Prefix  string    `json:"prefix"`
	Nodes   int       `json:"nodes"`
	Created time.Time `json:"created"`
	Pid     int       `json:"pid"` // the process that built the lab
}

// Build creates the lab of spec: namespaces, bridges, veth pairs, addresses,
// routes and sysctls. On error everything created so far is removed. The
// caller must Close the lab (tests: t.Cleanup(func() { l.Close() })).
// Build needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
func Build(ctx context.Context, spec Spec) (*Lab, error) {
	if err := spec.setDefaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: building network namespaces needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run as root")
	}
	l := &Lab{spec: spec, dir: filepath.Join(spec.StateDir, spec.Prefix), cut: map[int]bool{}, group: map[int]int{}, relays: map[string]*relay{}}
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			return nil, fmt.Errorf("lab prefix %q is in use (netns %s exists): choose another prefix or run `ringway lab down --prefix %s`", spec.Prefix, ns, spec.Prefix)
		}
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("lab state directory: %w", err)
	}
	st := state{Prefix: spec.Prefix, Nodes: spec.Nodes, Created: time.Now().UTC(), Pid: os.Getpid()}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(l.dir, "lab.json"), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("build lab %s: %w", spec.Prefix, err), l.Close())
	}
	return l, nil
}

// Open attaches to a lab built earlier (possibly by another process) from its
// state directory, e.g. for `ringway lab fail`. Close on an opened lab tears
// it down like Cleanup.
func Open(prefix, stateDir string) (*Lab, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	dir := filepath.Join(stateDir, prefix)
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, fmt.Errorf("open lab %q: %w (is it up? see `ringway lab status`)", prefix, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("open lab %q: %s: %w", prefix, filepath.Join(dir, "lab.json"), err)
	}
	spec := Spec{Prefix: st.Prefix, Nodes: st.Nodes, StateDir: stateDir}
	if err := spec.setDefaults(); err != nil {
		return nil, fmt.Errorf("open lab %q: %w", prefix, err)
	}
	l := &Lab{spec: spec, dir: dir, cut: map[int]bool{}, group: map[int]int{}, relays: map[string]*relay{}}
	for i := 1; i <= spec.Nodes; i++ {
		c, err := l.portsDetached(i)
		if err != nil {
			return nil, fmt.Errorf("open lab %q: %w", prefix, err)
		}
		l.cut[i] = c
	}
	return l, nil
}

// Prefix returns the namespace name prefix.
func (l *Lab) Prefix() string { return l.spec.Prefix }

// Nodes returns the number of gateway nodes.
func (l *Lab) Nodes() int { return l.spec.Nodes }

// Dir returns the lab's state directory (<StateDir>/<Prefix>): lab.json,
// pids, logs/. Callers may keep their own files there (node configs, keys);
// Close removes it.
func (l *Lab) Dir() string { return l.dir }

// Switch, Client and Server return namespace names.
func (l *Lab) Switch() string { return nsName(l.spec.Prefix, roleSwitch) }

// Client returns the client namespace name (203.0.113.10).
func (l *Lab) Client() string { return nsName(l.spec.Prefix, roleClient) }

// Server returns the server namespace name (198.51.100.10).
func (l *Lab) Server() string { return nsName(l.spec.Prefix, roleServer) }

// Node returns the namespace name of node i (1-based): <prefix>-n<i>.
func (l *Lab) Node(i int) string { return nsName(l.spec.Prefix, nodeRole(i)) }

// Namespaces returns every namespace name of the lab, switch first.
func (l *Lab) Namespaces() []string {
	out := []string{l.Switch(), l.Client(), l.Server()}
	for i := 1; i <= l.spec.Nodes; i++ {
		out = append(out, l.Node(i))
	}
	return out
}

// NetnsPath returns /run/netns/<ns>, for `ip netns exec` and setns.
func (l *Lab) NetnsPath(ns string) string { return filepath.Join(netnsDir, ns) }

// Netlink returns a netlink handle bound to namespace ns; the caller closes it.
func (l *Lab) Netlink(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromPath(l.NetnsPath(ns))
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	return nh, nil
}

// Do runs fn on an OS thread locked into namespace ns and restores the thread
// afterwards. Sockets opened in fn stay in ns for their whole life and may be
// used from any goroutine; goroutines started by fn do NOT run in ns.
func (l *Lab) Do(ns string, fn func() error) error {
	h, err := netns.GetFromPath(l.NetnsPath(ns))
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer h.Close()
	return inNetns(h, fn)
}

// SetSysctl writes a dotted sysctl key (net.ipv4.ip_forward) in namespace ns.
func (l *Lab) SetSysctl(ns, key, value string) error {
	return l.Do(ns, func() error { return writeSysctl(key, value) })
}

// Sysctl reads a dotted sysctl key in namespace ns.
func (l *Lab) Sysctl(ns, key string) (string, error) {
	var v string
	err := l.Do(ns, func() error {
		var err error
		v, err = readSysctl(key)
		return err
	})
	return v, err
}

// SNMP returns counter name of group ("Ip:", "Udp:", ...) in namespace
// ns's /proc/net/snmp (RFC 4293 ipSystemStats: FragCreates, ReasmReqds;
// Udp: RcvbufErrors, ...); an error when there is no such counter.
func (l *Lab) SNMP(ns, group, name string) (uint64, error) {
	var b []byte
	if err := l.Do(ns, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/snmp") // this thread's namespace
		return err
	}); err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != group {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("lab: no counter %s %s in %s's /proc/net/snmp", group, name, ns)
}

// AddAddr adds addr to interface dev in namespace ns.
func (l *Lab) AddAddr(ns, dev string, addr netip.Prefix) error {
	return l.withLink(ns, dev, func(h *netlink.Handle, link netlink.Link) error {
		if err := h.AddrAdd(link, nlAddr(addr)); err != nil {
			return fmt.Errorf("add %s to %s in %s: %w", addr, dev, ns, err)
		}
		return nil
	})
}

// DelAddr removes addr from interface dev in namespace ns.
func (l *Lab) DelAddr(ns, dev string, addr netip.Prefix) error {
	return l.withLink(ns, dev, func(h *netlink.Handle, link netlink.Link) error {
		if err := h.AddrDel(link, nlAddr(addr)); err != nil {
			return fmt.Errorf("remove %s from %s in %s: %w", addr, dev, ns, err)
		}
		return nil
	})
}

// Addrs returns the IPv4 addresses on dev in namespace ns, sorted.
func (l *Lab) Addrs(ns, dev string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := l.withLink(ns, dev, func(h *netlink.Handle, link netlink.Link) error {
		as, err := h.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("list addresses of %s in %s: %w", dev, ns, err)
		}
		for _, a := range as {
			ip, ok := netip.AddrFromSlice(a.IP.To4())
			if !ok {
				continue
			}
			ones, _ := a.Mask.Size()
			out = append(out, netip.PrefixFrom(ip, ones))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, err
}

// HardwareAddr returns the MAC of dev in namespace ns.
func (l *Lab) HardwareAddr(ns, dev string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := l.withLink(ns, dev, func(_ *netlink.Handle, link netlink.Link) error {
		mac = link.Attrs().HardwareAddr
		return nil
	})
	return mac, err
}

// Cut detaches node i's two switch ports from their bridges: the node's
// frames go nowhere and nothing reaches it. The veth stays up on both sides,
// so the node sees no carrier change and does not notice (a crash as seen
// from the network). Cutting a cut node is a no-op; a cut node keeps its
// partition group and its relays (Heal puts it back where it was).
func (l *Lab) Cut(i int) error {
	return l.setCut(i, true)
}

// Heal reattaches node i's switch ports (undoes Cut): to its partition
// group's bridges, through its relays if it is impaired.
func (l *Lab) Heal(i int) error {
	return l.setCut(i, false)
}

func (l *Lab) setCut(i int, cut bool) error {
	if err := l.checkNode(i); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return err
	}
	defer h.Close()
	was := l.cut[i]
	l.cut[i] = cut
	if err := l.place(h, i); err != nil {
		l.cut[i] = was
		l.place(h, i) // back where it was, as far as it goes; the first error says why
		op := "heal"
		if cut {
			op = "cut"
		}
		return fmt.Errorf("%s node %d: %w", op, i, err)
	}
	return nil
}

// place puts node i's two switch ports where the lab's state says: on the
// bridges of its partition group (Partition), through a relay where a side
// is impaired (Impair: the port leaves the bridge, the relay's -b veth takes
// its place), and on no bridge while it is cut (Cut). Every operation that
// moves a port changes that state and calls place, so they compose: a cut
// partitioned node heals into its group, cutting an impaired node cuts its
// relay's side too. l.mu must be held.
func (l *Lab) place(h *netlink.Handle, i int) error {
	for _, side := range []string{"ext", "int"} {
		port := SwitchPort(i, side)
		onBridge := port
		if r := l.relays[port]; r != nil {
			onBridge = r.bridgeVeth()
			if err := detach(h, port); err != nil {
				return err
			}
		}
		var err error
		if l.cut[i] {
			err = detach(h, onBridge)
		} else {
			err = attach(h, onBridge, partitionBridge(side, l.group[i]))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// SetLink sets node i's switch port on side ("ext" or "int") up or down.
// Unlike Cut, the node sees it: its NIC loses carrier (a cable pulled, the
// case for NIC link monitors).
func (l *Lab) SetLink(i int, side string, up bool) error {
	if err := l.checkNode(i); err != nil {
		return err
	}
	if side != "ext" && side != "int" {
		return fmt.Errorf("node %d: side %q: want \"ext\" or \"int\"", i, side)
	}
	return l.withLink(l.Switch(), SwitchPort(i, side), func(h *netlink.Handle, link netlink.Link) error {
		set := h.LinkSetDown
		if up {
			set = h.LinkSetUp
		}
		if err := set(link); err != nil {
			return fmt.Errorf("set switch port %s %s: %w", SwitchPort(i, side), onOff(up), err)
		}
		return nil
	})
}

// IsCut reports whether node i is cut off (as left by Cut/Heal).
func (l *Lab) IsCut(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut[i]
}

func (l *Lab) portsDetached(i int) (bool, error) {
	h, err := l.Netlink(l.Switch())
	if err != nil {
		return false, err
	}
	defer h.Close()
	port, err := h.LinkByName(SwitchPort(i, "ext"))
	if err != nil {
		return false, fmt.Errorf("switch port %s: %w", SwitchPort(i, "ext"), err)
	}
	return port.Attrs().MasterIndex == 0, nil
}

func (l *Lab) checkNode(i int) error {
	if i < 1 || i > l.spec.Nodes {
		return fmt.Errorf("node %d: the lab has nodes 1..%d", i, l.spec.Nodes)
	}
	return nil
}

func (l *Lab) withLink(ns, dev string, fn func(*netlink.Handle, netlink.Link) error) error {
	h, err := l.Netlink(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("interface %s in %s: %w", dev, ns, err)
	}
	return fn(h, link)
}

func attach(h *netlink.Handle, port, bridge string) error {
	p, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("switch port %s: %w", port, err)
	}
	br, err := h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if p.Attrs().MasterIndex == br.Attrs().Index {
		return nil // there already (place puts every port of a node)
	}
	if err := h.LinkSetMaster(p, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridge, err)
	}
	return nil
}

func detach(h *netlink.Handle, port string) error {
	p, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("switch port %s: %w", port, err)
	}
	if p.Attrs().MasterIndex == 0 {
		return nil
	}
	if err := h.LinkSetNoMaster(p); err != nil {
		return fmt.Errorf("detach %s: %w", port, err)
	}
	return nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
}

// Close stops the processes started with Start (SIGTERM, then SIGKILL after
// Spec.StopGrace), kills anything else left in the lab's namespaces, deletes
// the namespaces (which removes every veth and bridge) and the state
// directory. It is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	l.procs = nil
	relays := l.relays
	l.relays = map[string]*relay{}
	l.mu.Unlock()
	for _, r := range relays {
		r.close()
	}
	stopProcs(procs, l.spec.StopGrace)
	return teardown(l.spec.Prefix, l.dir)
}
