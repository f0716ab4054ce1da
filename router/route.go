package router

import (
	"fmt"
	"net/netip"
	"slices"
)

// Route is one entry of the routing table: packets to To go to Via (a host
// on a connected subnet). A zero Via means To is connected on Link.
type Route struct {
	To  netip.Prefix
	Via netip.Addr
}

// routeEntry is a resolved route: the output link and the next hop (zero for
// connected, meaning "the destination itself").
type routeEntry struct {
	prefix  netip.Prefix
	link    int
	via     netip.Addr
	bits    int
	network uint32 // prefix address as a number, for a fast match
	mask    uint32
}

// routeTable is an immutable longest-prefix-match table. Lookups do not
// allocate; the table is small (connected subnets plus a few routes), so a
// linear scan in prefix-length order is the fastest structure.
type routeTable struct {
	entries []routeEntry
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func maskOf(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// newRouteTable builds the table from the links' connected prefixes and the
// configured routes. Every Via must lie in a connected prefix.
func newRouteTable(connected []netip.Prefix, routes []Route) (*routeTable, error) {
	t := &routeTable{}
	for i, p := range connected {
		p = p.Masked()
		t.entries = append(t.entries, routeEntry{prefix: p, link: i, bits: p.Bits(), network: u32(p.Addr()), mask: maskOf(p.Bits())})
	}
	for _, r := range routes {
		if !r.To.Addr().Is4() || !r.Via.Is4() {
			return nil, fmt.Errorf("route %v via %v: only IPv4 routes with an IPv4 next hop are supported", r.To, r.Via)
		}
		link := -1
		best := -1
		for i, p := range connected {
			if p.Contains(r.Via) && p.Bits() > best {
				link, best = i, p.Bits()
			}
		}
		if link < 0 {
			return nil, fmt.Errorf("route %v via %v: the next hop is on no connected subnet; add its subnet or fix the address", r.To, r.Via)
		}
		p := r.To.Masked()
		t.entries = append(t.entries, routeEntry{prefix: p, link: link, via: r.Via, bits: p.Bits(), network: u32(p.Addr()), mask: maskOf(p.Bits())})
	}
	// Longest prefix first; connected before routes of equal length (stable).
	slices.SortStableFunc(t.entries, func(a, b routeEntry) int { return b.bits - a.bits })
	return t, nil
}

// lookup returns the output link and next hop for dst, ok false when no
// route matches.
func (t *routeTable) lookup(dst netip.Addr) (link int, nextHop netip.Addr, ok bool) {
	d := u32(dst)
	for i := range t.entries {
		e := &t.entries[i]
		if d&e.mask == e.network {
			if e.via.IsValid() {
				return e.link, e.via, true
			}
			return e.link, dst, true
		}
	}
	return -1, netip.Addr{}, false
}
