package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ringway/ringway/lab"
	"github.com/ringway/ringway/lab/workload"
)

// System is a gateway implementation under test, run on the nodes of a lab.
type System interface {
	// Name and Config identify the row: ("keepalived", "VRRPv3, advert 100 ms").
	Name() string
	Config() string
	// Node returns how node namespace i is built for this system.
	Node(i int) lab.NodeOptions
	// Start starts the system on every node of l; it need not wait for the
	// gateway to work (Measure waits for the stream to flow).
	Start(ctx context.Context, l *lab.Lab) error
	// Owner returns the node that currently answers for the client's
	// gateway VIP (203.0.113.91), or an error if none does yet.
	Owner(ctx context.Context, l *lab.Lab) (int, error)
	// Crash is called right after node i was cut off (lab.Cut) and the
	// outage was measured; Recover after it was healed. Together they must
	// bring node i back to a working member, as a crashed box that reboots
	// would come back, and return once the system is stable again.
	Crash(ctx context.Context, l *lab.Lab, node int) error
	Recover(ctx context.Context, l *lab.Lab, node int) error
	// Stop stops the system on every node.
	Stop(ctx context.Context, l *lab.Lab) error
}

// Options configure a measurement.
type Options struct {
	Trials   int           // cut-offs measured; default 20
	Settle   time.Duration // the stream must flow this long before a cut; default 1 s
	Resume   time.Duration // and this long after, for the outage to count as over; default 300 ms
	MaxWait  time.Duration // give up on a trial whose outage lasts longer; default 30 s
	Nodes    int           // lab size; default 3
	Prefix   string        // lab prefix; default random
	StateDir string        // lab state directory; default lab.DefaultStateDir
	Log      *slog.Logger  // progress; default discards
	Keep     bool          // leave the lab up on error, for inspection (then `ringway lab down`)
}

func (o *Options) setDefaults() {
	if o.Trials == 0 {
		o.Trials = 20
	}
	if o.Settle == 0 {
		o.Settle = time.Second
	}
	if o.Resume == 0 {
		o.Resume = 300 * time.Millisecond
	}
	if o.MaxWait == 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Trial is one cut-off of the VIP owner.
type Trial struct {
	Node   int           // the node cut off
	Outage time.Duration // longest gap of the stream that ended after the cut
	Lost   uint64        // datagrams lost in the trial's stream
	Sent   uint64
	CutAt  time.Time    // when the cut started
	Gap    workload.Gap // the outage: last reply before it, first reply after
	// Phases, for a system that is an Explainer, says where the outage
	// went (nil if its logs did not say).
	Phases *Phases
}

// Measure builds a lab for sys, starts it, and runs opt.Trials cut-offs of
// the VIP owner while the 1 kHz stream runs from the client to the server.
// The lab is torn down before Measure returns.
func Measure(ctx context.Context, sys System, opt Options) (Row, error) {
	opt.setDefaults()
	l, err := lab.Build(ctx, lab.Spec{Prefix: opt.Prefix, Nodes: opt.Nodes, StateDir: opt.StateDir, Node: sys.Node})
	if err != nil {
		return Row{}, err
	}
	keep := false
	defer func() {
		if keep {
			opt.Log.Warn("lab left up for inspection", "prefix", l.Prefix(), "state", l.Dir())
			return
		}
		sys.Stop(context.WithoutCancel(ctx), l)
		l.Close()
	}()
	opt.Log.Info("lab up", "prefix", l.Prefix(), "system", sys.Name(), "config", sys.Config())
	if err := sys.Start(ctx, l); err != nil {
		return Row{}, fmt.Errorf("start %s: %w", sys.Name(), err)
	}
	echo, err := workload.ListenEcho(l, l.Server(), netip.AddrPortFrom(lab.ServerAddr, workload.EchoPort))
	if err != nil {
		return Row{}, err
	}
	defer echo.Close()

	var trials []Trial
	for k := 1; k <= opt.Trials; k++ {
		tr, err := runTrial(ctx, l, sys, opt)
		if err != nil {
			keep = opt.Keep
			return Row{}, fmt.Errorf("%s (%s) trial %d: %w", sys.Name(), sys.Config(), k, err)
		}
		args := []any{"system", sys.Name(), "config", sys.Config(), "n", k, "node", tr.Node, "outage", tr.Outage.Round(time.Millisecond), "lost", tr.Lost}
		if p := tr.Phases; p != nil {
			args = append(args, "before", p.Before, "detect", p.Detect, "detector", p.Detector, "pass", p.Pass, "owner", p.Owner, "resume", p.Resume, "cause", p.Cause)
		}
		opt.Log.Info("trial", args...)
		trials = append(trials, tr)
	}
	row := NewRow(sys.Name(), sys.Config(), trials)
	row.Nodes = opt.Nodes
	return row, nil
}

func runTrial(ctx context.Context, l *lab.Lab, sys System, opt Options) (Trial, error) {
	cfg := workload.DefaultStreamConfig(netip.AddrPortFrom(lab.ServerAddr, workload.EchoPort))
	s, err := workload.StartStream(ctx, l, l.Client(), cfg)
	if err != nil {
		return Trial{}, err
	}
	defer s.Stop()
	wctx, cancel := context.WithTimeout(ctx, opt.MaxWait)
	err = s.WaitFlowing(wctx, opt.Settle)
	cancel()
	if err != nil {
		return Trial{}, fmt.Errorf("before the cut: %w", err)
	}
	node, err := sys.Owner(ctx, l)
	if err != nil {
		return Trial{}, err
	}
	cutAt := time.Now()
	if err := l.Cut(node); err != nil {
		return Trial{}, err
	}
	// Wait for replies to come back and keep coming (the outage is over).
	wctx, cancel = context.WithTimeout(ctx, opt.MaxWait)
	for {
		if err := s.WaitFlowing(wctx, opt.Resume); err != nil {
			cancel()
			return Trial{}, fmt.Errorf("after cutting node %d: %w", node, err)
		}
		if s.LastReply().Sub(cutAt) > opt.Resume {
			break
		}
		// Flowing, but only on replies from before the cut: keep waiting.
		select {
		case <-wctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	r := s.Stop()
	if err := sys.Crash(ctx, l, node); err != nil {
		return Trial{}, fmt.Errorf("crash node %d: %w", node, err)
	}
	if err := l.Heal(node); err != nil {
		return Trial{}, err
	}
	if err := sys.Recover(ctx, l, node); err != nil {
		return Trial{}, fmt.Errorf("recover node %d: %w", node, err)
	}
	gap := outage(r, cutAt)
	tr := Trial{Node: node, Outage: gap.Len, Lost: r.Lost, Sent: r.Sent, CutAt: cutAt, Gap: gap}
	if e, ok := sys.(Explainer); ok {
		if p, err := e.Phases(l, tr); err != nil {
			opt.Log.Warn("trial's phases not found in the logs", "node", node, "err", err)
		} else {
			tr.Phases = &p
		}
	}
	return tr, nil
}

// outage is the longest gap of r that ended after the cut: a scheduling
// hiccup before the cut is not the fail-over's fault.
func outage(r workload.StreamReport, cutAt time.Time) workload.Gap {
	var d workload.Gap
	for _, g := range r.Gaps {
		if g.To.After(cutAt) && g.Len > d.Len {
			d = g
		}
	}
	if d.Len == 0 {
		d = r.Longest // shorter than the gap threshold: report what we have
	}
	return d
}

// ErrNoOwner is returned by Owner implementations while no node holds the VIP.
var ErrNoOwner = errors.New("no node holds the gateway VIP")
