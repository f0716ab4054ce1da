package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/monitor"
)

// monitorSet is the monitors a node runs. A reload that turns one on or
// off, or replaces one, stores a new set and closes the old one's swapped
// channel: runMonitors then starts and stops monitors to match, and
// reportLocal reads the new set's verdicts.
type monitorSet struct {
	nic     *monitor.NIC  // nil unless monitors.nic.enabled
	ping    *monitor.Ping // nil unless monitors.ping.enabled
	app     appMonitor    // nil unless monitors.application.enabled
	swapped chan struct{} // closed when a reload replaces this set
	// cfg is the settings the monitors run with: a change that could not
	// be applied is not in it, so a later epoch with the same file tries
	// it again.
	cfg config.Monitors
}

// newMonitorSet returns an empty set: no monitor runs.
func newMonitorSet() *monitorSet {
	return &monitorSet{swapped: make(chan struct{})}
}

// runners returns the monitors of s that run.
func (s *monitorSet) runners() []Runner {
	var out []Runner
	if s.nic != nil {
		out = append(out, s.nic)
	}
	if s.ping != nil {
		out = append(out, s.ping)
	}
	if s.app != nil {
		out = append(out, s.app)
	}
	return out
}

// healthy reports whether every monitor of s passes.
func (s *monitorSet) healthy() bool {
	return (s.nic == nil || s.nic.Healthy()) && (s.ping == nil || s.ping.Healthy()) && (s.app == nil || s.app.Healthy())
}

// runMonitors runs the node's monitors until ctx ends, each on its own
// goroutine, and follows the set a reload stores: a monitor no longer in
// it is stopped, a new one started. A monitor's error stops them all and
// is returned (it stops the node, as any part's).
func (n *Node) runMonitors(ctx context.Context) error {
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	running := map[Runner]context.CancelFunc{}
	for set := n.mons.Load(); ; set = n.mons.Load() {
		want := set.runners()
		for r, stop := range running {
			if !containsRunner(want, r) {
				stop()
				delete(running, r)
			}
		}
		for _, r := range want {
			if _, ok := running[r]; ok {
				continue
			}
			rctx, stop := context.WithCancel(ctx)
			running[r] = stop
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Run(rctx); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-set.swapped:
		}
	}
}

func containsRunner(rs []Runner, r Runner) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func interfaces(f *config.Config) []string {
	names := make([]string, len(f.Subnets))
	for i, s := range f.Subnets {
		names[i] = s.Interface
	}
	return names
}

// newCommand builds the operator's application check, run as a's user.
func newCommand(a config.ApplicationMonitor, log *slog.Logger) (*monitor.Command, error) {
	cmd := monitor.NewCommand(a.Command, a.Interval, log)
	if a.User != "" {
		uid, gid, groups, err := lookupUser(a.User)
		if err != nil {
			return nil, fmt.Errorf("monitors.application.user: %w", err)
		}
		cmd.RunAs(uid, gid, groups)
	}
	return cmd, nil
}

// applyMonitors gives the node the monitors of next (see nextMonitors). A
// monitor that cannot be built (the ping socket, the check's user) is
// logged, and the node goes on without the change to that monitor; the
// next config epoch tries it again.
func (n *Node) applyMonitors(next *config.Config) {
	cur := n.mons.Load()
	if reflect.DeepEqual(cur.cfg, next.Monitors) {
		return
	}
	set, on, off, errs := n.nextMonitors(cur, next)
	for _, err := range errs {
		n.log.Error("a monitor change was not applied; the next config epoch tries it again", "err", err)
	}
	if set.nic == cur.nic && set.ping == cur.ping && set.app == cur.app {
		// The monitors that run adopted their settings: the same set,
		// with the settings recorded.
		n.mons.Store(&set)
		return
	}
	set.swapped = make(chan struct{})
	n.mons.Store(&set)
	close(cur.swapped)
	n.log.Info("monitors changed by the config epoch", "on", on, "off", off, "healthy", set.healthy())
}

// nextMonitors returns the monitors for next's settings, given the set cur
// that runs (New passes an empty set). One that runs and stays on adopts its new settings before its
// next check (the operator's check: command, interval; the ping monitor:
// targets and times); one turned on is built (healthy until its first
// verdict), one turned off is left out; one that changes kind (the
// operator's check and the built-in one) or the NIC monitor is replaced.
// On and off name the monitors turned on and off. A monitor that cannot be
// built or reconfigured keeps its place and its settings in cur, and its
// error is in errs.
func (n *Node) nextMonitors(cur *monitorSet, next *config.Config) (set monitorSet, on, off []string, errs []error) {
	om, nm := cur.cfg, next.Monitors
	set = *cur
	set.cfg = nm
	log := n.log.With("part", "monitor")
	if om.NIC != nm.NIC {
		set.nic = nil
		if nm.NIC.Enabled {
			set.nic = monitor.NewNIC(interfaces(next), nm.NIC.Interval, log)
		}
		if cur.nic == nil && set.nic != nil {
			on = append(on, "nic")
		} else if cur.nic != nil && set.nic == nil {
			off = append(off, "nic")
		}
	}
	if oa, na := om.Application, nm.Application; oa != na {
		cmd, isCmd := cur.app.(*monitor.Command)
		_, isProbe := cur.app.(*monitor.Probe)
		switch {
		case !na.Enabled:
			set.app = nil
		case na.Command != "" && isCmd:
			var uid, gid uint32
			var groups []uint32
			var err error
			if na.User != "" {
				if uid, gid, groups, err = lookupUser(na.User); err != nil {
					errs = append(errs, fmt.Errorf("monitors.application.user: %w (the old application check runs)", err))
					set.cfg.Application = oa
					break
				}
			}
			cmd.Reconfigure(na.Command, na.Interval, na.User != "", uid, gid, groups)
		case na.Command != "":
			c, err := newCommand(na, log)
			if err != nil {
				errs = append(errs, err)
				set.cfg.Application = oa
				break
			}
			set.app = c
		case isProbe && oa.Interval == na.Interval:
		default:
			p, ok := n.plane.(monitor.Prober)
			if !ok {
				errs = append(errs, errors.New("monitors.application: the built-in application check needs a data plane that can be probed"))
				set.cfg.Application = oa
				break
			}
			set.app = monitor.NewProbe(p, na.Interval, log)
		}
		if cur.app == nil && set.app != nil {
			on = append(on, "application")
		} else if cur.app != nil && set.app == nil {
			off = append(off, "application")
		}
	}
	if op, np := om.Ping, nm.Ping; !reflect.DeepEqual(op, np) {
		switch {
		case !np.Enabled:
			set.ping = nil
			if cur.ping != nil {
				off = append(off, "ping")
			}
		case cur.ping != nil:
			if err := cur.ping.Reconfigure(np.Targets, np.Interval, np.Timeout); err != nil {
				errs = append(errs, fmt.Errorf("%w (the old ping settings run)", err))
				set.cfg.Ping = op
			}
		default:
			p, err := monitor.NewPing(np.Targets, np.Interval, np.Timeout, log)
			if err != nil {
				errs = append(errs, err)
				set.cfg.Ping = op
				break
			}
			set.ping = p
			on = append(on, "ping")
		}
	}
	return set, on, off, errs
}
