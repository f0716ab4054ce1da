package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// phase is where a running node is in its lifecycle. Run moves through the
// phases like this (a second SIGTERM or SIGINT is Hurry):
//
//	         ctx done            left, LeaveTimeout          Drain
//	running ─────────► leaving ──or the leave failed──► draining ─────► stopped
//	   │                  │                                 │              ▲
//	   │ a part failed    │ a part failed                   └─── Hurry ────┤
//	   ▼                  ▼                                                │
//	failing ◄─────────────┘                                                │
//	   └──────────────── ring stopped (no drain) ──────────────────────────┤
//	running, leaving, failing ─── Hurry (no hand-over, no drain) ──────────┘
//
// The data plane and the parts beside it (API, monitors, load sampler) run
// from start to stopped, so the plane outlives the ring by the drain. On
// the way out of leaving, failing or draining, the committed state the ring
// has ready is applied first; the plane owns nothing (SetOwned(nil))
// before the ring is stopped; stopped then cancels the plane and the parts
// and waits for every goroutine Run started.
type phase uint8

const (
	// running: every part runs; each committed state the ring delivers
	// becomes the plane's ownership (apply).
	running phase = iota
	// leaving: the ring hands this node's VIPs over on the token, for at
	// most LeaveTimeout; the plane keeps answering for what the committed
	// state still gives it.
	leaving
	// failing: a part's Run returned an error. The ring is stopping
	// without a leave (the others detect this node as failed), and the
	// node waits for it; no drain follows.
	failing
	// draining: the ring has stopped and the plane owns nothing, but it
	// keeps forwarding for Drain: hosts still send to this node's MAC until
	// the new owners' gratuitous ARP reaches them.
	draining
	// stopped: nothing runs any more; Run returns.
	stopped
)

func (p phase) String() string {
	switch p {
	case running:
		return "running"
	case leaving:
		return "leaving"
	case failing:
		return "failing"
	case draining:
		return "draining"
	case stopped:
		return "stopped"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Run runs the node until ctx is cancelled, then leaves the ring gracefully
// and stops. It returns after everything it started has stopped: nil after
// a leave or Hurry, the error of the first part that failed otherwise.
func (n *Node) Run(ctx context.Context) error {
	defer n.Close()
	n.started = time.Now()
	n.log.Info("starting", "cluster", n.file.Cluster.Name, "node", n.name(n.self),
		"position", int(n.self), "of", len(*n.names.Load()), "subnets", len(n.file.Subnets), "vips", len(n.file.AllVIPs()))
	for _, w := range n.file.Warnings() {
		n.log.Warn(w)
	}
	lc := n.start(ctx)
	for p := running; p != stopped; {
		next := lc.step(p)
		if next != p {
			n.log.Debug("lifecycle", "from", p.String(), "to", next.String())
		}
		p = next
	}
	return lc.stop()
}

// Hurry makes Run stop at once, whether or not it is leaving: it gives up
// the hand-over of its VIPs and the drain, stops answering and forwarding,
// and undoes its kernel setup before Run returns. The other nodes detect
// the node as failed. `ringway run` calls it on a second SIGTERM or SIGINT.
// Safe to call at any time and more than once.
func (n *Node) Hurry() { n.hurryOnce.Do(func() { close(n.hurry) }) }

// stopping calls Config.OnStopping, once, whatever made the node stop.
func (n *Node) stopping() {
	if n.cfg.OnStopping != nil {
		n.stoppingOnce.Do(n.cfg.OnStopping)
	}
}

// lifecycle is one Run: the goroutines it started and how to stop them.
type lifecycle struct {
	n    *Node
	ctx  context.Context // Run's: done starts the leave
	wg   sync.WaitGroup
	errc chan error // failed parts; room for one error per goroutine
	err  error      // the first part failure: Run's result

	stopRing, stopData context.CancelFunc

	cancelLeave context.CancelFunc // set when leaving starts
	leaveDone   chan struct{}      // closed when the leave has ended, however
	drain       *time.Timer        // set when draining starts
	released    bool               // release has run
}

// start starts every part: the plane and the parts beside it on one
// context, the ring on its own, so that the ring can stop before them.
func (n *Node) start(ctx context.Context) *lifecycle {
	lc := &lifecycle{n: n, ctx: ctx, errc: make(chan error, len(n.beside)+2)}
	dataCtx, stopData := context.WithCancel(context.Background())
	ringCtx, stopRing := context.WithCancel(context.Background())
	lc.stopData, lc.stopRing = stopData, stopRing
	lc.run("router", n.plane, dataCtx)
	for _, p := range n.beside {
		lc.run(p.name, p.Runner, dataCtx)
	}
	if n.api != nil {
		n.log.Info("management API listening", "addr", n.api.Addr().String())
	}
	lc.run("ring", n.ring, ringCtx)
	return lc
}

func (lc *lifecycle) run(name string, r Runner, ctx context.Context) {
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		if err := r.Run(ctx); err != nil {
			lc.errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// step waits for the next input in phase p and returns the phase it leads
// to (often p again).
func (lc *lifecycle) step(p phase) phase {
	n := lc.n
	if p == draining {
		select {
		case <-lc.drain.C:
		case <-n.hurry:
			n.log.Warn("drain cut short")
		}
		return stopped
	}
	var leave <-chan struct{} // the input that ends the phase
	switch p {
	case running:
		leave = lc.ctx.Done()
	case leaving:
		leave = lc.leaveDone
	case failing:
		leave = n.ring.Done()
	}
	select {
	case st := <-n.ring.States():
		n.apply(&st)
	case ev := <-n.ring.Events():
		n.logEvent(ev)
	case err := <-lc.errc:
		if p == failing {
			n.log.Error("another part failed", "err", err)
			return failing
		}
		return lc.fail(err)
	case <-n.hurry:
		n.stopping()
		n.log.Warn("stopping at once: this node's VIPs are not handed over; the others will detect it as failed")
		return stopped
	case <-leave:
		switch p {
		case running:
			lc.leave()
			return leaving
		case leaving:
			lc.applyLast()
			return lc.startDrain()
		case failing:
			lc.applyLast()
			return stopped
		}
	}
	return p
}

// leave starts the graceful leave, bounded by LeaveTimeout.
func (lc *lifecycle) leave() {
	n := lc.n
	n.stopping()
	n.log.Info("leaving the ring: handing VIPs over")
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaveTimeout)
	lc.cancelLeave, lc.leaveDone = cancel, make(chan struct{})
	go func() {
		defer close(lc.leaveDone)
		defer cancel()
		switch err := n.ring.Leave(ctx); {
		case errors.Is(err, context.Canceled):
			// Hurry: Run says so.
		case err != nil:
			n.log.Warn("graceful leave did not finish; the others will detect this node as failed", "err", err)
		}
	}()
}

// fail records a part's failure and stops the ring without a leave; a
// leave under way ends with it (the ring's Leave returns once Run has).
func (lc *lifecycle) fail(err error) phase {
	lc.err = err
	lc.n.stopping()
	lc.n.log.Error("stopping after a failure", "err", err)
	lc.stopRing()
	return failing
}

// applyLast applies the last committed state, if the ring has one ready:
// after a leave it is the state that gives this node's VIPs away.
func (lc *lifecycle) applyLast() {
	select {
	case st := <-lc.n.ring.States():
		lc.n.apply(&st)
	default:
	}
}

// startDrain stops answering and the ring, and keeps forwarding for Drain.
func (lc *lifecycle) startDrain() phase {
	lc.release()
	lc.n.log.Info("left the ring; draining", "for", lc.n.cfg.Drain)
	lc.drain = time.NewTimer(lc.n.cfg.Drain)
	return draining
}

// release ends the leave (if it still runs), makes the plane own nothing
// and stops the ring, in that order: this node answers for no VIP from here
// on, whatever the ring did last. It acts once.
func (lc *lifecycle) release() {
	if lc.released {
		return
	}
	lc.released = true
	if lc.cancelLeave != nil {
		lc.cancelLeave()
		select { // the leave goroutine ends once cancelled
		case <-lc.leaveDone:
		case <-time.After(time.Second):
		}
	}
	lc.n.plane.SetOwned(nil)
	lc.stopRing()
}

// stop is the phase stopped: it releases, stops the plane and the parts
// beside it and waits for every goroutine start started.
func (lc *lifecycle) stop() error {
	lc.release()
	if lc.drain != nil {
		lc.drain.Stop()
	}
	lc.stopData()
	lc.wg.Wait()
	for len(lc.errc) > 0 { // every sender has returned
		// A part that failed while draining or stopping: too late to
		// change how Run ends, but not to be lost.
		lc.n.log.Warn("a part failed while the node stopped", "err", <-lc.errc)
	}
	lc.n.log.Info("stopped")
	return lc.err
}
