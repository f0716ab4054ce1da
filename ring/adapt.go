package ring

// Adaptive timeouts: the ring's timers follow what the node measures
// instead of assuming a LAN and an idle host.
//
// Why: 32 full daemons started at once on a 2-core host (docs/ring.md,
// "The N=32 collapse") missed the fixed 28 ms ack budget whenever a peer
// was not scheduled in time (its acks are sent when its process runs), and
// a 911 whose answers sat unread in the asker's own socket while it was
// descheduled was decided with nobody heard: the asker regenerated a ring
// of itself. Every split made more work (merges, 911s to every node, VIPs
// moving and defended by ARP), which delayed everyone further, and the
// cluster never settled. Three measures, after TCP (RFC 6298) and
// memberlist's Lifeguard ("local health awareness"):
//
//   - per-peer retransmission timeout: each acknowledged first try is a
//     round-trip sample (Karn: resent messages are not timed); a message's
//     first resend waits srtt + 4·rttvar, at least AckTimeout and at most
//     maxRTOFactor × AckTimeout (a peer never timed: unmeasuredFactor ×
//     AckTimeout, conservative like TCP's initial RTO). On an idle LAN the samples are under a tick and
//     nothing changes; a peer whose process is slow to run widens its own
//     budget, so the ring slows down around it instead of dropping it.
//   - local health: a node that has itself been slow (its driver reported
//     a stall of stallTicks or more, Lag) raises a multiplier lhm
//     (0..maxLHM) on every timeout it uses to accuse others (message
//     timeouts, the 911's wait for answers, token loss); a healthy stretch
//     of healthyTicks lowers it by one. A slow node thus widens its own
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

const (
	maxRTOFactor     = 8     // the per-peer first timeout is at most this × AckTimeout
	unmeasuredFactor = 3     // first timeout to a peer never timed: this × AckTimeout
	maxLHM           = 4     // local health multiplier cap: timeouts at most (1+maxLHM)×
	healthyTicks     = 500   // ticks without a health problem that lower lhm by one (1 s)
	stallTicks       = 2     // a Lag of at least this many ticks counts against health
	rttScale         = 8     // srtt and rttvar are kept in 1/8 ticks (RFC 6298 fixed point)
	maxSampleTicks   = 10000 // samples are clamped to this (a peer paused for minutes)
)

// rttEst is one peer's smoothed round trip (RFC 6298), in 1/8 ticks.
type rttEst struct {
	srtt, rttvar int64
	n            int // samples so far
	// backoff is the resend timeout, in ticks, at which the peer's last
	// message was acknowledged after a resend (Karn: such an ack times
	// nothing, but the next first try waits that long, or a peer slower
	// than its estimate would never be timed again); 0 after a clean
	// sample.
	backoff int
}

func (e *rttEst) sample(ticks int64) {
	r := min(max(ticks, 0), maxSampleTicks) * rttScale
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
	if n.cfg.FixedTimers {
		return base
	}
	if ok && e.n == 0 && e.backoff > 0 {
		return min(max(base*unmeasuredFactor, e.backoff), base*maxRTOFactor)
	}
	if !ok || e.n == 0 {
		// Like TCP's initial RTO, conservative until measured: at a
		// cold start of many daemons on one host the first acks are
		// slow (docs/ring.md).
		return base * unmeasuredFactor
	}
	t := int((e.srtt + max(4*e.rttvar, rttScale) + rttScale - 1) / rttScale)
	return min(max(t, base, e.backoff), base*maxRTOFactor)
}

// firstTimeout is a new message's first resend timeout to peer to.
func (n *Node) firstTimeout(to NodeID) int {
	return n.rto(to) * (1 + n.health())
}

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
	if n.cfg.FixedTimers {
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
	if n.cfg.TokenLoss == 0 && n.gapMax > 0 && !n.cfg.FixedTimers {
		t = max(t, n.gapMax+int64(n.maxBudget())+2)
	}
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

// Lag tells the node that its driver could not tick it for ticks ticks
// (the process was not scheduled: a stall). Those ticks are gone; the
// inputs that arrived meanwhile have not been stepped yet. Deadlines due
// within the next tick move to the tick after it, so those inputs are
// stepped first; a stall of stallTicks or more counts against local
// health. Call it before the Tick that follows the stall.
func (n *Node) Lag(ticks int) {
	if ticks <= 0 || n.mode == ModeLeft || n.cfg.FixedTimers {
		return
	}
	grace := n.now + 2
	for _, o := range n.rl.out {
		o.nextAt = max(o.nextAt, grace)
		if o.hedgeAt != 0 {
			o.hedgeAt = max(o.hedgeAt, grace-1)
		}
	}
	if n.query != nil {
		n.query.deadline = max(n.query.deadline, grace)
	}
	if ticks >= stallTicks {
		n.unhealthy()
	}
	// Token loss fires when now − from > tokLoss: from ≥ grace − 1 −
	// tokLoss keeps it quiet through the next tick.
	n.waitFrom = max(n.waitFrom, grace-1-n.tokLoss)
	n.lastQry = max(n.lastQry, grace-1-n.tokLoss)
	if n.mode == ModeStarting && n.started {
		n.startEnd = max(n.startEnd, grace)
	}
}
