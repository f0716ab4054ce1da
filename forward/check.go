package forward

// Check reports whether Forward would pass ip from link in to link out at
// time now, without its effects: no flow is created or updated, nothing
// is counted, no fragment verdict is recorded. It takes the same path as
// Forward (parsing, anti-spoofing, fragment verdicts, the flow lookup under
// its shard's lock, the rules), so the router's built-in application check
// (router.FilterChecker, the patent's "dummy packets") exercises the
// filter every interval without showing up in its flows or drop counters.
// It does not allocate.
func (f *Filter) Check(ip []byte, in, out int, now int64) bool {
	var p packet
	if r, final := f.admit(ip, in, &p, now); final {
		return r == ReasonNone
	}
	switch classify(&p) {
	case classRelated:
		if !p.quoted {
			return false
		}
		q := &p.inner
		k, _ := keyOf(q.proto, q.src, q.dst, q.sport, q.dport)
		return f.live(k, now)
	case classStateless:
		return f.ruleVerdict(&p, in, out) == Accept
	}
	k, _ := keyOf(p.proto, p.src, p.dst, p.sport, p.dport)
	if f.live(k, now) {
		return true
	}
	if !f.firstPacket(&p) {
		return false
	}
	if _, act := f.match(&p, in, out); act != Accept {
		return false
	}
	return f.tab.count.Load() < f.tab.max // else ReasonTableFull
}

// live reports whether k has an unexpired entry, without table.lookup's
// removal of an expired one.
func (f *Filter) live(k Key, now int64) bool {
	s := f.tab.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[k]
	return ok && now < s.slab[i].expires
}
