package ringnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Core is what the driver needs from the ring protocol core (*ring.Node
// implements it). The core is not safe for concurrent use: the driver calls
// it under one lock, from whichever of its goroutines has the input (a
// receive goroutine with a datagram, Run with a tick, Do's caller), so that
// an input costs no handoff between goroutines. The lock is never held
// across a system call: the output is queued under it and written after.
//
// Step gets the plaintext of one authentic datagram; it must not keep data
// after it returns (the driver reuses the buffer). Ready drains the pending
// output; HasReady reports whether there is any. Leave starts a graceful
// leave that ends with a Ready whose Left is true.
type Core interface {
	Step(from NodeID, path int, data []byte) error
	Tick()
	HasReady() bool
	Ready() Ready
	Leave()
}

// Lagger is implemented by a core that wants to know when the driver
// could not tick it on time (ring.Node.Lag): before the tick that ends a
// stall (the timer fired a tick or more late), the driver calls Lag with
// the ticks it was late, so that the core does not time out on inputs
// that arrived during the stall and have not been stepped yet.
type Lagger interface {
	Lag(ticks int)
}

// Idler is implemented by a core that can tell how many of its coming Ticks
// would only advance its clock. IdleTicks returns n ≥ 0: if no Step, Leave
// or other call comes first, the next n Ticks change nothing but the clock
// (no output, no timer fires). The driver then sleeps through them and
// delivers them in a batch just before the next input, or together with the
// (n+1)-th tick when that is due: the core's clock keeps wall time while the
// process wakes only when something can happen. A core without it is ticked
// every Config.Tick.
type Idler interface {
	IdleTicks() int
}

// ErrClosed is returned by Run, Do and Leave once the driver has stopped.
var ErrClosed = errors.New("ringnet: driver closed")

// Driver runs one ring core over UDP: one socket per path on this node's
// primary addresses, a timer, and authentication of every datagram. See the
// package documentation.
type Driver struct {
	cfg    Config
	core   Core
	conns  []Conn
	paths  []*sendPath // one per conn
	boot   uint64
	salt   uint64 // the boot's 64 random bits (Header.Salt)
	opener *opener
	stats  counters
	// nodes is cfg.Nodes, grown by AddNodes: the senders read it.
	nodes atomic.Pointer[[][]netip.AddrPort]

	states chan State // latest changed committed state, capacity 1
	events chan Event
	left   chan struct{} // closed when the core reports Left
	// started is closed when Run has started the core's clock; stopped
	// when Run has returned.
	started, stopped chan struct{}

	mu      sync.Mutex // ran, closed, cancel
	ran     bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup // Run
	connsMu sync.Once

	// coreMu guards the core and everything below: every call into the
	// core holds it. A channel of capacity 1 rather than a sync.Mutex, so
	// that a goroutine waiting for it counts as durably blocked inside a
	// testing/synctest bubble.
	coreMu  lock
	clk     *tickClock
	ended   bool   // Run is returning (or the core has left): the core is not called again
	counter uint64 // the last datagram counter of this boot given out (sendPath)
	last    *State // the last state offered on states

	// recent holds the latest core packets to each peer (recent[id-1]),
	// sent again when the peer's boot is learnt (fresh.go).
	recent []recentRing

	// nextLog is when the next not_fresh info line is due, as time since
	// logBase (cfg.Now at New) in nanoseconds; 0 before the first line.
	// The goroutine that moves it on writes the line, without a lock.
	logBase     time.Time
	nextLog     atomic.Int64
	loggedDrops atomic.Uint64 // Stats.Drops[DropNotFresh] at the last line
}

// lock is a mutex made of a channel of capacity 1 (newLock).
type lock chan struct{}

func newLock() lock    { return make(lock, 1) }
func (l lock) Lock()   { l <- struct{}{} }
func (l lock) Unlock() { <-l }

// rxBuf is one receive goroutine's buffer.
type rxBuf struct {
	buf [MaxDatagram + 1]byte // one spare byte reveals oversized datagrams
}

// New checks cfg, binds one socket per path to this node's primary addresses
// (cfg.Nodes[cfg.Self-1]) and returns a driver for core. It starts no
// goroutine: call Run. Close releases the sockets even if Run never ran.
func New(cfg Config, core Core) (*Driver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if core == nil {
		return nil, errors.New("ringnet: nil core")
	}
	var r [10]byte
	if _, err := io.ReadFull(cfg.Rand, r[:]); err != nil {
		return nil, fmt.Errorf("ringnet: boot id: read random: %w", err)
	}
	// Boot ids grow with the boot time so receivers can tell a restart
	// (fresher id) from a replay of an old boot (older id); the random bits
	// separate two boots in one millisecond. The salt's 64 random bits make
	// the boot id (and with it the boot's key and nonces) unpredictable and
	// never shared by two boots, whatever the clock does.
	// The salt is also what peers echo to prove a datagram was sent to
	// this boot (Header.Echo), where 0 means "no boot known": it is never 0.
	boot := uint64(cfg.Now().UnixMilli())<<16 | uint64(binary.BigEndian.Uint16(r[:]))
	salt := max(binary.BigEndian.Uint64(r[2:]), 1)
	d := &Driver{
		cfg:     cfg,
		core:    core,
		boot:    boot,
		salt:    salt,
		opener:  newOpener(cfg.Key, cfg.Self, salt, cfg.Nodes, cfg.StaleBoot, cfg.Tick, cfg.Now),
		states:  make(chan State, 1),
		events:  make(chan Event, cfg.EventQueue),
		left:    make(chan struct{}),
		started: make(chan struct{}),
		coreMu:  newLock(),
		stopped: make(chan struct{}),
		recent:  make([]recentRing, len(cfg.Nodes)),
		logBase: cfg.Now(),
	}
	nodes := slices.Clone(cfg.Nodes)
	d.nodes.Store(&nodes)
	for p := range cfg.Nodes[cfg.Self-1] {
		// Each path seals with its own AEAD instance (the same key): the
		// paths are written concurrently, and cipher.AEAD does not promise
		// to be safe for concurrent use.
		s, err := newSealer(cfg.Key, cfg.Self, boot, salt)
		if err != nil {
			return nil, fmt.Errorf("ringnet: %w", err)
		}
		d.paths = append(d.paths, &sendPath{d: d, index: p, sealer: s,
			buf: make([]byte, 0, MaxDatagram), wake: make(chan struct{}, 1)})
	}
	for p, a := range cfg.Nodes[cfg.Self-1] {
		c, err := cfg.Listen(a)
		if err != nil {
			for _, c := range d.conns {
				c.Close()
			}
			var nl *AddrNotLocalError
			if errors.As(err, &nl) && nl.Node == "" {
				nl.Node = cfg.name(cfg.Self)
			}
			return nil, fmt.Errorf("ringnet: path %d: %w", p, err)
		}
		d.conns = append(d.conns, c)
		d.paths[p].conn = c
		d.paths[p].try, _ = c.(TryWriter)
	}
	return d, nil
}

// Boot returns this driver's boot id (sent in every datagram header).
func (d *Driver) Boot() uint64 { return d.boot }

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (d *Driver) Stats() Stats { return d.stats.snapshot() }

// States delivers committed ring states. Only the latest undelivered state is
// kept: a slow reader skips intermediate states and never blocks the core.
func (d *Driver) States() <-chan State { return d.states }

// Events delivers the core's events. When EventQueue events are waiting,
// newer ones are dropped (Stats.EventsDropped).
func (d *Driver) Events() <-chan Event { return d.events }

// Done is closed when Run has returned (its goroutines have stopped).
func (d *Driver) Done() <-chan struct{} { return d.stopped }

// Left is closed once the core has completed a graceful leave.
func (d *Driver) Left() <-chan struct{} { return d.left }

// Run runs the driver until ctx is done, Close is called or the core has
// left: it starts one receive goroutine per path (each steps the core with
// the datagrams it reads) and one sender goroutine per path (it writes
// the path's datagrams while its socket makes writers wait), ticks the
// core when its next timer is due, and sends what the core asks for. It
// returns nil on any of these ends, after every goroutine it started has
// stopped and the sockets are closed; a Driver runs once.
func (d *Driver) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.ran {
		d.mu.Unlock()
		return errors.New("ringnet: Run called twice")
	}
	d.ran = true
	ctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()
	defer close(d.stopped)
	defer cancel()

	d.cfg.Logger.Info("ring driver started", "node", d.cfg.name(d.cfg.Self), "paths", len(d.conns), "boot", d.boot, "tick", d.cfg.Tick)
	var rwg sync.WaitGroup
	for _, sp := range d.paths {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			sp.sender(ctx)
		}()
	}
	d.coreMu.Lock()
	d.clk = newTickClock(d.cfg.Tick, d.cfg.Now, d.core, d.cfg.Timer)
	// Announce this boot to every peer on every path before the core
	// says anything: each answers with an announce that echoes it, so
	// the core's first messages (its hellos, a tick later) already echo
	// the peers' boots and are fresh where they arrive.
	for id := range *d.nodes.Load() {
		if to := NodeID(id + 1); to != d.cfg.Self {
			for p := range d.paths {
				d.queueAnnounce(to, p)
			}
		}
	}
	d.afterInput(d.flush(), cancel)
	d.coreMu.Unlock()
	d.push()
	close(d.started)
	defer d.clk.timer.stop()
	defer context.AfterFunc(ctx, d.clk.timer.stop)()

	for p, c := range d.conns {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			d.receive(ctx, cancel, p, c)
		}()
	}
	defer func() {
		d.coreMu.Lock()
		d.ended = true
		d.coreMu.Unlock()
		cancel() // the sender goroutines wait for it; the timer may have ended first
		d.closeConns()
		rwg.Wait()
	}()

	for d.clk.timer.wait(ctx) {
		d.coreMu.Lock()
		d.clk.fired()
		if !d.ended {
			d.afterInput(d.clk.advance(d.flush), cancel)
		}
		d.coreMu.Unlock()
		d.push()
	}
	select {
	case <-d.left:
		d.cfg.Logger.Info("ring driver: left the ring", "node", d.cfg.name(d.cfg.Self))
	default:
		d.cfg.Logger.Info("ring driver stopped", "node", d.cfg.name(d.cfg.Self))
	}
	return nil
}

// afterInput ends the driver if the core has left, else sets the timer for
// the core's next tick that may act. The caller holds d.coreMu.
func (d *Driver) afterInput(left bool, cancel context.CancelFunc) {
	if left {
		d.ended = true
		cancel()
		return
	}
	d.clk.arm()
}

// input runs fn on the core under the core lock, after bringing the core's
// clock up to now, and sends what it produces once the lock is released.
// It reports false, without running fn, when the core is not to be called
// any more.
func (d *Driver) input(cancel context.CancelFunc, fn func()) bool {
	d.coreMu.Lock()
	if d.ended {
		d.coreMu.Unlock()
		return false
	}
	left := d.clk.advance(d.flush)
	if !left {
		fn()
		left = d.flush()
	}
	d.afterInput(left, cancel)
	d.coreMu.Unlock()
	d.push()
	return true
}

// push writes what flush queued on every path, outside the core lock.
func (d *Driver) push() {
	for _, sp := range d.paths {
		sp.push()
	}
}

// Close stops Run (if it runs), closes the sockets and waits until every
// goroutine the driver started has returned. Safe to call more than once.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	d.closeConns()
	d.wg.Wait()
	return nil
}

func (d *Driver) closeConns() {
	d.connsMu.Do(func() {
		for _, c := range d.conns {
			c.Close()
		}
	})
}

// Do runs fn on the core, serialised with every other input (under the
// driver's core lock, on the caller's goroutine), once Run has started, and
// waits for it; output fn causes is sent right after (on the caller's
// goroutine after the lock, or queued behind a path that is busy). Use it to read the
// core's status or to act on it from other goroutines. fn must not call Do.
// Do returns ErrClosed once Run has returned (or is returning), and
// ctx.Err() if ctx ends before fn could start.
func (d *Driver) Do(ctx context.Context, fn func(Core)) error {
	select {
	case <-d.started:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if !d.input(cancel, func() { fn(d.core) }) {
		return ErrClosed
	}
	return nil
}

// AddNodes appends nodes to the node map at run time (a reload that
// appended them to every node's file): addrs[i] are the new nodes'
// addresses, one per path. It runs on the core's goroutine (as Do), gives
// the receivers and the senders the new addresses, then calls core, which
// must add the same nodes to the core's node map. Nodes never leave the
// map at run time.
func (d *Driver) AddNodes(ctx context.Context, addrs [][]netip.AddrPort, core func(Core) error) error {
	for i, as := range addrs {
		if len(as) != len(d.paths) {
			return fmt.Errorf("ring: new node %d has %d addresses; give one per path (%d)", len(*d.nodes.Load())+i+1, len(as), len(d.paths))
		}
	}
	var err error
	if derr := d.Do(ctx, func(c Core) {
		old := *d.nodes.Load()
		if len(old)+len(addrs) > 1<<16-1 {
			err = fmt.Errorf("ring: node map of %d nodes, at most 65535", len(old)+len(addrs))
			return
		}
		d.opener.add(addrs)
		d.recent = append(d.recent, make([]recentRing, len(addrs))...)
		nodes := append(slices.Clip(old), addrs...)
		d.nodes.Store(&nodes)
		err = core(c)
	}); derr != nil {
		return derr
	}
	return err
}

// Leave asks the core to leave the ring gracefully (hand its VIPs over on the
// token) and waits until it has, or ctx ends. Run returns after the leave.
func (d *Driver) Leave(ctx context.Context) error {
	if err := d.Do(ctx, func(c Core) { c.Leave() }); err != nil {
		return err
	}
	select {
	case <-d.left:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		select {
		case <-d.left:
			return nil
		default:
			return ErrClosed
		}
	}
}

// flush queues the packets and delivers everything else the core has
// ready; push sends the packets once the core lock is released. It reports
// whether the core has left. The caller holds d.coreMu.
func (d *Driver) flush() (left bool) {
	// Ready drains, so this ends; the bound only guards against a core that
	// keeps producing output in reaction to nothing.
	for i := 0; i < 64 && d.core.HasReady(); i++ {
		rd := d.core.Ready()
		for _, p := range rd.Packets {
			d.queue(p)
		}
		if rd.State != nil {
			d.publish(*rd.State)
		}
		for _, e := range rd.Events {
			select {
			case d.events <- e:
			default:
				d.stats.eventsDropped.Add(1)
			}
		}
		if rd.Left && !left {
			left = true
			close(d.left)
		}
	}
	return left
}

// publish offers s on States(), replacing any undelivered state, unless it
// is the state last offered with only a newer Seq: every token hop commits
// a state, and waking the reader for each would cost it (and the host) a
// wakeup per hop to learn nothing. Only the core's lock holder sends on
// d.states, so after draining it the send cannot block.
func (d *Driver) publish(s State) {
	same := sameState
	if d.cfg.SameState != nil {
		same = d.cfg.SameState
	}
	if d.last != nil && same(d.last, &s) {
		return
	}
	d.last = &s
	select {
	case d.states <- s:
		return
	default:
	}
	select {
	case <-d.states:
	default:
	}
	select {
	case d.states <- s:
	default:
	}
}

// sameState reports whether a and b differ at most in Seq.
func sameState(a, b *State) bool {
	if a.RingID != b.RingID || a.Holder != b.Holder || a.Alone != b.Alone || a.NoQuorum != b.NoQuorum ||
		!slices.Equal(a.Members, b.Members) || (a.Members == nil) != (b.Members == nil) || len(a.Carriages) != len(b.Carriages) {
		return false
	}
	for i := range a.Carriages {
		if a.Carriages[i].Kind != b.Carriages[i].Kind || !bytes.Equal(a.Carriages[i].Data, b.Carriages[i].Data) {
			return false
		}
	}
	return true
}

// queue numbers p with the boot's next counter and queues it on its path
// (sendPath); the caller holds d.coreMu, which orders the counters.
func (d *Driver) queue(p Packet) {
	if p.To == 0 || int(p.To) > len(*d.nodes.Load()) || p.To == d.cfg.Self || p.Path < 0 || p.Path >= len(d.paths) {
		d.stats.txErrors.Add(1)
		if d.debugOn() {
			d.cfg.Logger.Debug("ring: core addressed an unknown node or path", "to", p.To, "path", p.Path)
		}
		return
	}
	// The echo is read once: the datagram carries what remember keeps, so
	// learnt resends exactly the packets that went out with an older one.
	echo := d.opener.echo(p.To)
	d.counter++
	d.paths[p.Path].put(outPacket{to: p.To, counter: d.counter, echo: echo, data: p.Data})
	d.remember(p, echo)
}

// debugOn reports whether debug logging is on. Callers on per-datagram
// paths check it first so the log arguments are not boxed (allocated) per
// datagram when it is off, as it is unless an operator asks.
func (d *Driver) debugOn() bool {
	return d.cfg.Logger.Enabled(context.Background(), slog.LevelDebug)
}

// receive reads path p's socket until it is closed, authenticates each
// datagram and steps the core with the authentic ones, on this goroutine.
func (d *Driver) receive(ctx context.Context, cancel context.CancelFunc, path int, c Conn) {
	b := new(rxBuf)
	for {
		n, src, err := c.ReadFrom(b.buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			if d.debugOn() {
				d.cfg.Logger.Debug("ring: read", "path", path, "err", err)
			}
			// A persistent error must not spin a core; transient ones are rare.
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		h, pt, ev, answer, r := d.opener.open(b.buf[:n], path, src)
		if r == DropNone || r == DropNotFresh {
			d.bootEvent(h, ev)
			if ev != bootSame {
				d.learnt(h.From)
			}
		}
		if r == DropNotFresh {
			if h.Kind == KindAnnounce {
				// Not a drop: an announce carries nothing for the core;
				// its sender has not heard of this boot yet.
				d.stats.announcesReceived.Add(1)
			} else {
				d.stats.drops[r].Add(1)
				d.notFresh(h, path)
			}
			if answer {
				d.answer(h.From, path)
			}
			continue
		}
		if r != DropNone {
			d.stats.drops[r].Add(1)
			if d.debugOn() {
				if r == DropReplay {
					d.cfg.Logger.Debug("ring: drop datagram", "path", path, "src", src, "reason", r, "counter", h.Counter, "newest", d.opener.newest(h.From))
				} else {
					d.cfg.Logger.Debug("ring: drop datagram", "path", path, "src", src, "reason", r)
				}
			}
			continue
		}
		if h.Kind == KindAnnounce {
			d.stats.announcesReceived.Add(1)
			continue
		}
		stepped := d.input(cancel, func() {
			d.stats.rxDatagrams.Add(1)
			d.stats.rxBytes.Add(uint64(n))
			if err := d.core.Step(h.From, path, pt); err != nil {
				d.stats.drops[DropCoreReject].Add(1)
				if d.debugOn() {
					d.cfg.Logger.Debug("ring: core rejected datagram", "from", h.From, "path", path, "err", err)
				}
			}
		})
		if !stepped {
			return
		}
	}
}

// bootEvent counts and logs what an authentic datagram told about its
// sender's boot.
func (d *Driver) bootEvent(h Header, ev bootEvent) {
	switch ev {
	case bootNewer:
		d.stats.peerRestarts.Add(1)
		d.cfg.Logger.Info("ring: peer restarted", "peer", d.cfg.name(h.From), "boot", h.Boot)
	case bootRollback:
		d.stats.peerRollbacks.Add(1)
		d.cfg.Logger.Warn("ring: peer came back with an older boot id than before: its clock went back across a restart, or someone replays its past datagrams",
			"peer", d.cfg.name(h.From), "boot", h.Boot)
	}
}
