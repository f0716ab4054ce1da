// Package routertest has fakes for tests without sockets or privileges: Fake
// stands in for the router in tests of the packages that drive it (node): it
// records ownership changes and announcements, serves settable Stats and
// tells when its Run has returned. FakeLink and FakeTUN (devices.go) stand
// in for the router's AF_PACKET and TUN devices (router.Config.Devices), so
// a test can push frames through the real router's receive loops.
package routertest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/ringway/ringway/router"
)

// Change is one SetOwned call as the fake saw it.
type Change struct {
	Owned, Acquired, Released []netip.Addr
}

// Fake stands in for *router.Router where a node drives it (node.Plane,
// which checks both against the interface). It records SetOwned and
// Announce calls. Changes delivers every SetOwned
// call in order (buffered; a test that does not read it loses nothing until
// the buffer of 1024 fills, then SetOwned blocks).
type Fake struct {
	Changes chan Change

	mu        sync.Mutex
	owned     []netip.Addr
	announced [][]netip.Addr
	stats     router.Stats
	gateways  map[netip.Addr][]netip.Addr // VIP → hosts using it (SetGatewayHosts)
	closed    bool
	done      chan struct{}
	ranOnce   sync.Once
	stopped   chan struct{}
}

// NewFake returns a Fake that owns nothing.
func NewFake() *Fake {
	return &Fake{Changes: make(chan Change, 1024), done: make(chan struct{}), stopped: make(chan struct{})}
}

// SetGatewayHosts makes hosts the hosts GatewayHosts says use vip as
// their gateway (the router learns them from ARP requests).
func (f *Fake) SetGatewayHosts(vip netip.Addr, hosts ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gateways == nil {
		f.gateways = map[netip.Addr][]netip.Addr{}
	}
	f.gateways[vip] = slices.Clone(hosts)
}

// GatewayHosts returns the hosts SetGatewayHosts gave for vips, sorted,
// like the router.
func (f *Fake) GatewayHosts(vips []netip.Addr) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for _, v := range vips {
		out = append(out, f.gateways[v]...)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// SetOwned records the new set and returns the difference, like the router.
func (f *Fake) SetOwned(vips []netip.Addr) (acquired, released []netip.Addr) {
	next := slices.Clone(vips)
	slices.SortFunc(next, netip.Addr.Compare)
	next = slices.Compact(next)
	f.mu.Lock()
	for _, v := range next {
		if !slices.Contains(f.owned, v) {
			acquired = append(acquired, v)
		}
	}
	for _, v := range f.owned {
		if !slices.Contains(next, v) {
			released = append(released, v)
		}
	}
	f.owned = next
	f.mu.Unlock()
	f.Changes <- Change{Owned: slices.Clone(next), Acquired: acquired, Released: released}
	return acquired, released
}

// Announce records vips, like the router restarting their gratuitous ARP
// schedule; unlike the router it keeps VIPs the fake does not own, so a test
// sees exactly what its caller asked for.
func (f *Fake) Announce(vips []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, slices.Clone(vips))
}

// Announced returns the arguments of every Announce call so far, in order.
func (f *Fake) Announced() [][]netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]netip.Addr, len(f.announced))
	for i, a := range f.announced {
		out[i] = slices.Clone(a)
	}
	return out
}

// Owned returns the current set, sorted.
func (f *Fake) Owned() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.owned)
}

// SetStats sets what Stats returns.
func (f *Fake) SetStats(s router.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = s
}

// Stats returns what SetStats set.
func (f *Fake) Stats() router.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Run blocks until ctx is done or Close; it returns net.ErrClosed if Close
// came first. Stopped is closed when it returns.
func (f *Fake) Run(ctx context.Context) error {
	defer f.ranOnce.Do(func() { close(f.stopped) })
	select {
	case <-ctx.Done():
		return nil
	case <-f.done:
		return net.ErrClosed
	}
}

// Stopped is closed once Run has returned: the data plane no longer
// forwards anything.
func (f *Fake) Stopped() <-chan struct{} { return f.stopped }

// Close ends Run. Safe to call twice.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
	return nil
}
