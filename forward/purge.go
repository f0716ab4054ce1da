package forward

import "net/netip"

// DropFlows removes every tracked flow with one of addrs at either end
// (a reload with --drop-flows: the VIPs it removes and the hosts that
// used them as gateway), and the replicas this node holds of such flows.
// A removed flow's handler tells its authoritative node and standby
// (replication's gone record), as for an expired one. Later packets of a
// removed flow meet the filter as any packet without an entry: a TCP
// segment that is not a SYN is dropped (no_state) and never answered. It
// returns how many flows it removed from the table. It takes each
// shard's lock in turn, so the router's workers wait at most for one
// shard's walk.
func (f *Filter) DropFlows(addrs []netip.Addr, now int64) int {
	set := make(map[[4]byte]struct{}, len(addrs))
	for _, a := range addrs {
		if a.Is4() {
			set[a.As4()] = struct{}{}
		}
	}
	if len(set) == 0 {
		return 0
	}
	hit := func(k Key) bool {
		_, a := set[k.A]
		_, b := set[k.B]
		return a || b
	}
	removed := 0
	for i := range f.tab.shards {
		s := &f.tab.shards[i]
		s.mu.Lock()
		for j := range s.slab {
			if e := &s.slab[j]; e.flags&entryUsed != 0 && hit(e.key) {
				f.tab.remove(s, uint32(j), now)
				removed++
			}
		}
		s.mu.Unlock()
	}
	if f.sym != nil {
		f.sym.replicas.dropIf(hit)
	}
	return removed
}
