package vipstate

// place gives a live host to every open VIP that has none: fail-over when
// its host is not a live member, assignment when it had no host (start-up,
// or just opened). Any holder does this: a VIP without a live host is
// answered by nobody, so moving it cannot make two nodes answer it.
//
// The target is the unit's preferred host when that host is live (for
// persistence none the preference is only this hint), else the live node
// with the fewest VIPs, counting the ones placed so far in this Step; ties go
// to the earlier node in ring order. So a dead node's VIPs spread over the
// survivors instead of piling onto one.
func (s *stepper) place() {
	rows := s.u.rows
	need := false
	for i := range rows {
		if s.needsHost(rows[i]) {
			need = true
			break
		}
	}
	if !need {
		return
	}
	if s.nlive == 0 {
		// Nobody is live: nothing is owned. (A lone node calls Step with
		// Live = [itself] and then owns every open VIP.)
		for i := range s.u.rows {
			if r := s.u.rows[i]; r.Current != None && s.u.firstOfUnit(i) {
				s.moveUnit(i, None, ReasonFailover)
			}
		}
		return
	}

	// VIPs per node, by node number; only live entries are used.
	count := make([]int, s.u.nodes+1)
	for _, r := range rows {
		if s.live.has(r.Current) {
			count[r.Current]++
		}
	}
	order := s.liveOrder()
	var buf unitBuf
	for i := range s.u.rows {
		r := s.u.rows[i]
		if !s.needsHost(r) || !s.u.firstOfUnit(i) {
			continue
		}
		to := r.Preferred
		if !s.eligible(to) {
			to = None
			for _, n := range order {
				if s.eligible(n) && (to == None || count[n] < count[to]) {
					to = n
				}
			}
		}
		why := ReasonFailover
		switch {
		case r.Current == None:
			why = ReasonAssign
		case s.live.has(r.Current):
			why = ReasonHandover
		}
		count[to] += len(s.u.members(i, &buf))
		s.moveUnit(i, to, why)
	}
}

// liveOrder returns the live members in ring order, each once.
func (s *stepper) liveOrder() []Node {
	order := make([]Node, 0, s.nlive)
	var seen liveSet
	for _, n := range s.in.Live {
		if s.live.has(n) && !seen.has(n) {
			seen.add(n)
			order = append(order, n)
		}
	}
	return order
}
