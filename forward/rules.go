package forward

import (
	"fmt"
	"net/netip"
)

// Proto is a rule's protocol.
type Proto uint8

// Rule protocols.
const (
	ProtoAny  Proto = 0
	ProtoICMP Proto = protoICMP
	ProtoTCP  Proto = protoTCP
	ProtoUDP  Proto = protoUDP
)

// Action is a rule's verdict.
type Action uint8

// Actions.
const (
	Drop Action = iota
	Accept
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Rule decides the first packet of a flow (DESIGN.md's filter.rules).
type Rule struct {
	Name string
	// From matches the packet's source: it arrived on one of FromLinks
	// (router link indexes, from subnet names) or its source is in one
	// of FromPrefixes. Both empty: any source.
	FromLinks    []int
	FromPrefixes []netip.Prefix
	// To matches the destination: it leaves on one of ToLinks, or its
	// destination is in one of ToPrefixes. Both empty: any.
	ToLinks    []int
	ToPrefixes []netip.Prefix
	Proto      Proto
	Ports      []PortRange // destination ports (TCP, UDP); empty: any
	Action     Action
}

// Service is one entry of filter.local: a TCP or UDP port range of the
// node's own OS reachable on the VIPs.
type Service struct {
	Proto Proto
	Ports []PortRange
}

// rule is a Rule compiled for the hot path: prefixes as masked uint32s.
type rule struct {
	fromLinks, toLinks uint64 // bit i: link i
	from, to           []pfx
	anyFrom, anyTo     bool
	proto              uint8
	ports              []PortRange
	action             Action
}

type pfx struct{ addr, mask uint32 }

func (p pfx) contains(a uint32) bool { return a&p.mask == p.addr }

func compilePrefix(p netip.Prefix) (pfx, error) {
	if !p.Addr().Is4() {
		return pfx{}, fmt.Errorf("prefix %v is not IPv4", p)
	}
	p = p.Masked()
	var mask uint32
	if p.Bits() > 0 {
		mask = ^uint32(0) << (32 - p.Bits())
	}
	return pfx{addr: u32(p.Addr().As4()), mask: mask}, nil
}

func u32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func compileRule(r Rule, links int) (rule, error) {
	c := rule{proto: uint8(r.Proto), ports: r.Ports, action: r.Action,
		anyFrom: len(r.FromLinks) == 0 && len(r.FromPrefixes) == 0,
		anyTo:   len(r.ToLinks) == 0 && len(r.ToPrefixes) == 0}
	for _, l := range r.FromLinks {
		if l < 0 || l >= links || l >= 64 {
			return c, fmt.Errorf("rule %s: link %d out of range", r.Name, l)
		}
		c.fromLinks |= 1 << l
	}
	for _, l := range r.ToLinks {
		if l < 0 || l >= links || l >= 64 {
			return c, fmt.Errorf("rule %s: link %d out of range", r.Name, l)
		}
		c.toLinks |= 1 << l
	}
	for _, p := range r.FromPrefixes {
		x, err := compilePrefix(p)
		if err != nil {
			return c, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		c.from = append(c.from, x)
	}
	for _, p := range r.ToPrefixes {
		x, err := compilePrefix(p)
		if err != nil {
			return c, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		c.to = append(c.to, x)
	}
	if len(r.Ports) > 0 && r.Proto != ProtoTCP && r.Proto != ProtoUDP {
		return c, fmt.Errorf("rule %s: ports need proto tcp or udp", r.Name)
	}
	return c, nil
}

func (r *rule) match(p *packet, in, out int) bool {
	if r.proto != 0 && r.proto != p.proto {
		return false
	}
	if !r.anyFrom && !matchSide(r.fromLinks, r.from, in, u32(p.src)) {
		return false
	}
	if !r.anyTo && !matchSide(r.toLinks, r.to, out, u32(p.dst)) {
		return false
	}
	return len(r.ports) == 0 || inPorts(r.ports, p.dport)
}

func matchSide(links uint64, ps []pfx, link int, a uint32) bool {
	if link >= 0 && link < 64 && links&(1<<link) != 0 {
		return true
	}
	for _, p := range ps {
		if p.contains(a) {
			return true
		}
	}
	return false
}

func inPorts(rs []PortRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}
