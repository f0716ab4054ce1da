package ringtest

import (
	"math"

	"github.com/ringway/ringway/ring"
)

// Host models what the simulator otherwise leaves out: the machine the
// nodes run on. Without it (the zero value) every datagram and every tick
// is handled the instant it is due. With it every node is a process on a
// host of Cores CPUs shared with every other node and with background work
// (other processes): handling an input costs CPU time that grows with the
// work (a wakeup, each datagram in or out, the bytes of the token and its
// carriages, each committed state the node applies, each event it logs),
// and a node waits for a free core, so its handling is delayed by its own
// queue and by everybody else's. The delays feed back: a ring that churns
// does more work (911s to every node, merges, states to apply), which
// delays everyone further. This is how 32 full daemons on a 2-core machine
// behaved (docs/ring.md, "The N=32 collapse").
//
// Ticks follow the driver (ring/ringnet): a tick the core promised idle
// (IdleTicks) costs nothing; one that may act is a wakeup like a
// datagram; ticks that come due while a node waits for a core are dropped,
// as the driver drops ticks after a stall, and the core is told how many
// it missed (ring.Node.Lag) before the tick that acts.
type Host struct {
	Cores      int     // CPUs shared by every node; 0 turns the model off
	Wakeup     int64   // µs of CPU to wake a node that was idle (thread switch, runtime)
	PerPacket  int64   // µs per datagram received or sent (system call, AES-GCM)
	PerKB      int64   // µs per KB of message received (decode, Holder, encode)
	PerState   int64   // µs per committed state the node applies (router, ARP)
	PerEvent   int64   // µs per protocol event (a log line)
	Background float64 // cores kept busy by other processes, 0..Cores
	Slice      int64   // µs a background job holds a core once it has it (default 3000: a CFS slice)
	// StartCost is the CPU a node spends starting (router, netlink,
	// nftables) before its ring runs, µs.
	StartCost int64
	// PerARP is what one broadcast ARP costs every node that hears it
	// (each node's router reads every ARP on its subnets), µs. A node
	// that acquires VIPs announces each (two GARPs); while two rings
	// both serve a VIP their owners defend it against each other every
	// DefendEvery µs, so a split costs every node work, all the time.
	PerARP      int64
	DefendEvery int64
}

// LoadedHost is the 2-core machine of docs/ring.md's measurements, with
// other work keeping 1.5 cores busy in 10 ms slices (compilers and test
// binaries of other users), and what a full ringway node cost there.
// Calibrated loosely: 32 nodes take 10-16 s to form one ring here, as 32
// daemons did in the lab at load 10-15.
var LoadedHost = Host{Cores: 2, Background: 1.5, Slice: 10_000, Wakeup: 150, PerPacket: 25, PerKB: 60, PerState: 400, PerEvent: 60, StartCost: 150_000, PerARP: 30, DefendEvery: 50_000}

type hostState struct {
	free   []int64 // per core: when it is next free
	nextBg []int64 // per core: when its next background job arrives
}

type job struct {
	node ring.NodeID
	inc  int
	d    *delivery // nil: a tick
	due  int64     // when the input was due (a tick's grid time)
}

func (s *Sim) hostOn() bool { return s.opt.Host.Cores > 0 }

// schedule runs cost µs of node ns's work as soon as the node and a core
// are free, from time at; it returns when the work is done.
func (s *Sim) schedule(ns *nodeState, at, cost int64) int64 {
	h := &s.host
	if h.free == nil {
		h.free = make([]int64, s.opt.Host.Cores)
		h.nextBg = make([]int64, s.opt.Host.Cores)
		for k := range h.nextBg {
			h.nextBg[k] = s.bgGap()
		}
	}
	start := max(at, ns.busyUntil)
	k := 0
	for i := range h.free {
		s.background(i, start)
		if h.free[i] < h.free[k] {
			k = i
		}
	}
	start = max(start, h.free[k])
	end := start + cost
	h.free[k] = end
	ns.busyUntil = end
	ns.core = k
	return end
}

// charge adds cost µs to the work node ns just did (its output), on the
// core it ran on.
func (s *Sim) charge(ns *nodeState, cost int64) {
	if cost <= 0 {
		return
	}
	ns.busyUntil += cost
	s.host.free[ns.core] = max(s.host.free[ns.core], ns.busyUntil)
}

// background lets core k's background jobs that arrived by time t take
// the core.
func (s *Sim) background(k int, t int64) {
	h := &s.host
	for s.opt.Host.Background > 0 && h.nextBg[k] <= t {
		h.free[k] = max(h.free[k], h.nextBg[k]) + s.slice()
		h.nextBg[k] += s.bgGap()
	}
}

func (s *Sim) slice() int64 {
	if s.opt.Host.Slice > 0 {
		return s.opt.Host.Slice
	}
	return 3000
}

// bgGap draws the time to a core's next background job: exponential, so
// that the core is busy Background/Cores of the time.
func (s *Sim) bgGap() int64 {
	u := s.opt.Host.Background / float64(s.opt.Host.Cores)
	if u <= 0 {
		return math.MaxInt64 / 2
	}
	u = min(u, 0.95)
	mean := float64(s.slice()) / u // between arrivals
	return int64(s.rng.ExpFloat64()*mean) + 1
}

// hostDeliver queues datagram d for its node's CPU.
func (s *Sim) hostDeliver(d delivery) {
	ns := s.node(d.to)
	h := s.opt.Host
	cost := h.PerPacket + h.PerKB*int64(len(d.data))/1024
	if s.now >= ns.busyUntil {
		cost += h.Wakeup
	}
	end := s.schedule(ns, s.now, cost)
	s.push(&event{at: end, job: &job{node: d.to, inc: ns.inc, d: &d, due: s.now}})
}

// hostTick handles a tick of node ns under the host model.
func (s *Sim) hostTick(ns *nodeState, due int64) {
	if ns.quiet > 0 && ns.tickJob == 0 {
		// Promised idle: the driver sleeps through it and delivers it
		// with the next wakeup, at no cost of its own.
		s.tickNow(ns)
		return
	}
	if ns.tickJob != 0 {
		ns.missed++ // due while the node waits: the driver drops it
		return
	}
	cost := s.opt.Host.Wakeup
	end := s.schedule(ns, s.now, cost)
	ns.tickJob = due
	s.push(&event{at: end, job: &job{node: ns.id, inc: ns.inc, due: due}})
}

// runJob does a job whose CPU time has passed.
func (s *Sim) runJob(j *job) {
	ns := s.node(j.node)
	if !ns.up || ns.inc != j.inc {
		return
	}
	if ns.paused {
		if j.d != nil && len(ns.held) < 1024 {
			ns.held = append(ns.held, *j.d)
		}
		if j.d == nil {
			ns.tickJob, ns.missed = 0, 0
		}
		return
	}
	before, events, states, garps := s.stats.Sent, s.events, s.states, s.garps
	if j.d != nil {
		s.stats.Delivered++
		_ = ns.n.Step(j.d.from, j.d.path, j.d.data)
		s.drain(ns)
	} else {
		late := int((s.now - j.due) / TickUS)
		ns.tickJob = 0
		ns.missed = 0
		if late > 0 {
			ns.n.Lag(late)
		}
		s.tickNow(ns)
	}
	h := s.opt.Host
	s.charge(ns, h.PerPacket*int64(s.stats.Sent-before)+h.PerEvent*int64(s.events-events)+h.PerState*int64(s.states-states))
	s.broadcastARP(int64(s.garps - garps))
}

// broadcastARP makes every running node read k broadcast ARPs.
func (s *Sim) broadcastARP(k int64) {
	if k <= 0 || s.opt.Host.PerARP <= 0 {
		return
	}
	for _, o := range s.nodes {
		if o.up && !o.paused {
			s.schedule(o, s.now, k*s.opt.Host.PerARP)
		}
	}
}

// defend is the periodic ARP defence of VIPs served in two rings at
// once: every owner of such a VIP announces it again.
func (s *Sim) defend() {
	var k int64
	for _, owners := range s.Owners() {
		if len(owners) > 1 {
			k += 2 * int64(len(owners))
		}
	}
	s.broadcastARP(k)
	s.At(s.now+s.opt.Host.DefendEvery, s.defend)
}
