package ring

// Adaptive timeouts: the ring's timers follow what the node measures
// instead of assuming a LAN and an idle host.
//
// Why: 32 full daemons started at once on a 2-core host (docs/ring.md,
// "The ring at scale") missed the fixed 28 ms ack budget whenever a peer
// was not scheduled in time (its acks are sent when its process runs), and
// a 911 whose answers sat unread in the asker's own socket while it was
// descheduled was decided with nobody heard: the asker regenerated a ring
// of itself. Every split made more work (merges, 911s to every node, VIPs
// moving and defended by ARP), which delayed everyone further, and the
// cluster never settled. Three measures, after TCP (RFC 6298) and
// memberlist's Lifeguard ("local health awareness"):
//
//   - per-peer retransmission timeout: each acknowledged first try is a
//     round-trip sample; a message acknowledged after resends is timed
//     from its first send (an upper bound: Karn's ambiguity resolved to
//     the safe side, so that a peer slower than its timeout gets timed at
//     all; a loss-induced resend, rare, adds a sample of one timeout);
//     a message's first resend waits srtt + 4·rttvar, at least AckTimeout
//     and at most maxRTOFactor × AckTimeout (a peer never timed:
//     unmeasuredFactor × AckTimeout, conservative like TCP's initial
//     RTO). On an idle LAN the samples are under a tick and nothing
//     changes; a peer whose process is slow to run widens its own budget,
//     so the ring slows down around it instead of dropping it.
//   - local health: a node that has itself been slow (its driver reported
//     a stall of half an ack budget or more, Lag) raises a multiplier lhm
//     (0..maxLHM) on the timeouts whose false firing starts a second token
//     line (the 911's wait for answers, token loss), not on hop budgets
//     (see firstTimeout); a healthy stretch of healthyTicks lowers it by
//     one. A slow node thus widens its own
//     timeouts instead of accusing healthy ones. Lifeguard also counts
//     failed probes and refuted suspicions; here those happen in every
//     partition, where a node alone is not slow, and raising its timeouts
//     would only delay the next detection (a simulator seed showed it),
//     so only the direct evidence counts.
//   - token loss follows the measured gap between the token's visits (with
//     the widest ack budget in use) when that exceeds the static formula,
//     which assumes one tick of transit per hop.
//
// A stall reported by Lag also postpones every deadline due in the next
// tick, so that the inputs that arrived during the stall are stepped
// before any timeout fires on their absence.

// AdaptiveFrom is the smallest node map whose nodes adapt their timeouts
// (unless Config.FixedTimers). Measured on the loaded 2-core lab
// (docs/ring.md, "The ring at scale"): at N=3 adaptive timers made
// fail-over two to three times slower (detection 28-70 ms → 60-540 ms)
// for the false drops they avoided, while a rotation is short and a drop
// costs one rejoin; at N=32 fixed timers never settled (4,787 membership
// changes in 20 s) and adaptive ones did (21 in 30 s), and the rotation
// (about 130 ms) dominates fail-over anyway.
const AdaptiveFrom = 16

// adaptive reports whether this node adapts its timeouts.
func (n *Node) adaptive() bool {
	return !n.cfg.FixedTimers && len(n.cfg.Nodes) >= AdaptiveFrom
}

const (
	maxRTOFactor     = 2     // the per-peer first timeout is at most this × AckTimeout (a budget of 56 ms at the defaults)
	unmeasuredFactor = 3     // first timeout to a peer never timed: this × AckTimeout
	maxLHM           = 4     // local health multiplier cap: timeouts at most (1+maxLHM)×
	healthyTicks     = 500   // ticks without a health problem that lower lhm by one (1 s)
	rttScale         = 8     // srtt and rttvar are kept in 1/8 ticks (RFC 6298 fixed point)
	maxSampleTicks   = 10000 // samples are clamped to this (a peer paused for minutes)
)

// rttEst is one peer's smoothed round trip (RFC 6298), in 1/8 ticks.
type rttEst struct {
	srtt, rttvar int64
	n            int // samples so far
}

// sample records a round trip of ticks whole ticks. One tick is taken
// off: a datagram answered within microseconds still spans a tick
// boundary half the time, and AckTimeout already allows for that (RFC
// 6298's clock granularity G); without it the quantisation noise alone
// raised every LAN peer's timeout from 2 to 3 ticks.
func (e *rttEst) sample(ticks int64) {
	r := min(max(ticks-1, 0), maxSampleTicks) * rttScale
	if e.n == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		d := r - e.srtt
		if d < 0 {
			d = -d
		}
		e.rttvar += (d - e.rttvar) / 4
		e.srtt += (r - e.srtt) / 8
	}
	e.n++
}

// rto is the first resend timeout, in ticks, for a message to peer to,
// before local health.
func (n *Node) rto(to NodeID) int {
	base := n.cfg.AckTimeout
	e, ok := n.rl.est[to]
	if !n.adaptive() {
		return base
	}
	if !ok || e.n == 0 {
		// Like TCP's initial RTO, conservative until measured: at a
		// cold start of many daemons on one host the first acks are
		// slow (docs/ring.md).
		return base * unmeasuredFactor
	}
	t := int((e.srtt + 4*e.rttvar + rttScale - 1) / rttScale)
	return min(max(t, base), base*maxRTOFactor)
}

// firstTimeout is a new message's first resend timeout to peer to. Local
// health does not widen it: a hop that fails costs a drop and a rejoin,
// while wider hop budgets cost every fail-over (measured on the loaded
// lab: N=3 detection p50 40 → 180 ms with health on hop budgets).
func (n *Node) firstTimeout(to NodeID) int { return n.rto(to) }

// health is the local health multiplier now, after the healthy stretch
// since the last problem has lowered it.
func (n *Node) health() int {
	if n.lhm > 0 && n.now-n.lhmAt >= healthyTicks {
		steps := int((n.now - n.lhmAt) / healthyTicks)
		n.lhm = max(n.lhm-steps, 0)
		n.lhmAt += int64(steps) * healthyTicks
	}
	return n.lhm
}

// unhealthy records a sign that this node itself is slow.
func (n *Node) unhealthy() {
	if !n.adaptive() {
		return
	}
	n.health()
	n.lhm = min(n.lhm+1, maxLHM)
	n.lhmAt = n.now
	n.adaptTokenLoss()
}

// maxBudget is the widest ack budget, in ticks, of a message to any other
// member now: the longest one failing hop may hold the token up.
func (n *Node) maxBudget() int {
	t := n.cfg.AckTimeout
	for _, m := range n.tok.Members {
		if m != n.cfg.ID {
			t = max(t, n.rto(m))
		}
	}
	return t * ((1 << (n.cfg.AckRetries + 1)) - 1)
}

// adaptTokenLoss recomputes the token-loss timeout: the static one (or
// the configured one), or the longest gap between the token's visits
// measured lately plus the widest ack budget, whichever is longer; then
// local health. Called when its inputs change (a token accepted, a stall),
// so that IdleTicks, which reads n.tokLoss, stays exact.
func (n *Node) adaptTokenLoss() {
	t := int64(n.cfg.TokenLossTicks())
	if n.cfg.TokenLoss == 0 && n.gapMax > 0 && n.adaptive() {
		t = max(t, n.gapMax+int64(n.maxBudget())+2)
	}
	n.tokLossBase = t
	n.tokLoss = t * int64(1+n.health())
}

// noteGap records the ticks the token was away (from this node's pass to
// its next accept); the maximum decays by an eighth per visit.
func (n *Node) noteGap(gap int64) {
	n.gapMax = max(gap, n.gapMax-n.gapMax/8)
}

// queryWait is how long a 911 waits for answers: two first timeouts to
// the slowest member (at least 2 × AckTimeout + 1, see startQuery), times
// local health.
func (n *Node) queryWait() int64 {
	w := 2*n.cfg.AckTimeout + 1
	for _, m := range n.tok.Members {
		if m != n.cfg.ID {
			w = max(w, 2*n.rto(m)+1)
		}
	}
	return int64(w * (1 + n.health()))
}

// stallTicks is the least Lag that counts against local health: half an
// ack budget (14 ms at the defaults). A timer a few milliseconds late is
// ordinary on a busy virtual machine; counting it made the N=3 lab's
// token loss five times longer (bench-failover p50 52 → 115 ms).
func (n *Node) stallTicks() int { return max(n.cfg.AckBudget()/2, 2) }

// Lag tells the node that its driver could not tick it for ticks ticks
// (the process was not scheduled: a stall). Those ticks are gone; the
// inputs that arrived meanwhile have not been stepped yet. A message
// whose next resend or failure falls due in the next tick, and a 911
// whose answers are due, wait one tick more, so that those inputs are
// stepped first; each at most once, so that a node late at every wakeup
// still times out (a timer a tick late is ordinary and ignored). A stall
// of stallTicks or more also postpones the token-loss timer the same way
// and counts against local health. Call it before the Tick that follows
// the stall.
//
// In quorum mode majority the lost ticks also count against the serving
// lease (lease.go), whatever the node map's size: the lease is real time,
// and a node stopped past it must not wake up serving.
func (n *Node) Lag(ticks int) {
	if n.majority() && ticks > 0 {
		n.leaseAt -= int64(ticks)
	}
	if ticks < 2 || n.mode == ModeLeft || !n.adaptive() {
		return
	}
	grace := n.now + 2
	for _, o := range n.rl.out {
		if !o.deferred && o.nextAt < grace {
			o.nextAt, o.deferred = grace, true
		}
	}
	if q := n.query; q != nil && !q.deferred && q.deadline < grace {
		q.deadline, q.deferred = grace, true
	}
	if ticks < n.stallTicks() {
		return
	}
	n.unhealthy()
	// Token loss fires when now − from > tokLoss: from ≥ grace − 1 −
	// tokLoss keeps it quiet through the next tick.
	n.waitFrom = max(n.waitFrom, grace-1-n.tokLoss)
	n.lastQry = max(n.lastQry, grace-1-n.tokLoss)
	if n.mode == ModeStarting && n.started {
		n.startEnd = max(n.startEnd, grace)
	}
}
