package router

import (
	"net/netip"
	"slices"
	"sync/atomic"
)

// ownedSet is an immutable set of the VIPs this node answers for, each with
// the link it lives on and its counters. The router swaps whole sets
// atomically (SetOwned); readers on the hot path never lock.
type ownedSet struct {
	vips map[[4]byte]ownedVIP
}

type ownedVIP struct {
	link int
	c    *vipCounters
}

func (s *ownedSet) lookup(a netip.Addr) (ownedVIP, bool) {
	if s == nil || !a.Is4() {
		return ownedVIP{}, false
	}
	v, ok := s.vips[a.As4()]
	return v, ok
}

func (s *ownedSet) addrs() []netip.Addr {
	if s == nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(s.vips))
	for k := range s.vips {
		out = append(out, netip.AddrFrom4(k))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// diffOwned returns the VIPs in next but not prev (acquired) and in prev but
// not next (released), sorted.
func diffOwned(prev, next *ownedSet) (acquired, released []netip.Addr) {
	for _, a := range next.addrs() {
		if _, ok := prev.lookup(a); !ok {
			acquired = append(acquired, a)
		}
	}
	for _, a := range prev.addrs() {
		if _, ok := next.lookup(a); !ok {
			released = append(released, a)
		}
	}
	return acquired, released
}

// vipCounters are the per-VIP counters; shared between goroutines, so atomic.
type vipCounters struct {
	arpRequests atomic.Uint64 // requests for this VIP received while owned
	arpReplies  atomic.Uint64 // replies sent
	garps       atomic.Uint64 // gratuitous ARP announcements sent (request+reply pair counts 1)
	packets     atomic.Uint64 // packets forwarded for hosts using this VIP as gateway, or delivered to it
	bytes       atomic.Uint64
	conflicts   atomic.Uint64 // ARP packets from another host claiming this VIP while owned
	defendedAt  atomic.Int64  // last defence (log and GARP), ns + 1; 0: never
}
