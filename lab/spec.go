package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"time"
)

// Addresses and names of the reference lab (DESIGN.md "The reference lab").
var (
	ExtPrefix  = netip.MustParsePrefix("203.0.113.0/24")  // external subnet, bridge br-ext
	IntPrefix  = netip.MustParsePrefix("198.51.100.0/24") // internal subnet, bridge br-int
	ClientAddr = netip.MustParseAddr("203.0.113.10")      // the client, on the external subnet
	ServerAddr = netip.MustParseAddr("198.51.100.10")     // the server, on the internal subnet
	ExtGateway = netip.MustParseAddr("203.0.113.91")      // the client's default gateway (a VIP)
	IntGateway = netip.MustParseAddr("198.51.100.91")     // the server's default gateway (a VIP)
)

// Interface names. Nodes have ExtIf and IntIf; the client and server have HostIf.
// Inside the switch namespace the bridges are BridgeExt and BridgeInt and a
// node's ports are SwitchPort(i, "ext") / SwitchPort(i, "int").
const (
	ExtIf     = "ext0"
	IntIf     = "int0"
	HostIf    = "eth0"
	BridgeExt = "br-ext"
	BridgeInt = "br-int"
)

// MaxNodes is the largest lab: node i has address .i on both subnets for
// i ≤ 9 and .(i+10) for i ≥ 10 (.10 belongs to the client and the server,
// .91-.94 are the VIPs), as DESIGN.md "The reference lab" lays out.
const MaxNodes = 64

// hostByte is node i's last address byte on both subnets.
func hostByte(i int) byte {
	if i <= 9 {
		return byte(i)
	}
	return byte(i + 10)
}

// DefaultStateDir holds one directory per lab: lab.json, pids, logs.
const DefaultStateDir = "/run/ringway-lab"

// NodeExt returns node i's primary address on the external subnet
// (203.0.113.i, or .i+10 for i ≥ 10).
func NodeExt(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, hostByte(i)}) }

// NodeInt returns node i's primary address on the internal subnet
// (198.51.100.i, or .i+10 for i ≥ 10).
func NodeInt(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, hostByte(i)}) }

// VIPs returns the lab's VIPs .91-.94 on the given subnet prefix (ExtPrefix or IntPrefix).
func VIPs(subnet netip.Prefix) []netip.Addr {
	b := subnet.Addr().As4()
	out := make([]netip.Addr, 0, 4)
	for i := byte(91); i <= 94; i++ {
		b[3] = i
		out = append(out, netip.AddrFrom4(b))
	}
	return out
}

// Spec describes a lab to build. The zero value is a 3-node lab with a random prefix.
type Spec struct {
	// Prefix starts every namespace name (<Prefix>-sw, -client, -server, -n1..)
	// so two labs coexist. Letters, digits, '_' and '-', at most 24 characters.
	// Default: "rw" + 4 random hex digits.
	Prefix string
	// Nodes is the number of gateway nodes, 1..MaxNodes. Default: 3.
	Nodes int
	// Node returns the options of node i (1-based). Nil means DefaultNode for all.
	Node func(i int) NodeOptions `json:"-"`
	// StateDir is the parent of the lab's state directory (<StateDir>/<Prefix>).
	// Default: DefaultStateDir.
	StateDir string
	// WireChecksums turns off checksum and segmentation offloads
	// (tx-checksumming, scatter-gather, TSO, GSO) on the client's and the
	// server's eth0, so every frame they send carries a complete checksum and
	// fits the MTU, as on a real wire. With veth defaults the nodes receive
	// CHECKSUM_PARTIAL frames and 64 KB TSO super-frames, which a userspace
	// router must then handle (DESIGN.md "Pitfalls").
	WireChecksums bool
	// StopGrace is how long Close waits after SIGTERM before SIGKILL for the
	// processes started with Start. Default: 2 s.
	StopGrace time.Duration
}

// NodeOptions changes how one node namespace is built.
type NodeOptions struct {
	// NoPrimary leaves ext0/int0 without the primary addresses .i (they are
	// still up, with IPv6 disabled).
	NoPrimary bool
	// Forward sets net.ipv4.ip_forward=1 (kernel router). Default: 0, as
	// ringway wants it (DESIGN.md "The data plane").
	Forward bool
	// Addrs are extra addresses; each goes on ext0 or int0, whichever subnet
	// contains it (e.g. 203.0.113.91/24 for a kernel-forwarding gateway).
	Addrs []netip.Prefix
	// Sysctls are extra settings written in the node's namespace, dotted keys
	// as in sysctl(8): {"net.ipv4.conf.ext0.arp_ignore": "1"}.
	Sysctls map[string]string
}

// DefaultNode is a ringway node: primary addresses, ip_forward=0.
func DefaultNode(int) NodeOptions { return NodeOptions{} }

// KernelGateway is a node that routes with the Linux kernel and holds the
// gateway VIPs .91 on both NICs: the reference for kernel forwarding and for
// workload tests that need no ringway.
func KernelGateway(int) NodeOptions {
	return NodeOptions{
		Forward: true,
		Addrs: []netip.Prefix{
			netip.PrefixFrom(ExtGateway, ExtPrefix.Bits()),
			netip.PrefixFrom(IntGateway, IntPrefix.Bits()),
		},
	}
}

// KernelRouter is a node with ip_forward=1 and its primary addresses only:
// the base for keepalived, which adds the VIPs itself.
func KernelRouter(int) NodeOptions { return NodeOptions{Forward: true} }

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,24}$`)

func (s *Spec) setDefaults() error {
	if s.Prefix == "" {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("random lab prefix: %w", err)
		}
		s.Prefix = "rw" + hex.EncodeToString(b[:])
	}
	if s.Nodes == 0 {
		s.Nodes = 3
	}
	if s.StateDir == "" {
		s.StateDir = DefaultStateDir
	}
	if s.StopGrace == 0 {
		s.StopGrace = 2 * time.Second
	}
	return s.validate()
}

func (s *Spec) validate() error {
	if !prefixRE.MatchString(s.Prefix) {
		return fmt.Errorf("lab prefix %q: use 1-24 letters, digits, '_' or '-'", s.Prefix)
	}
	if s.Nodes < 1 || s.Nodes > MaxNodes {
		return fmt.Errorf("lab nodes %d: must be 1..%d (node i has address .i, or .i+10 from n10 on; .10 is the client/server, .91-.94 the VIPs)", s.Nodes, MaxNodes)
	}
	if s.StopGrace < 0 {
		return fmt.Errorf("lab stop grace %v: must not be negative", s.StopGrace)
	}
	return nil
}

func (s *Spec) node(i int) NodeOptions {
	if s.Node == nil {
		return DefaultNode(i)
	}
	return s.Node(i)
}

// Namespace roles after "<prefix>-".
const (
	roleSwitch = "sw"
	roleClient = "client"
	roleServer = "server"
)

func nsName(prefix, role string) string { return prefix + "-" + role }

func nodeRole(i int) string { return fmt.Sprintf("n%d", i) }

// SwitchPort names node i's port on a switch bridge: side is "ext" or "int".
func SwitchPort(i int, side string) string { return fmt.Sprintf("n%d-%s", i, side) }

var roleRE = regexp.MustCompile(`^(sw|client|server|n[0-9]+)$`)

func sortStrings(s []string) { sort.Strings(s) }
