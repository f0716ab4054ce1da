package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// filter checks the filter section. It is checked whether or not the
// filter is enabled, so that turning it on later cannot surprise.
func (v *validator) filter() {
	f := v.c.Filter
	switch {
	case f.Default == ActionDrop || f.Default == ActionAccept || v.broken("filter.default"):
	case f.Default == 0:
		v.errorf("filter.default", "filter.default is not set; write drop or accept")
	default:
		v.errorf("filter.default", "filter.default is %v; write drop or accept", f.Default)
	}
	if f.MaxFlows < 1 || f.MaxFlows > MaxMaxFlows {
		v.errorf("filter.max_flows", "filter.max_flows is %d; write a number of flows from 1 to %d (default %d)", f.MaxFlows, MaxMaxFlows, DefaultMaxFlows)
	}
	if f.MaxFragments < 1 || f.MaxFragments > MaxMaxFragments {
		v.errorf("filter.max_fragments", "filter.max_fragments is %d; write a number of fragments from 1 to %d (default %d)", f.MaxFragments, MaxMaxFragments, DefaultMaxFragments)
	}
	if f.Defer < 0 || f.Defer > MaxDefer {
		v.errorf("filter.defer", "filter.defer is %v; write a duration from 0s (off) to %v (default %v)", f.Defer, MaxDefer, DefaultDefer)
	}
	if f.FillTimeout < MinFillTimeout || f.FillTimeout > MaxFillTimeout {
		v.errorf("filter.fill_timeout", "filter.fill_timeout is %v; write a duration from %v to %v (default %v)", f.FillTimeout, MinFillTimeout, MaxFillTimeout, DefaultFillTimeout)
	}
	t, d := f.Timeouts, DefaultConfig().Filter.Timeouts
	for _, x := range []struct {
		key      string
		got, def time.Duration
	}{
		{"tcp_syn_sent", t.TCPSynSent, d.TCPSynSent},
		{"tcp_syn_recv", t.TCPSynRecv, d.TCPSynRecv},
		{"tcp_established", t.TCPEstablished, d.TCPEstablished},
		{"tcp_fin_wait", t.TCPFinWait, d.TCPFinWait},
		{"tcp_close_wait", t.TCPCloseWait, d.TCPCloseWait},
		{"tcp_last_ack", t.TCPLastAck, d.TCPLastAck},
		{"tcp_time_wait", t.TCPTimeWait, d.TCPTimeWait},
		{"tcp_close", t.TCPClose, d.TCPClose},
		{"udp", t.UDP, d.UDP},
		{"udp_stream", t.UDPStream, d.UDPStream},
		{"icmp", t.ICMP, d.ICMP},
	} {
		key := "filter.timeouts." + x.key
		switch {
		case v.broken(key):
		case x.got <= 0:
			v.errorf(key, "%s is %v; write a positive duration (default %v)", key, x.got, x.def)
		case x.got < MinFlowTimeout || x.got > MaxFlowTimeout:
			v.errorf(key, "%s is %v; write %v to %s (default %v)", key, x.got, MinFlowTimeout, maxFlowTimeoutText, x.def)
		}
	}

	clean := make([]bool, len(f.Rules)) // rules without problems, for the shadow check
	names := map[string]int{}
	for i, r := range f.Rules {
		before := len(v.errs)
		v.rule(i, r, names)
		clean[i] = len(v.errs) == before && !v.broken(fmt.Sprintf("filter.rules[%d]", i))
	}
	for j, b := range f.Rules {
		if !clean[j] {
			continue
		}
		for i, a := range f.Rules[:j] {
			if !clean[i] || !covers(a, b) {
				continue
			}
			at := fmt.Sprintf("filter.rules[%d]", j)
			if a.Action == b.Action {
				v.errorf(at, "%s can never match: %s (line %d) comes first and matches every packet it matches, with the same action; remove %s", b.Label(j), a.Label(i), v.line(fmt.Sprintf("filter.rules[%d]", i)), b.Label(j))
			} else {
				v.errorf(at, "%s can never match: %s (line %d) comes first and matches every packet it matches; move %s above it, or remove it", b.Label(j), a.Label(i), v.line(fmt.Sprintf("filter.rules[%d]", i)), b.Label(j))
			}
			break
		}
	}

	for i, l := range f.Local {
		p := fmt.Sprintf("filter.local[%d]", i)
		switch {
		case v.broken(p + ".proto"):
		case l.Proto == ProtoICMP:
			v.errorf(p+".proto", "filter.local needs no entry for icmp: the router answers ICMP echo to a VIP itself; remove this entry")
		case l.Proto == ProtoAny:
			v.errorf(p, "filter.local entry %d needs proto: tcp or udp (the protocol the service listens on)", i+1)
		case !l.Proto.HasPorts():
			v.errorf(p+".proto", "filter.local entry %d: proto %v is not known; write tcp or udp", i+1, l.Proto)
		}
		if len(l.Ports) == 0 && !v.broken(p+".ports") {
			v.errorf(p, "filter.local entry %d has no ports; add ports: [the service's ports], e.g. [22]", i+1)
		}
		v.ports(p+".ports", l.Ports)
	}
}

// rule checks one rule on its own; names maps the names seen so far to
// their rule index.
func (v *validator) rule(i int, r Rule, names map[string]int) {
	c := v.c
	p := fmt.Sprintf("filter.rules[%d]", i)
	if r.Name != "" {
		if j, dup := names[r.Name]; dup {
			v.errorf(p+".name", "rule name %q is used twice (also on line %d); give each rule its own name", r.Name, v.line(fmt.Sprintf("filter.rules[%d].name", j)))
		} else {
			names[r.Name] = i
		}
	}
	for _, side := range []struct {
		key, what string
		list      []Net
	}{{"from", "source", r.From}, {"to", "destination", r.To}} {
		lp := p + "." + side.key
		if side.list != nil && len(side.list) == 0 {
			v.errorf(lp, "%s: [] matches no %s, so %s can never match; remove the key to match any %s, or list subnets or prefixes", side.key, side.what, r.Label(i), side.what)
		}
		for j, n := range side.list {
			ip := fmt.Sprintf("%s[%d]", lp, j)
			switch {
			case v.broken(ip):
			case n.Name != "" && c.subnetByName(n.Name) < 0:
				if !v.broken("subnets") {
					v.errorf(ip, "%s: subnet %q is not known; write one of %s, a prefix such as 192.0.2.0/24, or any", side.key, n.Name, strings.Join(subnetNames(c), ", "))
				}
			case n.Name != "":
				// a known subnet; its prefix, if broken, is reported there
			case !n.Prefix.IsValid() || !n.Prefix.Addr().Is4():
				v.errorf(ip, "%s entry %d has no IPv4 prefix; write a subnet name, a prefix such as 192.0.2.0/24, or any", side.key, j+1)
			case n.Prefix.Masked() != n.Prefix:
				v.errorf(ip, "%s: %s has host bits set; write %s", side.key, n.Prefix, n.Prefix.Masked())
			}
		}
	}
	switch r.Proto {
	case ProtoAny, ProtoICMP, ProtoTCP, ProtoUDP:
	default:
		v.errorf(p+".proto", "proto %v is not known; write tcp, udp, icmp or any", r.Proto)
	}
	switch {
	case r.Ports == nil:
	case r.Proto == ProtoAny && !v.has(p+".proto"):
		v.errorf(p+".ports", "ports are given but proto is not (so it is any); ports apply to tcp and udp only: add proto: tcp or proto: udp, or remove ports")
	case !r.Proto.HasPorts() && !v.broken(p+".proto"):
		v.errorf(p+".ports", "ports are given with proto %v; ports apply to tcp and udp only: write proto: tcp or proto: udp, or remove ports", r.Proto)
	case len(r.Ports) == 0:
		v.errorf(p+".ports", "ports: [] matches no port, so %s can never match; remove the key to match every port, or list ports", r.Label(i))
	}
	v.ports(p+".ports", r.Ports)
	if r.Action != ActionAccept && r.Action != ActionDrop && !v.broken(p+".action") {
		if r.Action == 0 {
			v.errorf(p, "%s has no action; add action: accept or action: drop", r.Label(i))
		} else {
			v.errorf(p+".action", "action %v is not known; write accept or drop", r.Action)
		}
	}
}

// ports checks port ranges built in code (the file's are checked as they
// are decoded).
func (v *validator) ports(path string, rs []PortRange) {
	for j, r := range rs {
		if ip := fmt.Sprintf("%s[%d]", path, j); (r.First == 0 || r.Last < r.First) && !v.broken(ip) {
			v.errorf(ip, "port range %d-%d: write ports from 1 to 65535, the lower first", r.First, r.Last)
		}
	}
}

// has reports whether the file sets the key at path.
func (v *validator) has(path string) bool {
	if v.c.src == nil {
		return true
	}
	_, ok := v.c.src.pos[path]
	return ok
}

// subnetNames lists the subnet names, for messages.
func subnetNames(c *Config) []string {
	var out []string
	for _, s := range c.Subnets {
		if s.Name != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// covers reports whether every packet rule b matches is matched by rule a
// too, so that b, placed after a, can never decide a flow. Both rules are
// valid. Only one earlier rule is compared at a time: b may also be
// covered by several earlier rules together, which is not reported.
func covers(a, b Rule) bool {
	if a.Proto != ProtoAny && a.Proto != b.Proto {
		return false
	}
	if !netsCover(a.FromPrefixes(), b.FromPrefixes()) || !netsCover(a.ToPrefixes(), b.ToPrefixes()) {
		return false
	}
	switch {
	case len(a.Ports) == 0:
		return true // every port (or a protocol without ports)
	case len(b.Ports) == 0:
		return false // b matches every port, a only some
	}
	return portsCover(a.Ports, b.Ports)
}

// netsCover reports whether the union of as holds every address of bs.
func netsCover(as, bs []netip.Prefix) bool {
	for _, b := range bs {
		if !prefixCovered(b, as) {
			return false
		}
	}
	return true
}

// prefixCovered reports whether the union of qs holds every address of p:
// one q holds p, or both halves of p are covered. It splits p only while
// some q lies strictly inside it, so it visits at most about 2 × 32 ×
// len(qs) prefixes.
func prefixCovered(p netip.Prefix, qs []netip.Prefix) bool {
	inside := false
	for _, q := range qs {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
		if q.Bits() > p.Bits() && p.Contains(q.Addr()) {
			inside = true
		}
	}
	if !inside || p.Bits() >= 32 {
		return false
	}
	b := p.Addr().As4()
	x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	x |= 1 << (31 - p.Bits())
	hi := netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	return prefixCovered(netip.PrefixFrom(p.Addr(), p.Bits()+1), qs) &&
		prefixCovered(netip.PrefixFrom(hi, p.Bits()+1), qs)
}

// portsCover reports whether the union of as holds every port of bs.
func portsCover(as, bs []PortRange) bool {
	merged := slices.Clone(as)
	slices.SortFunc(merged, func(x, y PortRange) int { return int(x.First) - int(y.First) })
	out := merged[:0]
	for _, r := range merged {
		if n := len(out); n > 0 && int(r.First) <= int(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	for _, b := range bs {
		ok := false
		for _, r := range out {
			if r.First <= b.First && b.Last <= r.Last {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (v *validator) forward() {
	p := v.c.Forward.Port
	switch {
	case p < 1 || p > 65535:
		v.errorf("forward.port", "forward.port is %d; use a UDP port from 1 to 65535 (default %d), the same on every node", p, DefaultForwardPort)
	case p == v.c.Ring.Port && !v.has("forward.port"):
		v.errorf("ring.port", "ring.port is %d, the default port of the inter-node tunnel (forward.port); write another ring.port, or set forward.port to another free UDP port", p)
	case p == v.c.Ring.Port:
		v.errorf("forward.port", "forward.port is %d, the same as ring.port; the tunnel needs its own UDP port: write another one (default %d)", p, DefaultForwardPort)
	}
}

// filterWarnings are the filter's part of Warnings.
func (c *Config) filterWarnings() []string {
	f := c.Filter
	if !f.Enabled {
		if len(f.Rules) == 0 && len(f.Local) == 0 {
			return nil
		}
		return []string{fmt.Sprintf("filter.enabled is false, so its %s and %s are ignored: every packet is forwarded statelessly and every port of every VIP reaches this node's OS; set filter.enabled: true to apply them",
			plural(len(f.Rules), "rule"), plural(len(f.Local), "local service"))}
	}
	if f.Default != ActionDrop {
		return nil
	}
	for _, r := range f.Rules {
		if r.Action == ActionAccept {
			return nil
		}
	}
	return []string{"filter is enabled with default: drop and no rule that accepts: nothing passes through this node (no new flow can start); add a rule with action: accept, or write default: accept"}
}
