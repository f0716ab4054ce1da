package ringnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Core is what the driver needs from the ring protocol core (*ring.Node
// implements it). The core is not safe for concurrent use: the driver calls
// it from one goroutine only, the one running Run.
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
// primary addresses, a ticker, and authentication of every datagram. See the
// package documentation.
type Driver struct {
	cfg    Config
	core   Core
	conns  []Conn
	sealer *sealer
	opener *opener
	stats  counters

	rx     chan *rxBuf // authentic datagrams, receive goroutines → owner
	free   chan *rxBuf // the fixed pool of receive buffers
	do     chan doReq
	states chan State // latest committed state, capacity 1
	events chan Event
	left   chan struct{} // closed when the core reports Left
	// stopped is closed when the owner loop has returned.
	stopped chan struct{}

	mu      sync.Mutex
	ran     bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup // Run
	connsMu sync.Once

	txBuf []byte // owner only
}

type rxBuf struct {
	buf     [MaxDatagram + 1]byte // one spare byte reveals oversized datagrams
	from    NodeID
	path    int
	payload []byte
}

type doReq struct {
	fn   func(Core)
	done chan struct{}
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
	var r [2]byte
	if _, err := io.ReadFull(cfg.Rand, r[:]); err != nil {
		return nil, fmt.Errorf("ringnet: boot id: read random: %w", err)
	}
	// Boot ids grow with the boot time so receivers can tell a restart
	// (fresher id) from a replay of an old boot (older id); the random bits
	// separate two boots in one millisecond.
	boot := uint64(cfg.Now().UnixMilli())<<16 | uint64(binary.BigEndian.Uint16(r[:]))
	s, err := newSealer(cfg.Key, cfg.Self, boot)
	if err != nil {
		return nil, fmt.Errorf("ringnet: %w", err)
	}
	d := &Driver{
		cfg:     cfg,
		core:    core,
		sealer:  s,
		opener:  newOpener(cfg.Key, cfg.Self, cfg.Nodes, cfg.StaleBoot, cfg.Now),
		rx:      make(chan *rxBuf, cfg.QueueLen),
		do:      make(chan doReq),
		states:  make(chan State, 1),
		events:  make(chan Event, cfg.EventQueue),
		left:    make(chan struct{}),
		stopped: make(chan struct{}),
		txBuf:   make([]byte, 0, MaxDatagram),
	}
	mine := cfg.Nodes[cfg.Self-1]
	// Each receive goroutine holds at most one buffer, the queue at most
	// QueueLen and the owner one: the pool never runs dry.
	npool := cfg.QueueLen + len(mine) + 1
	d.free = make(chan *rxBuf, npool)
	for range npool {
		d.free <- new(rxBuf)
	}
	for p, a := range mine {
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
	}
	return d, nil
}

// Boot returns this driver's boot id (sent in every datagram header).
func (d *Driver) Boot() uint64 { return d.sealer.boot }

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
// left: it starts one receive goroutine per path, ticks the core every
// cfg.Tick, and sends what the core asks for. It returns nil on any of these
// ends, after every goroutine it started has stopped and the sockets are
// closed; a Driver runs once.
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

	var rwg sync.WaitGroup
	for p, c := range d.conns {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			d.receive(ctx, p, c)
		}()
	}
	defer func() {
		d.closeConns()
		rwg.Wait()
		// Return queued buffers so a second look at the pool is consistent.
		for {
			select {
			case b := <-d.rx:
				d.free <- b
			default:
				return
			}
		}
	}()

	d.cfg.Logger.Info("ring driver started", "node", d.cfg.name(d.cfg.Self), "paths", len(d.conns), "boot", d.sealer.boot, "tick", d.cfg.Tick)
	clk := newTickClock(d.cfg.Tick, time.Now(), d.core)
	defer clk.timer.Stop()
	if d.flush() {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			d.cfg.Logger.Info("ring driver stopped", "node", d.cfg.name(d.cfg.Self))
			return nil
		case b := <-d.rx:
			if d.advance(clk) {
				return nil
			}
			if err := d.core.Step(b.from, b.path, b.payload); err != nil {
				d.stats.drops[DropCoreReject].Add(1)
				if d.debugOn() {
					d.cfg.Logger.Debug("ring: core rejected datagram", "from", b.from, "path", b.path, "err", err)
				}
			}
			d.free <- b
		case <-clk.timer.C:
			if d.advance(clk) {
				return nil
			}
		case req := <-d.do:
			if d.advance(clk) {
				return nil
			}
			req.fn(d.core)
			close(req.done)
		}
		if d.flush() {
			d.cfg.Logger.Info("ring driver: left the ring", "node", d.cfg.name(d.cfg.Self))
			return nil
		}
		clk.arm()
	}
}

// advance delivers the ticks that are due (see tickClock) and sends what they
// produce. It reports whether the core has left.
func (d *Driver) advance(c *tickClock) bool {
	return c.advance(time.Now(), d.flush)
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

// Do runs fn on the goroutine that owns the core, between two inputs, and
// waits for it; output fn causes is sent right after. Use it to read the
// core's status or to act on it from other goroutines. fn must not call Do.
// Do returns ErrClosed once Run has returned, and ctx.Err() if ctx ends
// before fn could start.
func (d *Driver) Do(ctx context.Context, fn func(Core)) error {
	req := doReq{fn: fn, done: make(chan struct{})}
	select {
	case d.do <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return ErrClosed
	}
	<-req.done
	return nil
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

// flush sends and delivers everything the core has ready. It reports whether
// the core has left.
func (d *Driver) flush() (left bool) {
	// Ready drains, so this ends; the bound only guards against a core that
	// keeps producing output in reaction to nothing.
	for i := 0; i < 64 && d.core.HasReady(); i++ {
		rd := d.core.Ready()
		for _, p := range rd.Packets {
			d.send(p)
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

// publish replaces any undelivered state with s. Only the owner goroutine
// sends on d.states, so after draining it the send cannot block.
func (d *Driver) publish(s State) {
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

func (d *Driver) send(p Packet) {
	if p.To == 0 || int(p.To) > len(d.cfg.Nodes) || p.To == d.cfg.Self || p.Path < 0 || p.Path >= len(d.conns) {
		d.stats.txErrors.Add(1)
		if d.debugOn() {
			d.cfg.Logger.Debug("ring: core addressed an unknown node or path", "to", p.To, "path", p.Path)
		}
		return
	}
	b, err := d.sealer.seal(d.txBuf, p.To, p.Path, p.Data)
	if err != nil {
		d.stats.txErrors.Add(1)
		if d.debugOn() {
			d.cfg.Logger.Debug("ring: seal", "to", p.To, "path", p.Path, "err", err)
		}
		return
	}
	d.txBuf = b
	if _, err := d.conns[p.Path].WriteTo(b, d.cfg.Nodes[p.To-1][p.Path]); err != nil {
		d.stats.txErrors.Add(1)
		if d.debugOn() {
			d.cfg.Logger.Debug("ring: send", "to", p.To, "path", p.Path, "err", err)
		}
		return
	}
	d.stats.txDatagrams.Add(1)
	d.stats.txBytes.Add(uint64(len(b)))
}

// debugOn reports whether debug logging is on. Callers on per-datagram
// paths check it first so the log arguments are not boxed (allocated) per
// datagram when it is off, as it is unless an operator asks.
func (d *Driver) debugOn() bool {
	return d.cfg.Logger.Enabled(context.Background(), slog.LevelDebug)
}

// receive reads path p's socket until it is closed, authenticates each
// datagram and queues the authentic ones for the owner goroutine.
func (d *Driver) receive(ctx context.Context, path int, c Conn) {
	var b *rxBuf
	select {
	case b = <-d.free:
	case <-ctx.Done():
		return
	}
	defer func() { d.free <- b }()
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
		h, pt, ev, r := d.opener.open(b.buf[:n], path, src)
		if r != DropNone {
			d.stats.drops[r].Add(1)
			if d.debugOn() {
				d.cfg.Logger.Debug("ring: drop datagram", "path", path, "src", src, "reason", r)
			}
			continue
		}
		switch ev {
		case bootNewer:
			d.stats.peerRestarts.Add(1)
			d.cfg.Logger.Info("ring: peer restarted", "peer", d.cfg.name(h.From), "boot", h.Boot)
		case bootRollback:
			d.stats.peerRollbacks.Add(1)
			d.cfg.Logger.Warn("ring: peer came back with an older boot id than before: its clock went back across a restart, or someone replays its past datagrams",
				"peer", d.cfg.name(h.From), "boot", h.Boot)
		}
		b.from, b.path, b.payload = h.From, path, pt
		select {
		case d.rx <- b:
			d.stats.rxDatagrams.Add(1)
			d.stats.rxBytes.Add(uint64(n))
			b = <-d.free // never blocks: see the pool size in New
		default:
			d.stats.drops[DropQueueFull].Add(1)
		}
	}
}
