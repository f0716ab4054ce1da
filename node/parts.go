package node

import (
	"context"
	"net/netip"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/router"
)

// The parts a Node drives, as small interfaces: New builds the real ones
// (router, ring driver, management API, monitors), tests assemble a Node
// from fakes (router/routertest, a ring driver over ringnettest's in-memory
// network) and run its lifecycle without root.

// Plane is the data plane: it answers ARP for the VIPs it owns and forwards
// through them. *router.Router implements it.
type Plane interface {
	// Run forwards until ctx is done (then it returns nil) or Close.
	Run(ctx context.Context) error
	// SetOwned replaces the set of VIPs answered for and returns the
	// difference; acquired VIPs are announced by gratuitous ARP. nil owns
	// nothing. Safe for concurrent use, before, during and after Run.
	SetOwned(vips []netip.Addr) (acquired, released []netip.Addr)
	// Announce announces again those of vips that are owned.
	Announce(vips []netip.Addr)
	// Stats returns a snapshot of the counters. Safe for concurrent use.
	Stats() router.Stats
	// Close stops Run and releases everything, also when Run never ran.
	Close() error
}

// appMonitor is the application monitor: monitor.Command (an operator's
// check) or monitor.Probe (the built-in check of the router's workers).
type appMonitor interface {
	// Run checks every interval until ctx is done; it returns nil then.
	Run(ctx context.Context) error
	// Healthy reports the last verdict; it never blocks.
	Healthy() bool
	// Changed receives a value after Healthy's answer changes.
	Changed() <-chan struct{}
	// Failure says why the last check failed ("" when it passed): for the
	// built-in check, which workers and why.
	Failure() string
}

// Ring is the ring driver with its core: membership and the committed
// state (the VIP table) reach the node through it. ringDriver implements it.
type Ring interface {
	// Run runs the ring until ctx is done, Close, or a graceful leave has
	// finished; it returns nil on each of these ends. It runs once.
	Run(ctx context.Context) error
	// Leave hands this node's VIPs over on the token and waits until the
	// hop that did it is acknowledged (nil; Run then returns), or ctx ends
	// (ctx.Err()), or Run has returned (ringnet.ErrClosed).
	Leave(ctx context.Context) error
	// States delivers committed states, latest first: a slow reader skips
	// states, it never blocks the ring.
	States() <-chan ring.State
	// Events delivers the core's events (dropped when nobody reads).
	Events() <-chan ring.Event
	// Done is closed when Run has returned.
	Done() <-chan struct{}
	// Status returns the core's status, or ringnet.ErrClosed once Run has
	// returned, or ctx.Err() if ctx ends first (before Run starts, say).
	Status(ctx context.Context) (ring.Status, error)
	// Stats returns the driver's counters. Safe for concurrent use.
	Stats() ringnet.Stats
	// Close stops Run and releases the sockets, also when Run never ran;
	// it returns after everything Run started has stopped.
	Close() error
	// AddNodes appends nodes ids (the next positions of the node map) with
	// their addresses, one per path, to the ring's node map (a reload).
	AddNodes(ctx context.Context, ids []ring.NodeID, addrs [][]netip.AddrPort) error
	// SetTimers gives the ring core new timers (a reload).
	SetTimers(ctx context.Context, t ring.Timers) error
}

// Runner is a part that runs beside the data plane until its context is
// cancelled (the management API, a monitor, the load sampler). Run returns
// nil when cancelled; an error stops the node.
type Runner interface {
	Run(ctx context.Context) error
}

// part is a Runner with the name its errors and logs carry.
type part struct {
	name string
	Runner
}

// runnerFunc makes a function a Runner.
type runnerFunc func(ctx context.Context) error

func (f runnerFunc) Run(ctx context.Context) error { return f(ctx) }

var (
	_ Plane = (*router.Router)(nil)
	_ Ring  = ringDriver{}
)

// ringDriver is the real Ring: a ringnet driver running a ring core.
type ringDriver struct {
	*ringnet.Driver
	core *ring.Node
}

func (r ringDriver) AddNodes(ctx context.Context, ids []ring.NodeID, addrs [][]netip.AddrPort) error {
	return r.Driver.AddNodes(ctx, addrs, func(ringnet.Core) error { return r.core.AddNodes(ids...) })
}

func (r ringDriver) SetTimers(ctx context.Context, t ring.Timers) error {
	var err error
	if derr := r.Do(ctx, func(ringnet.Core) { err = r.core.SetTimers(t) }); derr != nil {
		return derr
	}
	return err
}

func (r ringDriver) Status(ctx context.Context) (ring.Status, error) {
	var s ring.Status
	err := r.Do(ctx, func(ringnet.Core) { s = r.core.Status() })
	return s, err
}
