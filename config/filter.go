package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Filter configures the stateful filter (DESIGN.md "The stateful filter"):
// connection tracking in the data plane, rules that decide the first packet
// of a flow, and the services of the node's own OS reachable on VIPs. With
// Enabled false (the default, and what an absent filter section means)
// every packet is forwarded statelessly, as before the filter existed, and
// Rules and Local are ignored.
type Filter struct {
	Enabled bool `yaml:"enabled"`
	// Default is the verdict for a new flow that no rule matches.
	Default Action `yaml:"default"`
	// Rules are tried in order, first match wins; they decide a flow's
	// first packet only. Later packets of an accepted flow pass, in both
	// directions, by the flow's entry.
	Rules []Rule `yaml:"rules"`
	// Local lists the services of the node's own OS reachable on VIPs
	// (through the TUN device). Everything else addressed to a VIP is
	// dropped; ICMP echo to a VIP is answered by the router itself.
	Local []LocalService `yaml:"local"`
	// MaxFlows caps the flow table; at the cap new flows are refused (and
	// counted) while existing ones continue.
	MaxFlows int `yaml:"max_flows"`
	// MaxFragments caps the IPv4 fragment tracker (first fragments whose
	// verdict later fragments follow).
	MaxFragments int `yaml:"max_fragments"`
	// Defer is how long, at most, the first packet of a new flow is held
	// while its register travels to the flow's authoritative node and its
	// ack comes back (pfsync's defer), so the flow's first reply cannot
	// reach that node before the register. 0: not held. Only used with
	// more than one node.
	Defer time.Duration `yaml:"defer"`
	// Replication replicates every flow's state to its authoritative node
	// and standby, so a node's loss breaks no connection (docs/forward.md).
	// Turn it off only to measure what it costs.
	Replication bool `yaml:"replication"`
	// FillTimeout bounds a joining or restarted node's fill: the copies
	// of the state of the rows it will own, which it waits for before it
	// is authoritative for any (docs/forward.md "The fill"). When they
	// have not all come by then, it takes its rows anyway, and logs it.
	FillTimeout time.Duration `yaml:"fill_timeout"`
	// Timeouts are the idle timeouts of tracked flows by state.
	Timeouts Timeouts `yaml:"timeouts"`
}

// Timeouts are how long a tracked flow may stay idle in each state before
// it is forgotten. The defaults are the Linux kernel's nf_conntrack ones
// (net.netfilter.nf_conntrack_*_timeout*, kernel 6.x).
type Timeouts struct {
	TCPSynSent     time.Duration `yaml:"tcp_syn_sent"`
	TCPSynRecv     time.Duration `yaml:"tcp_syn_recv"`
	TCPEstablished time.Duration `yaml:"tcp_established"`
	TCPFinWait     time.Duration `yaml:"tcp_fin_wait"`
	TCPCloseWait   time.Duration `yaml:"tcp_close_wait"`
	TCPLastAck     time.Duration `yaml:"tcp_last_ack"`
	TCPTimeWait    time.Duration `yaml:"tcp_time_wait"`
	TCPClose       time.Duration `yaml:"tcp_close"`
	// UDP is the timeout of a UDP flow that has seen packets in one
	// direction only (the kernel's unreplied nf_conntrack_udp_timeout).
	UDP time.Duration `yaml:"udp"`
	// UDPStream is the timeout of a UDP flow that has seen replies (the
	// kernel's assured nf_conntrack_udp_timeout_stream).
	UDPStream time.Duration `yaml:"udp_stream"`
	// ICMP is the idle timeout of an ICMP echo flow.
	ICMP time.Duration `yaml:"icmp"`
}

// Rule is one filter rule: a flow whose first packet matches From, To,
// Proto and Ports gets Action.
type Rule struct {
	// Name identifies the rule in messages, metrics and the flow table;
	// unique when set. "" is allowed: the rule is then called "rule N".
	Name string `yaml:"name"`
	// From and To are the source and destination sets; a packet matches
	// when its address lies in any item. Empty (the key absent) = any.
	From []Net `yaml:"from"`
	To   []Net `yaml:"to"`
	// Proto is the IP protocol; ProtoAny (the default) matches every one.
	Proto Proto `yaml:"proto"`
	// Ports are destination port ranges, for tcp and udp only; empty =
	// every port.
	Ports  []PortRange `yaml:"ports"`
	Action Action      `yaml:"action"` // required
}

// LocalService is a service of the node's own OS reachable on every VIP.
type LocalService struct {
	Proto Proto       `yaml:"proto"` // ProtoTCP or ProtoUDP
	Ports []PortRange `yaml:"ports"` // required
}

// Forward configures the inter-node tunnel that carries packets of a flow
// to the node holding its state (DESIGN.md "Symmetric routing").
type Forward struct {
	// Port is the tunnel's UDP port on every primary address, the same on
	// every node; it must differ from ring.port.
	Port int `yaml:"port"`
}

// FilterEnabled reports whether the stateful filter is on. When it is not
// (the filter section absent or enabled: false), forwarding is stateless
// and Filter.Rules and Filter.Local are to be ignored.
func (c *Config) FilterEnabled() bool { return c.Filter.Enabled }

// Label is how rule i (0-based) of a filter is called in messages: its
// name, or "rule N" (1-based) when it has none.
func (r Rule) Label(i int) string {
	if r.Name != "" {
		return fmt.Sprintf("%q", r.Name)
	}
	return fmt.Sprintf("rule %d", i+1)
}

// FromPrefixes is the source set of r as prefixes: 0.0.0.0/0 when From is
// empty.
func (r Rule) FromPrefixes() []netip.Prefix { return prefixesOf(r.From) }

// ToPrefixes is the destination set of r as prefixes: 0.0.0.0/0 when To is
// empty.
func (r Rule) ToPrefixes() []netip.Prefix { return prefixesOf(r.To) }

var anyPrefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)

func prefixesOf(ns []Net) []netip.Prefix {
	if len(ns) == 0 {
		return []netip.Prefix{anyPrefix}
	}
	out := make([]netip.Prefix, len(ns))
	for i, n := range ns {
		out[i] = n.Prefix
	}
	return out
}

// Net is one item of a rule's from or to list as written: a subnet name
// (Name set, Prefix the subnet's prefix once resolved), an IPv4 prefix (a
// bare address means /32) or any (0.0.0.0/0).
type Net struct {
	// Name is the subnet name when the item was written as one; "" for a
	// prefix or any. It is kept for messages.
	Name string
	// Prefix is the set of addresses. Parse and Validate resolve a subnet
	// name to its subnet's prefix.
	Prefix netip.Prefix
}

// String returns the config spelling: the subnet name, any, or the prefix.
func (n Net) String() string {
	switch {
	case n.Name != "":
		return n.Name
	case n.Prefix == anyPrefix:
		return "any"
	}
	return n.Prefix.String()
}

// IsAny reports whether n matches every address.
func (n Net) IsAny() bool { return n.Prefix == anyPrefix }

// MarshalText implements encoding.TextMarshaler.
func (n Net) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText accepts any, an IPv4 prefix, an IPv4 address (a /32) or a
// subnet name; the name is resolved later, against the file's subnets.
func (n *Net) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "any":
		*n = Net{Prefix: anyPrefix}
		return nil
	case s == "":
		return fmt.Errorf("an empty entry; write a subnet name, a prefix such as 192.0.2.0/24, or any")
	case looksNumeric(s):
		if !strings.Contains(s, "/") {
			a, err := parseAddr(s)
			if err != nil {
				return fmt.Errorf("%v, a prefix such as 192.0.2.0/24, a subnet name or any", strings.TrimSuffix(err.Error(), " such as 192.0.2.1"))
			}
			*n = Net{Prefix: netip.PrefixFrom(a, 32)}
			return nil
		}
		p, err := parsePrefix(s)
		if err != nil {
			return err
		}
		*n = Net{Prefix: p}
		return nil
	}
	*n = Net{Name: s}
	return nil
}

// looksNumeric reports whether s is written like an address or prefix
// (digits and dots, or with a slash or a colon) rather than like a subnet
// name.
func looksNumeric(s string) bool {
	if strings.ContainsAny(s, "/:") {
		return true
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r == '.') {
			return false
		}
	}
	return true
}

// PortRange is an inclusive range of TCP or UDP ports, First ≤ Last, both
// 1-65535; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Contains reports whether port p lies in r.
func (r PortRange) Contains(p uint16) bool { return r.First <= p && p <= r.Last }

// String returns the config spelling: "22" or "7000-7002".
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// MarshalText implements encoding.TextMarshaler.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText accepts a port "22" or a range "7000-7002" (spaces around
// the dash allowed).
func (r *PortRange) UnmarshalText(b []byte) error {
	s := string(b)
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := parsePort(strings.TrimSpace(lo), s)
	if err != nil {
		return err
	}
	last := first
	if isRange {
		if last, err = parsePort(strings.TrimSpace(hi), s); err != nil {
			return err
		}
	}
	if last < first {
		return fmt.Errorf("port range %q runs backwards; write %d-%d", s, last, first)
	}
	*r = PortRange{First: first, Last: last}
	return nil
}

func parsePort(s, whole string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("port %q is not a port or a range; write a number from 1 to 65535, or a range such as 7000-7002", whole)
	case n == 0 || n > 65535:
		return 0, fmt.Errorf("port %s is out of range; write a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// Proto is the IP protocol a rule or local service matches. The values are
// the IANA protocol numbers, so the data plane can compare them with the
// IPv4 header's protocol field; ProtoAny (0) matches every protocol.
type Proto uint8

// The protocols a filter rule can name.
const (
	ProtoAny  Proto = 0
	ProtoICMP Proto = 1
	ProtoTCP  Proto = 6
	ProtoUDP  Proto = 17
)

// String returns the config spelling.
func (p Proto) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// HasPorts reports whether packets of p carry ports (tcp and udp).
func (p Proto) HasPorts() bool { return p == ProtoTCP || p == ProtoUDP }

// MarshalText implements encoding.TextMarshaler.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts tcp, udp, icmp or any.
func (p *Proto) UnmarshalText(b []byte) error {
	switch string(b) {
	case "any":
		*p = ProtoAny
	case "icmp":
		*p = ProtoICMP
	case "tcp":
		*p = ProtoTCP
	case "udp":
		*p = ProtoUDP
	default:
		return fmt.Errorf("proto %q is not known; write tcp, udp, icmp or any", b)
	}
	return nil
}

// Action is a rule's verdict for a new flow.
type Action uint8

// The verdicts. The zero Action is unset: a rule must say which it takes.
const (
	ActionDrop Action = iota + 1
	ActionAccept
)

// String returns the config spelling.
func (a Action) String() string {
	switch a {
	case ActionDrop:
		return "drop"
	case ActionAccept:
		return "accept"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText accepts accept or drop.
func (a *Action) UnmarshalText(b []byte) error {
	switch string(b) {
	case "accept":
		*a = ActionAccept
	case "drop":
		*a = ActionDrop
	default:
		return fmt.Errorf("verdict %q is not known; write accept or drop", b)
	}
	return nil
}

// resolveFilter sets the Prefix of every from/to item written as a subnet
// name to that subnet's prefix; unknown names are left unresolved (invalid
// Prefix) for validate to report.
func (c *Config) resolveFilter() {
	for i := range c.Filter.Rules {
		r := &c.Filter.Rules[i]
		for _, list := range [][]Net{r.From, r.To} {
			for j := range list {
				if list[j].Name == "" {
					continue
				}
				list[j].Prefix = netip.Prefix{}
				if k := c.subnetByName(list[j].Name); k >= 0 {
					list[j].Prefix = c.Subnets[k].Prefix
				}
			}
		}
	}
}

// subnetByName is the index of the subnet called name, or -1.
func (c *Config) subnetByName(name string) int {
	for i, s := range c.Subnets {
		if s.Name == name || (s.Name == "" && s.Interface == name) {
			return i
		}
	}
	return -1
}
