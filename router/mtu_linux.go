package router

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
)

// minMTU is the smallest MTU an IPv4 link may have (RFC 791: every module
// forwards 68-byte datagrams without fragmenting them).
const minMTU = 68

// setMTU makes mtu the MTU of link i from the next packet on: larger
// packets are fragmented, or refused with ICMP fragmentation needed when
// they carry DF.
func (r *Router) setMTU(i, mtu int) {
	l := &r.links[i].info
	if mtu < minMTU || mtu > 65535 {
		r.log.Warn("router: ignoring an impossible MTU", "nic", l.name, "mtu", mtu)
		return
	}
	if old := l.mtu.get(); old != mtu {
		l.mtu.set(mtu)
		r.log.Info("router: MTU changed", "nic", l.name, "from", old, "to", mtu)
	}
}

// watchMTU keeps every link's MTU current until ctx is done: it follows the
// netlink link updates of the real NICs (in Config.Netns) and the
// MTUChanged signals of devices that implement MTUNotifier. An MTU change
// is rare, so a goroutine waiting on it costs the hot path nothing: the
// decision loads one atomic per packet.
func (r *Router) watchMTU(ctx context.Context) {
	var wg sync.WaitGroup
	for i, l := range r.links {
		if n, ok := l.dev.(MTUNotifier); ok {
			ch := n.MTUChanged()
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-ch:
						r.setMTU(i, l.dev.MTU())
					}
				}
			})
		}
	}
	if r.cfg.Devices == nil {
		r.watchNetlinkMTU(ctx)
	}
	wg.Wait()
}

// watchNetlinkMTU applies the MTU of every netlink link update of a capture
// NIC (ip link set ext0 mtu 1400) until ctx is done. It lists the links
// first, so a change between New and Run is not missed.
func (r *Router) watchNetlinkMTU(ctx context.Context) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var stopping atomic.Bool // closing done fails the subscription's receive: not worth a warning
	defer func() {
		stopping.Store(true)
		close(done)
	}()
	opts := netlink.LinkSubscribeOptions{ListExisting: true, ErrorCallback: func(err error) {
		if !stopping.Load() {
			r.log.Warn("router: netlink link updates", "err", err)
		}
	}}
	if r.cfg.Netns > 0 {
		ns := r.cfg.Netns
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		r.log.Warn("router: cannot follow link MTU changes; restart after changing a capture NIC's MTU", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				if !stopping.Load() {
					r.log.Warn("router: netlink link updates stopped; MTU changes are no longer followed")
				}
				return
			}
			a := u.Attrs()
			if a == nil {
				continue
			}
			for i := range r.links {
				if r.links[i].info.name != a.Name {
					continue
				}
				if lk, ok := r.links[i].dev.(*link); ok {
					lk.mtu.Store(int64(a.MTU))
				}
				r.setMTU(i, a.MTU)
			}
		}
	}
}
