package ringtest

import (
	"fmt"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// DetectBound is the longest a crash may take to be removed from every
// survivor's membership, in µs, for the config c and n nodes: the token
// loss timeout (the holder crashed), the 911 (at most two ack budgets),
// then a rotation plus a resent hop for the regenerated token to reach
// every survivor, plus a rotation of slack.
//
// In quorum mode majority add two leases (ring.Config.MaxLeaseTicks): a
// failed hop drops its destination a lease later, and a 911 that would
// leave out members that did not answer waits a lease and asks again.
func DetectBound(c ring.Config) int64 {
	ticks := c.TokenLossTicks() + 3*c.AckBudget() + 2*c.Rotation() + 10
	if c.Quorum == ring.Majority {
		ticks += 2 * (c.MaxLeaseTicks() + 2*c.AckTimeout + 3)
	}
	return int64(ticks) * TickUS
}

// MergeBound is how long after a full heal the cluster must be one ring:
// the token loss timeout and a 911 (lines that died), a probe interval,
// two rotations (the absorbing ring adds the others on its next visit and
// carries the token to them) and the ack budgets of hops to nodes that are
// gone, with slack.
func MergeBound(c ring.Config) int64 {
	ticks := 2*c.TokenLossTicks() + c.ProbeInterval + 3*c.Rotation() + 4*c.AckBudget() + c.JoinTimeout + 20
	if c.Quorum == ring.Majority {
		ticks += 2 * (c.MaxLeaseTicks() + 2*c.AckTimeout + 3)
	}
	return int64(ticks) * TickUS
}

// RandomScenario runs one seed of mixed faults: a cold start, then three to
// six phases, each one fault among crash, restart, pause, partition,
// one-way cut, lossy path, duplication and reordering, graceful leave;
// crash phases run on an otherwise healthy network and check that the
// crashed node is removed within DetectBound. Then everything heals and
// the cluster must be one conflict-free ring within MergeBound. It returns
// the Sim (for its transcript) and the first failure.
func RandomScenario(seed uint64, replay string) (*Sim, error) {
	return RandomScenarioWith(seed, replay, nil)
}

// RandomScenarioWith is RandomScenario with every node's ring config
// adjusted by mod (other timers).
func RandomScenarioWith(seed uint64, replay string, mod func(*ring.Config)) (*Sim, error) {
	return randomScenario(seed, 0, replay, mod)
}

// RandomScenarioSized is RandomScenario with n nodes (the random scenarios
// draw 3 to 7).
func RandomScenarioSized(seed uint64, n int, replay string) (*Sim, error) {
	return randomScenario(seed, n, replay, nil)
}

func randomScenario(seed uint64, n int, replay string, mod func(*ring.Config)) (*Sim, error) {
	r0 := New(Options{Seed: seed}).Rand()
	if drawn := 3 + r0.IntN(5); n == 0 {
		n = drawn
	}
	paths := 1 + r0.IntN(2)
	q := ring.Availability
	if r0.IntN(4) == 0 {
		q = ring.Majority
	}
	s := New(Options{Seed: seed, N: n, Paths: paths, Link: LAN, Replay: replay, Trace: true, Quorum: q, Ring: mod})
	s.logf("--- %d nodes, %d paths, quorum %v", n, paths, q)
	r := s.Rand()
	s.StartAll()
	s.Run(int64(s.cfg.JoinTimeout)*2*TickUS + 200_000)
	if _, ok := s.RunUntilConverged(MergeBound(s.cfg)); !ok {
		s.Failf("cold start of %d nodes did not converge: %v", n, s.Converged())
	}
	pick := func() ring.NodeID { return ring.NodeID(1 + r.IntN(n)) }
	phases := 3 + r.IntN(4)
	for p := 0; p < phases && s.Err() == nil; p++ {
		dur := int64(100_000 + r.IntN(500_000))
		switch f := r.IntN(13); f {
		case 0: // crash on a healthy network: detection bound
			s.Heal()
			for _, id := range s.Up() {
				s.Resume(id)
			}
			if _, ok := s.RunUntilConverged(MergeBound(s.cfg)); !ok {
				s.Failf("did not converge before the crash phase: %v", s.Converged())
				break
			}
			if len(s.Up()) < 2 {
				break
			}
			id := s.Up()[r.IntN(len(s.Up()))]
			at := s.Now()
			s.Crash(id)
			s.Run(DetectBound(s.cfg))
			s.CheckRemoved(id, at)
		case 1: // restart whatever is down
			for i := 1; i <= n; i++ {
				if _, up := s.Status(ring.NodeID(i)); !up {
					s.Start(ring.NodeID(i))
				}
			}
		case 2:
			id := pick()
			s.Pause(id)
			s.Run(dur)
			s.Resume(id)
		case 3:
			var a, b []ring.NodeID
			for i := 1; i <= n; i++ {
				if r.IntN(2) == 0 {
					a = append(a, ring.NodeID(i))
				} else {
					b = append(b, ring.NodeID(i))
				}
			}
			s.Partition(a, b)
		case 4:
			from, to := pick(), pick()
			if from != to {
				s.Cut(from, to)
			}
		case 5:
			from, to := pick(), pick()
			l := LAN
			l.Loss = 0.05 + 0.3*r.Float64()
			s.SetLink(from, to, r.IntN(paths), l)
			s.logf("--- loss %.0f%% n%d->n%d", l.Loss*100, from, to)
		case 6:
			l := LAN
			l.Dup, l.Reorder = 0.1, 0.2
			for a := 1; a <= n; a++ {
				for b := 1; b <= n; b++ {
					if a != b {
						s.SetLink(ring.NodeID(a), ring.NodeID(b), -1, l)
					}
				}
			}
			s.logf("--- duplication 10%%, reordering 20%% everywhere")
		case 7:
			s.Leave(pick())
		case 8:
			s.Crash(pick())
		case 9: // a monitor fails or recovers
			id := pick()
			s.SetHealthy(id, s.node(id).unhealthy)
		case 10: // an operator closes or opens a node through another
			s.CloseNode(pick(), pick(), r.IntN(2) == 0)
		case 11: // an operator's VIP operation at any node (not close: a
			// closed VIP is answered by nobody, which Converged refuses)
			op := ringstate.VIPOp{Action: []ringstate.VIPAction{ringstate.VIPMove, ringstate.VIPPrefer,
				ringstate.VIPUnprefer, ringstate.VIPStick, ringstate.VIPUnstick}[r.IntN(5)], VIP: s.vips[r.IntN(len(s.vips))]}
			if op.Action == ringstate.VIPMove {
				op.Node = vipstate.Node(pick())
			}
			s.VIPOp(pick(), op)
		case 12: // traffic changes: balancing may move VIPs
			load := ringstate.Load{}
			for _, v := range s.vips {
				if r.IntN(2) == 0 {
					load[v] = uint64(r.IntN(1_000_000_000))
				}
			}
			s.SetLoad(load)
		}
		s.Run(dur)
	}
	if s.Err() == nil {
		s.Heal()
		for _, id := range s.Up() {
			s.Resume(id)
		}
		if took, ok := s.RunUntilConverged(MergeBound(s.cfg)); !ok {
			s.Failf("not one ring %.0fms after the heal (bound %.0fms): %v", float64(took)/1000,
				float64(MergeBound(s.cfg))/1000, s.Converged())
		}
	}
	return s, s.Err()
}

// FormatTranscript renders the transcript's last lines for a failure message.
func FormatTranscript(s *Sim, last int) string {
	l := s.Transcript()
	if len(l) > last {
		l = l[len(l)-last:]
	}
	out := ""
	for _, x := range l {
		out += x + "\n"
	}
	return fmt.Sprintf("last %d transcript lines:\n%s", len(l), out)
}
