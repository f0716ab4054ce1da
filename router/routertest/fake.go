// Package routertest has fakes for tests without sockets or privileges: Fake
// stands in for the router in tests of the packages that drive it (node): it
// records ownership changes and serves settable Stats. FakeLink and FakeTUN
// (devices.go) stand in for the router's AF_PACKET and TUN devices
// (router.Config.Devices), so a test can push frames through the real
// router's receive loops.
package routertest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/ringway/ringway/router"
)

// Plane is the part of *router.Router a node drives. *router.Router and
// *Fake satisfy it.
type Plane interface {
	SetOwned(vips []netip.Addr) (acquired, released []netip.Addr)
	Owned() []netip.Addr
	Stats() router.Stats
	Run(ctx context.Context) error
	Close() error
}

var (
	_ Plane = (*router.Router)(nil)
	_ Plane = (*Fake)(nil)
)

// Change is one SetOwned call as the fake saw it.
type Change struct {
	Owned, Acquired, Released []netip.Addr
}

// Fake records SetOwned calls. Changes delivers every call in order (buffered;
// a test that does not read it loses nothing until the buffer of 1024 fills,
// then SetOwned blocks).
type Fake struct {
	Changes chan Change

	mu     sync.Mutex
	owned  []netip.Addr
	stats  router.Stats
	closed bool
	done   chan struct{}
}

// NewFake returns a Fake that owns nothing.
func NewFake() *Fake {
	return &Fake{Changes: make(chan Change, 1024), done: make(chan struct{})}
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
// came first.
func (f *Fake) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-f.done:
		return net.ErrClosed
	}
}

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
