package ringtest

import (
	"fmt"
	"github.com/ringway/ringway/vipstate"
	"net/netip"
	"slices"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

// The invariants, checked after every event:
//
//  1. A node's sequence numbers never go back (per incarnation).
//  2. Never two valid tokens in one ring: per ring id, at most one node
//     holds the token or has it in flight to a destination that would
//     still accept it.
//  3. Within a ring no VIP has two owners: among running nodes (paused
//     ones included: they still believe they serve) that committed the
//     same ring id, each VIP is answered by at most one node.
//  4. Every state a holder commits in a ring with members and quorum gives
//     every open VIP an owner that is a member.
//
// Scenarios add the timed ones: a crashed node is removed within the
// detection bound (CheckRemoved), and after a heal there is one ring within
// the merge bound (Converged).

func (s *Sim) fail(format string, args ...any) {
	if s.err != nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	s.err = fmt.Errorf("seed %d at %.3fms: %s\nreplay: %s", s.opt.Seed, float64(s.now)/1000, msg,
		fmt.Sprintf(s.opt.Replay, s.opt.Seed))
	s.logf("!!! %s", msg)
}

// Err returns the first invariant violation, with the replay command.
func (s *Sim) Err() error { return s.err }

// Failf records a scenario-level failure as the Sim's error.
func (s *Sim) Failf(format string, args ...any) { s.fail(format, args...) }

func (s *Sim) check(ns *nodeState) {
	s.stats.Checks++
	if ns.up {
		st := ns.n.Status()
		if st.MaxSeq < ns.maxSeq {
			s.fail("n%d sequence went back from %d to %d", ns.id, ns.maxSeq, st.MaxSeq)
		}
		ns.maxSeq = st.MaxSeq
	}
	s.checkTokens()
	s.checkOwners()
}

func (s *Sim) checkTokens() {
	type holder struct {
		ring uint64
		id   ring.NodeID
	}
	var hs []holder
	for _, ns := range s.nodes {
		if !ns.up {
			continue
		}
		st := ns.n.Status()
		valid := st.Holding
		if st.Passing {
			d := s.node(st.PassTo)
			// In flight: valid unless the destination already has it (or
			// something newer), in which case the destination counts.
			// A destination that accepted it and then crashed or left
			// counts as having it: the sender's line will take a new
			// ring id when the hop fails.
			seen := d.maxSeq
			if d.up {
				seen = d.n.Status().MaxSeq
			}
			valid = seen < st.PassSeq
		}
		if !valid {
			continue
		}
		for _, h := range hs {
			if h.ring == st.RingID {
				s.fail("two valid tokens in ring %04x: n%d and n%d", st.RingID&0xffff, h.id, ns.id)
				return
			}
		}
		hs = append(hs, holder{st.RingID, ns.id})
	}
}

func (s *Sim) checkOwners() {
	type owner struct {
		ring uint64
		id   ring.NodeID
	}
	seen := make(map[netip.Addr][]owner, len(s.vips))
	for _, ns := range s.nodes {
		if !ns.up || ns.state == nil {
			continue
		}
		for _, v := range ns.owned {
			for _, o := range seen[v] {
				if o.ring == ns.state.RingID {
					s.fail("VIP %v has two owners in ring %04x: n%d and n%d", v, o.ring&0xffff, o.id, ns.id)
					return
				}
			}
			seen[v] = append(seen[v], owner{ns.state.RingID, ns.id})
		}
	}
}

func (s *Sim) checkCoverage(ns *nodeState) {
	st := ns.state
	if st.Holder != ns.id || len(st.Members) == 0 || st.NoQuorum {
		return
	}
	t, ok, err := ringstate.Table(st.Carriages)
	if !ok {
		s.fail("n%d committed a state without a VIP table (%v)", ns.id, err)
		return
	}
	for _, r := range t.Rows() {
		if r.Closed {
			continue
		}
		if r.Current == 0 || !slices.Contains(st.Members, ring.NodeID(r.Current)) {
			s.fail("n%d committed a table where open VIP %v is on n%d, not a member of %v", ns.id, r.VIP, r.Current, st.Members)
			return
		}
	}
}

// CheckRemoved fails if any running node still lists id as a member.
func (s *Sim) CheckRemoved(id ring.NodeID, since int64) {
	for _, ns := range s.nodes {
		if !ns.up || ns.paused {
			continue
		}
		if ns.state != nil && slices.Contains(ns.state.Members, id) {
			s.fail("n%d crashed %.1fms ago and n%d still lists it: members %v", id, float64(s.now-since)/1000, ns.id, ns.state.Members)
			return
		}
	}
}

// Converged reports whether every running node is in one ring whose
// members are exactly the running nodes, and every VIP has exactly one
// owner among them (none, if the ring lacks quorum in mode majority).
func (s *Sim) Converged() error {
	up := s.Up()
	if len(up) == 0 {
		return nil
	}
	var ringID uint64
	for i, id := range up {
		ns := s.node(id)
		if ns.paused {
			return fmt.Errorf("n%d is paused", id)
		}
		st := ns.n.Status()
		if st.Mode != ring.ModeMember || ns.state == nil {
			return fmt.Errorf("n%d is %v", id, st.Mode)
		}
		if i == 0 {
			ringID = ns.state.RingID
		} else if ns.state.RingID != ringID {
			return fmt.Errorf("n%d is in ring %04x, n%d in %04x", up[0], ringID&0xffff, id, ns.state.RingID&0xffff)
		}
		if !slices.Equal(ns.state.Members, up) {
			return fmt.Errorf("n%d has members %v, running are %v", id, ns.state.Members, up)
		}
	}
	own := s.Owners()
	if s.node(up[0]).state.NoQuorum {
		// Quorum mode majority and the running nodes are no majority:
		// nobody may serve.
		for _, v := range s.vips {
			if len(own[v]) != 0 {
				return fmt.Errorf("VIP %v is answered by %v in a ring without quorum", v, own[v])
			}
		}
		return nil
	}
	for _, v := range s.vips {
		if len(own[v]) != 1 {
			return fmt.Errorf("VIP %v is answered by %v", v, own[v])
		}
	}
	// Closed and unhealthy members answer nothing while another member
	// may (ringstate carriages 4 and 5, vipstate.Input.Closed).
	st := s.node(up[0]).state
	out := map[ring.NodeID]bool{}
	for _, n := range ringstate.Closed(st.Carriages) {
		out[ring.NodeID(n)] = true
	}
	unhealthy := ringstate.Unhealthy(st.Carriages)
	for _, id := range up {
		marked := slices.Contains(unhealthy, vipstate.Node(id))
		if s.node(id).unhealthy != marked {
			return fmt.Errorf("n%d's health (unhealthy %v) is not on the token yet", id, s.node(id).unhealthy)
		}
		out[id] = out[id] || marked
	}
	open := slices.ContainsFunc(up, func(id ring.NodeID) bool { return !out[id] })
	for _, v := range s.vips {
		if o := own[v][0]; open && out[o] {
			return fmt.Errorf("VIP %v is on n%d, which is closed or unhealthy, while another member is open", v, o)
		}
	}
	return nil
}

// RunUntilConverged runs in steps of one tick until Converged or until
// limit µs have passed; it returns the time taken and whether it converged.
func (s *Sim) RunUntilConverged(limit int64) (int64, bool) {
	start := s.now
	for s.now-start <= limit {
		if s.Converged() == nil {
			return s.now - start, true
		}
		s.Run(TickUS / 4)
	}
	return s.now - start, false
}
