package monitor

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NIC watches the link state of a node's subnet interfaces: healthy while
// every one is administratively up and has carrier.
type NIC struct {
	names []string
	poll  time.Duration
	log   *slog.Logger

	healthy verdict
	mu      sync.Mutex
	down    []string // interfaces down, sorted
}

// NewNIC returns a monitor of the named interfaces, with their state read
// once already (so a node does not claim VIPs with a dead link before Run
// first looks). poll is how often their state is read when netlink link
// notifications cannot be had (it is not used otherwise).
func NewNIC(names []string, poll time.Duration, log *slog.Logger) *NIC {
	m := &NIC{names: slices.Clone(names), poll: poll, log: log}
	m.healthy.init(true)
	m.check()
	return m
}

// Healthy reports whether every interface was up at the last look. It
// never blocks.
func (m *NIC) Healthy() bool { return m.healthy.ok.Load() }

// Changed receives a value after Healthy's answer changes (one value may
// stand for several changes). It never closes.
func (m *NIC) Changed() <-chan struct{} { return m.healthy.changed }

// Down returns the interfaces down at the last look.
func (m *NIC) Down() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.down)
}

// Run watches until ctx ends: it reads every interface once, then again
// whenever the kernel reports a link change (or every poll period when
// notifications cannot be subscribed).
func (m *NIC) Run(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var stopping atomic.Bool // closing done makes the subscription's Receive fail: not worth a warning
	defer func() {
		stopping.Store(true)
		close(done)
	}()
	subscribed := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			if !stopping.Load() {
				m.log.Warn("nic monitor: link notifications", "err", err)
			}
		},
	}) == nil
	var tick <-chan time.Time
	var ticker *time.Ticker
	poll := func(why string) {
		m.log.Warn("nic monitor: "+why+"; polling", "every", m.poll)
		ticker = time.NewTicker(m.poll)
		tick = ticker.C
	}
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	if !subscribed {
		updates = nil
		poll("no netlink link notifications")
	}
	m.check() // anything that changed before the subscription
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-updates:
			if !ok {
				// The netlink socket failed: poll from now on.
				updates = nil
				poll("link notifications stopped")
				m.check()
				continue
			}
			m.check() // any link's change: a watched one may have been renamed
		case <-tick:
			m.check()
		}
	}
}

// check reads every interface and records the result, logging changes.
func (m *NIC) check() {
	var down []string
	for _, name := range m.names {
		l, err := netlink.LinkByName(name)
		if err != nil || !LinkUp(l.Attrs().RawFlags) {
			down = append(down, name)
		}
	}
	m.mu.Lock()
	changed := !slices.Equal(down, m.down)
	m.down = down
	m.mu.Unlock()
	m.healthy.set(len(down) == 0)
	switch {
	case changed && len(down) > 0:
		m.log.Warn("nic monitor: interface down; this node gives up its VIPs", "down", down)
	case changed:
		m.log.Info("nic monitor: every interface up again", "interfaces", m.names)
	}
}

// LinkUp reports whether a link with these IFF_* flags can carry traffic:
// administratively up and with carrier (IFF_LOWER_UP).
func LinkUp(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_LOWER_UP != 0
}
