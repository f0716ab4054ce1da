package vipstate

import "math/bits"

// balance is dynamic load balancing (patent "Dynamic Load Balancing" 516,
// Figure 9 boxes 910/912), constrained so a VIP is never answered by two
// nodes: the holder can give away only its own VIPs, so it acts only when it
// is the most loaded live node (ties included). It then moves one unit (a VIP
// or a whole group) with persistence none to the least loaded live node
// (ring order breaks ties) when all of these hold:
//
//   - the total load is above MinRate;
//   - max − min > Threshold % of the mean load;
//   - the cooldown since the last balancing move has passed;
//   - a unit with load L > 0 and 2L ≤ max − min exists: the move never
//     overshoots (the giver keeps at least what the receiver gets). The
//     largest such L is chosen, ties to the lowest VIP.
//
// Why it cannot oscillate: with fixed VIP loads, a move of L from max to min
// changes the sum of squared node loads by 2L(L − (max − min)) < 0. That sum
// takes finitely many values, so only finitely many balancing moves can
// happen before a fixed point; the cooldown then keeps measurement noise
// from turning one decision into several.
func (s *stepper) balance() {
	cfg := s.in.Balance
	if !cfg.Enabled || !s.self || s.nlive < 2 || s.in.VIPLoad == nil || s.u.rotation < s.u.balanceAt {
		return
	}
	self := s.in.Self

	// Node loads by node number; a small node map stays on the stack.
	var small [65]uint64
	var load []uint64
	if s.u.nodes < len(small) {
		load = small[:s.u.nodes+1]
	} else {
		load = make([]uint64, s.u.nodes+1)
	}
	var total uint64
	for _, r := range s.u.rows {
		if s.live.has(r.Current) {
			l := s.in.VIPLoad[r.VIP]
			load[r.Current] += l
			total += l
		}
	}
	if total <= cfg.MinRate {
		return
	}
	maxLoad := load[self]
	minLoad, to := maxLoad, None
	for _, n := range s.in.Live {
		if !s.live.has(n) {
			continue
		}
		if load[n] > maxLoad {
			return // someone else is busier: only it can give its VIPs away
		}
		if n != self && s.eligible(n) && (to == None || load[n] < minLoad) {
			minLoad, to = load[n], n
		}
	}
	if to == None {
		return // every other live node is closed
	}
	gap := maxLoad - minLoad
	// gap·100·nlive > Threshold·total, in 128 bits so no load overflows it.
	lh, ll := bits.Mul64(gap, 100*uint64(s.nlive))
	rh, rl := bits.Mul64(uint64(cfg.Threshold), total)
	if lh < rh || (lh == rh && ll <= rl) {
		return
	}

	best, bestLoad := -1, uint64(0)
	var buf unitBuf
	for i, r := range s.u.rows {
		if r.Current != self || r.Persistence != PersistNone || !s.u.firstOfUnit(i) {
			continue
		}
		var l uint64
		for _, m := range s.u.members(i, &buf) {
			l += s.in.VIPLoad[s.u.rows[m].VIP]
		}
		if l > 0 && l <= gap/2 && l > bestLoad {
			best, bestLoad = i, l
		}
	}
	if best < 0 {
		return
	}
	s.moveUnit(best, to, ReasonBalance)
	s.u.balanceAt = s.u.rotation + uint64(max1(cfg.Cooldown))
}

func max1(v uint32) uint32 {
	if v == 0 {
		return 1
	}
	return v
}
