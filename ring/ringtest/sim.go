package ringtest

import (
	"container/heap"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// TickUS is the simulated tick, in microseconds.
const TickUS = ring.TickMillis * 1000

// Link is the behaviour of one direction of one path between two nodes.
type Link struct {
	Loss     float64 // probability a datagram is lost
	DelayMin int64   // µs
	DelayMax int64   // µs; each datagram's delay is uniform in [DelayMin, DelayMax] (jitter)
	Dup      float64 // probability a datagram is delivered twice
	Reorder  float64 // probability a datagram is held back by up to 4 × DelayMax extra
	Cut      bool    // nothing passes (one-way)
}

// LAN is a healthy LAN link: 0.1-0.5 ms.
var LAN = Link{DelayMin: 100, DelayMax: 500}

// Options configures a Sim.
type Options struct {
	Seed  uint64
	N     int // nodes in the node map
	Paths int // redundant paths (default 1)
	VIPs  int // VIPs in the table (default 8)
	Link  Link
	// Ring adjusts each node's ring config (start: ring.DefaultConfig()).
	Ring func(c *ring.Config)
	// Replay is the command line printed with a failure; %d is the seed.
	Replay string
	// Trace records a transcript of protocol events and simulator actions.
	Trace       bool
	TraceTokens bool
	// NoChecks turns the per-event invariant checks off (benchmarks).
	NoChecks bool
	// Quorum is every node's quorum mode.
	Quorum ring.Quorum
	// Holder, if set, replaces the production Holder (checker tests).
	Holder func(id ring.NodeID, real ring.Holder) ring.Holder
	// Host models the CPU time of a real node on a shared machine; the
	// zero value handles every input the instant it is due.
	Host Host
}

type nodeState struct {
	id      ring.NodeID
	n       *ring.Node
	up      bool // started and not crashed or left
	paused  bool
	inc     int // incarnation, bumps on every (re)start
	state   *ring.State
	owned   []netip.Addr
	maxSeq  uint64
	held    []delivery
	crashAt int64
	left    bool
	quiet   int // ticks the node promised idle (IdleTicks) since its last output
	// unhealthy is what the node says of itself (SetHealthy, through
	// ring.Node.SetLocal); it outlives restarts, like a failing monitor.
	unhealthy bool
	// Host model (host.go): when the node's queued work ends, the core it
	// last ran on, the due time of its tick waiting for a core (0: none)
	// and the ticks dropped meanwhile.
	busyUntil int64
	served    []ring.NodeID // members of the last committed state
	core      int
	tickJob   int64
	missed    int
}

type delivery struct {
	from, to ring.NodeID
	path     int
	data     []byte
	inc      int // destination incarnation when sent
}

type event struct {
	at   int64
	ord  uint64
	tick ring.NodeID // tick for this node, or
	inc  int
	d    *delivery // a delivery
	fn   func()    // a scheduled action
	job  *job      // a node's input whose CPU time has passed (Host)
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].ord < q[j].ord
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type linkKey struct {
	from, to ring.NodeID
	path     int
}

// Sim is one simulated cluster.
type Sim struct {
	opt     Options
	rng     *rand.Rand
	now     int64
	ord     uint64
	q       queue
	nodes   []*nodeState
	links   map[linkKey]Link
	group   []int // partition group per node index
	initial vipstate.Table
	load    []byte // every node's measured load (SetLoad), a ringstate.Load
	vips    []netip.Addr
	cfg     ring.Config // node 1's config, for bounds

	lines []string
	err   error
	stats Stats
	host  hostState
	// events and states count protocol events and served-state changes
	// (the Host model's costs).
	events, states uint64
	garps          uint64 // VIPs acquired (two GARPs each)
	defending      bool
	// OnEvent, if set, sees every protocol event (benchmarks).
	OnEvent func(at int64, e ring.Event)
	// OnState, if set, sees every committed state.
	OnState func(at int64, id ring.NodeID, s *ring.State)
}

// Stats counts what the network and nodes did.
type Stats struct {
	Sent, Lost, Delivered, Duplicated uint64
	TokenBytes, TokenHops             uint64
	Regenerations                     uint64
	Checks                            uint64
}

// New builds a simulation; every node is down until Start.
func New(opt Options) *Sim {
	if opt.Paths == 0 {
		opt.Paths = 1
	}
	if opt.VIPs == 0 {
		opt.VIPs = 8
	}
	if opt.Replay == "" {
		opt.Replay = "go test ./ring/ringtest -run TestSim -seed=%d -v"
	}
	s := &Sim{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5eed)), links: map[linkKey]Link{}}
	s.group = make([]int, opt.N)
	rows := make([]vipstate.Row, opt.VIPs)
	for i := range rows {
		rows[i] = vipstate.Row{VIP: netip.AddrFrom4([4]byte{198, 51, byte(100 + i/250), byte(1 + i%250)})}
		s.vips = append(s.vips, rows[i].VIP)
	}
	t, err := vipstate.New(opt.N, rows)
	if err != nil {
		panic(err)
	}
	s.initial = t
	for i := 0; i < opt.N; i++ {
		s.nodes = append(s.nodes, &nodeState{id: ring.NodeID(i + 1)})
	}
	s.cfg = s.config(1, 0)
	return s
}

func (s *Sim) config(id ring.NodeID, inc int) ring.Config {
	c := ring.DefaultConfig()
	c.ID = id
	for i := 1; i <= s.opt.N; i++ {
		c.Nodes = append(c.Nodes, ring.NodeID(i))
	}
	c.Paths = s.opt.Paths
	r := rand.New(rand.NewPCG(s.opt.Seed, uint64(id)<<32|uint64(inc)))
	c.Rand = r.Uint64
	c.Holder = ringstate.New(ringstate.Config{Initial: s.initial, Balance: vipstate.DefaultBalanceConfig()})
	if s.opt.Holder != nil {
		c.Holder = s.opt.Holder(id, c.Holder)
	}
	c.TraceTokens = s.opt.TraceTokens
	c.Quorum = s.opt.Quorum
	if s.opt.Ring != nil {
		s.opt.Ring(&c)
	}
	return c
}

// Config returns the ring config of node 1 (timers, for bounds).
func (s *Sim) Config() ring.Config { return s.cfg }

// Now is the simulated time in µs.
func (s *Sim) Now() int64 { return s.now }

// Rand is the simulation's random source (scenario choices).
func (s *Sim) Rand() *rand.Rand { return s.rng }

// VIPs returns the VIPs of the table.
func (s *Sim) VIPs() []netip.Addr { return s.vips }

// Stats returns the counters.
func (s *Sim) Stats() Stats { return s.stats }

func (s *Sim) node(id ring.NodeID) *nodeState { return s.nodes[id-1] }

func (s *Sim) push(e *event) {
	s.ord++
	e.ord = s.ord
	heap.Push(&s.q, e)
}

// At schedules fn at simulated time at (µs).
func (s *Sim) At(at int64, fn func()) { s.push(&event{at: at, fn: fn}) }

func (s *Sim) logf(format string, args ...any) {
	if s.opt.Trace {
		s.lines = append(s.lines, fmt.Sprintf("%9.3fms ", float64(s.now)/1000)+fmt.Sprintf(format, args...))
	}
}

// Start boots node id (a fresh incarnation, as after a restart).
func (s *Sim) Start(id ring.NodeID) {
	ns := s.node(id)
	if ns.up {
		return
	}
	ns.inc++
	n, err := ring.NewNode(s.config(id, ns.inc))
	if err != nil {
		panic(err)
	}
	ns.n, ns.up, ns.paused, ns.left, ns.state, ns.owned, ns.maxSeq, ns.held = n, true, false, false, nil, nil, 0, nil
	n.SetLocal(s.local(ns))

	ns.quiet, ns.tickJob, ns.missed = 0, 0, 0
	s.logf("--- start n%d", id)
	if s.hostOn() {
		if s.opt.Host.StartCost > 0 {
			s.schedule(ns, s.now, s.opt.Host.StartCost)
		}
		if s.opt.Host.DefendEvery > 0 && !s.defending {
			s.defending = true
			s.At(s.now+s.opt.Host.DefendEvery, s.defend)
		}
	}
	phase := s.rng.Int64N(TickUS)
	s.push(&event{at: s.now + phase + 1, tick: id, inc: ns.inc})
}

// StartAll boots every node.
func (s *Sim) StartAll() {
	for _, ns := range s.nodes {
		s.Start(ns.id)
	}
}

// Crash stops node id at once (kill -9 / power off).
func (s *Sim) Crash(id ring.NodeID) {
	ns := s.node(id)
	if !ns.up {
		return
	}
	ns.up, ns.paused, ns.held = false, false, nil
	ns.crashAt = s.now
	s.logf("--- crash n%d", id)
}

// SetHealthy sets what node id's monitors report, through the core's
// input (ring.Node.SetLocal), as the node package does: an unhealthy node
// hands its VIPs over at its next turn. It holds across restarts.
func (s *Sim) SetHealthy(id ring.NodeID, healthy bool) {
	ns := s.node(id)
	if ns.unhealthy == healthy {
		ns.unhealthy = !healthy
		s.logf("--- n%d healthy %v", id, healthy)
	}
	if ns.up {
		ns.n.SetLocal(s.local(ns))
	}
}

// SetLoad sets the traffic of each VIP in bytes/s (a VIP not named has
// none). The traffic follows the VIP: every node measures the same map and
// its Holder writes the rates of the VIPs it owns, as the node package's
// router counters do. Balancing reads them.
func (s *Sim) SetLoad(load ringstate.Load) {
	b, err := load.MarshalBinary()
	if err != nil {
		panic(err)
	}
	s.load = b
	s.logf("--- load %s", formatLoad(load))
	for _, ns := range s.nodes {
		if ns.up {
			ns.n.SetLocal(s.local(ns))
		}
	}
}

func formatLoad(l ringstate.Load) string {
	vips := slices.SortedFunc(maps.Keys(l), netip.Addr.Compare)
	parts := make([]string, len(vips))
	for i, v := range vips {
		parts[i] = fmt.Sprintf("%v=%d", v, l[v])
	}
	return strings.Join(parts, " ")
}

// local is what node ns says of itself on the token.
func (s *Sim) local(ns *nodeState) ring.Local {
	return ring.Local{Unhealthy: ns.unhealthy, Load: s.load}
}

// CloseNode proposes `ringway node close|open node` at node at (applied
// at its next turn as a member with quorum), through ring.Node.Propose as
// the node package does.
func (s *Sim) CloseNode(at, node ring.NodeID, close bool) {
	_, data, err := ringstate.ProposeNodeOp(ringstate.NodeOp{Node: vipstate.Node(node), Close: close})
	if err != nil {
		panic(err)
	}
	if id, ok := s.propose(at, ringstate.ProposeNode, data); ok {
		s.logf("--- at n%d: #%d node close=%v n%d", at, id, close, node)
	}
}

// VIPOp proposes an operator's VIP operation (`ringway vip move ...`) at
// node at, through ring.Node.Propose.
func (s *Sim) VIPOp(at ring.NodeID, op ringstate.VIPOp) {
	_, data, err := ringstate.ProposeVIPOp(op)
	if err != nil {
		panic(err)
	}
	if id, ok := s.propose(at, ringstate.ProposeVIP, data); ok {
		s.logf("--- at n%d: #%d vip %v %v n%d", at, id, op.Action, op.VIP, op.Node)
	}
}

// propose hands a proposal to node at's core if it is up.
func (s *Sim) propose(at ring.NodeID, kind uint16, data []byte) (uint64, bool) {
	ns := s.node(at)
	if !ns.up {
		return 0, false
	}
	id, err := ns.n.Propose(kind, data)
	if err != nil {
		s.logf("--- at n%d: proposal refused: %v", at, err)
		return 0, false
	}
	return id, true
}

// Pause freezes node id: no ticks; datagrams wait in its socket buffer.
func (s *Sim) Pause(id ring.NodeID) {
	if ns := s.node(id); ns.up && !ns.paused {
		ns.paused = true
		s.logf("--- pause n%d", id)
	}
}

// Resume unfreezes node id and hands it what arrived meanwhile.
func (s *Sim) Resume(id ring.NodeID) {
	ns := s.node(id)
	if !ns.up || !ns.paused {
		return
	}
	ns.paused = false
	s.logf("--- resume n%d", id)
	held := ns.held
	ns.held = nil
	for _, d := range held {
		s.deliver(d)
	}
}

// Leave asks node id to leave gracefully.
func (s *Sim) Leave(id ring.NodeID) {
	ns := s.node(id)
	if !ns.up || ns.paused {
		return
	}
	s.logf("--- leave n%d", id)
	ns.n.Leave()
	s.drain(ns)
}

// SetLink sets one direction of one path (path < 0: every path).
func (s *Sim) SetLink(from, to ring.NodeID, path int, l Link) {
	for p := 0; p < s.opt.Paths; p++ {
		if path < 0 || p == path {
			s.links[linkKey{from, to, p}] = l
		}
	}
}

// Cut cuts from→to on every path (one way).
func (s *Sim) Cut(from, to ring.NodeID) {
	l := s.link(from, to, 0)
	l.Cut = true
	s.SetLink(from, to, -1, l)
	s.logf("--- cut n%d->n%d", from, to)
}

// Partition splits the cluster: nodes in different groups cannot talk.
// Nodes not listed form one more group together.
func (s *Sim) Partition(groups ...[]ring.NodeID) {
	for i := range s.group {
		s.group[i] = 0
	}
	var desc []string
	for g, ids := range groups {
		for _, id := range ids {
			s.group[id-1] = g + 1
		}
		desc = append(desc, fmt.Sprint(ids))
	}
	s.logf("--- partition %s", strings.Join(desc, " | "))
}

// Heal restores every link to the default and ends every partition.
func (s *Sim) Heal() {
	clear(s.links)
	for i := range s.group {
		s.group[i] = 0
	}
	s.logf("--- heal")
}

func (s *Sim) link(from, to ring.NodeID, path int) Link {
	if l, ok := s.links[linkKey{from, to, path}]; ok {
		return l
	}
	return s.opt.Link
}

// Run advances the simulation by d µs.
func (s *Sim) Run(d int64) {
	end := s.now + d
	for len(s.q) > 0 && s.q[0].at <= end {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		switch {
		case e.fn != nil:
			e.fn()
		case e.d != nil:
			s.deliver(*e.d)
		case e.job != nil:
			s.runJob(e.job)
		default:
			ns := s.node(e.tick)
			if !ns.up || ns.inc != e.inc {
				continue
			}
			s.push(&event{at: s.now + TickUS, tick: e.tick, inc: e.inc})
			if ns.paused {
				continue
			}
			if s.hostOn() {
				s.hostTick(ns, s.now)
				continue
			}
			s.tickNow(ns)
		}
	}
	s.now = end
}

// tickNow ticks node ns and handles its output.
func (s *Sim) tickNow(ns *nodeState) {
	ns.n.Tick()
	if ns.quiet > 0 {
		ns.quiet--
		if ns.n.HasReady() {
			st := ns.n.Status()
			r := ns.n.Ready()
			s.fail("n%d produced output on a tick it promised idle (IdleTicks): %d packets, state %v, events %v; status %+v", ns.id, len(r.Packets), r.State != nil, r.Events, st)
		}
	}
	s.drain(ns)
}

// RunTicks runs for k ticks.
func (s *Sim) RunTicks(k int) { s.Run(int64(k) * TickUS) }

func (s *Sim) deliver(d delivery) {
	ns := s.node(d.to)
	if !ns.up || ns.inc != d.inc {
		return
	}
	if ns.paused {
		if len(ns.held) < 1024 {
			ns.held = append(ns.held, d)
		}
		return
	}
	if s.hostOn() {
		s.hostDeliver(d)
		return
	}
	s.stats.Delivered++
	_ = ns.n.Step(d.from, d.path, d.data)
	s.drain(ns)
}

func (s *Sim) drain(ns *nodeState) {
	defer func() {
		if ns.up {
			ns.quiet = ns.n.IdleTicks()
		}
	}()
	if !ns.n.HasReady() {
		if !s.opt.NoChecks {
			s.check(ns)
		}
		return
	}
	r := ns.n.Ready()
	for _, p := range r.Packets {
		s.send(ns.id, p)
	}
	s.events += uint64(len(r.Events))
	for _, e := range r.Events {
		if e.Kind == ring.EventRegenerated {
			s.stats.Regenerations++
		}
		if s.OnEvent != nil {
			s.OnEvent(s.now, e)
		}
		s.logf("%v", e)
	}
	if r.State != nil {
		ns.state = r.State
		owned, err := ringstate.Owned(r.State, ns.id)
		if err != nil {
			s.fail("n%d committed a state whose VIP table does not decode: %v", ns.id, err)
		}
		if !slices.Equal(owned, ns.owned) || !slices.Equal(r.State.Members, ns.served) {
			s.states++
		}
		for _, v := range owned {
			if !slices.Contains(ns.owned, v) {
				s.garps += 2
			}
		}
		ns.owned = owned
		ns.served = slices.Clone(r.State.Members)
		if s.OnState != nil {
			s.OnState(s.now, ns.id, r.State)
		}
		if !s.opt.NoChecks {
			s.checkCoverage(ns)
		}
	}
	if r.Left {
		ns.up, ns.left = false, true
		s.logf("--- n%d has left", ns.id)
	}
	if !s.opt.NoChecks {
		s.check(ns)
	}
}

func (s *Sim) send(from ring.NodeID, p ring.Packet) {
	s.stats.Sent++
	if len(p.Data) > ring.MaxPacket {
		s.fail("n%d emitted a %d-byte packet, more than MaxPacket", from, len(p.Data))
	}
	if len(p.Data) > 1 && p.Data[1] == byte(ring.FrameData) {
		s.stats.TokenBytes += uint64(len(p.Data))
	}
	if p.To == 0 || int(p.To) > len(s.nodes) || p.Path < 0 || p.Path >= s.opt.Paths {
		s.fail("n%d emitted a packet to n%d path %d", from, p.To, p.Path)
		return
	}
	if s.group[from-1] != s.group[p.To-1] {
		s.stats.Lost++
		return
	}
	l := s.link(from, p.To, p.Path)
	if l.Cut || (l.Loss > 0 && s.rng.Float64() < l.Loss) {
		s.stats.Lost++
		return
	}
	copies := 1
	if l.Dup > 0 && s.rng.Float64() < l.Dup {
		copies = 2
		s.stats.Duplicated++
	}
	dest := s.node(p.To)
	for c := 0; c < copies; c++ {
		delay := l.DelayMin
		if l.DelayMax > l.DelayMin {
			delay += s.rng.Int64N(l.DelayMax - l.DelayMin + 1)
		}
		if l.Reorder > 0 && s.rng.Float64() < l.Reorder {
			delay += s.rng.Int64N(4*l.DelayMax + 1)
		}
		s.push(&event{at: s.now + delay, d: &delivery{from: from, to: p.To, path: p.Path, data: p.Data, inc: dest.inc}})
	}
}

// Transcript returns the recorded lines.
func (s *Sim) Transcript() []string { return s.lines }

// Status returns node id's status, ok false when it is down.
func (s *Sim) Status(id ring.NodeID) (ring.Status, bool) {
	ns := s.node(id)
	if !ns.up {
		return ring.Status{}, false
	}
	return ns.n.Status(), true
}

// State returns node id's last committed state (nil if none or down).
func (s *Sim) State(id ring.NodeID) *ring.State {
	if ns := s.node(id); ns.up {
		return ns.state
	}
	return nil
}

// Up lists the nodes that are running.
func (s *Sim) Up() []ring.NodeID {
	var out []ring.NodeID
	for _, ns := range s.nodes {
		if ns.up {
			out = append(out, ns.id)
		}
	}
	return out
}

// Owners maps each VIP to the nodes that answer it now.
func (s *Sim) Owners() map[netip.Addr][]ring.NodeID {
	m := map[netip.Addr][]ring.NodeID{}
	for _, ns := range s.nodes {
		if !ns.up {
			continue
		}
		for _, v := range ns.owned {
			m[v] = append(m[v], ns.id)
		}
	}
	return m
}

// RunUntil runs in quarter ticks until cond holds or limit µs passed.
func (s *Sim) RunUntil(cond func() bool, limit int64) bool {
	start := s.now
	for s.now-start <= limit {
		if cond() {
			return true
		}
		s.Run(TickUS / 4)
	}
	return cond()
}

// Holding returns the running node that holds the token (not in flight), or 0.
func (s *Sim) Holding() ring.NodeID {
	for _, ns := range s.nodes {
		if ns.up && !ns.paused && ns.n.Status().Holding {
			return ns.id
		}
	}
	return 0
}

// LogOwners writes who answers each VIP into the transcript.
func (s *Sim) LogOwners() {
	own := s.Owners()
	var parts []string
	for _, v := range s.vips {
		parts = append(parts, fmt.Sprintf("%d:%v", v.As4()[3], own[v]))
	}
	s.logf("=== owners (VIP:[nodes]) %s", strings.Join(parts, " "))
	for _, ns := range s.nodes {
		if !ns.up {
			continue
		}
		st := ns.n.Status()
		s.logf("=== n%d %v ring=%04x members=%v", ns.id, st.Mode, st.RingID&0xffff, st.Members)
	}
}

// Inject delivers data to node to as if node from had sent it on path 0
// (a forgery that got past authentication; checker tests).
func (s *Sim) Inject(from, to ring.NodeID, data []byte) {
	s.deliver(delivery{from: from, to: to, data: data, inc: s.node(to).inc})
}
