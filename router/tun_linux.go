package router

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// tunDev is the local delivery device: every VIP is configured on it (the
// patent's Figure 15), packets for owned VIPs are written to it, and a policy
// rule per VIP sends the OS's replies (source = a VIP) back into it, where
// the router reads and routes them.
//
// wireguard's tun package creates the device with IFF_VNET_HDR and TSO/CSUM
// offloads and owns its lifecycle; the router reads and writes the device
// file directly (tunFile, a TUNDevice) so virtio-net headers pass through
// unchanged in both directions (GSO super-frames and partial checksums are
// not split or completed in user space).
type tunDev struct {
	dev   tun.Device
	io    *tunFile
	name  string
	mu    sync.Mutex      // rules: setVIPs and close
	rules []*netlink.Rule // one per VIP on the device
	cfg   *Config
}

func openTUN(cfg *Config, mtu int) (*tunDev, error) {
	var dev tun.Device
	err := inNetns(cfg.Netns, func() error {
		var err error
		dev, err = tun.CreateTUN(cfg.TUNName, mtu)
		if err != nil {
			return err
		}
		// The device sysctls exist now; rp_filter loose so replies from
		// hosts on capture NICs are accepted on the TUN device.
		for _, s := range []struct{ p, v string }{
			{"net/ipv4/conf/" + cfg.TUNName + "/rp_filter", "2"},
			{"net/ipv6/conf/" + cfg.TUNName + "/disable_ipv6", "1"},
		} {
			if err := os.WriteFile(sysctlPath(s.p), []byte(s.v), 0o644); err != nil {
				return fmt.Errorf("set %s: %w", s.p, err)
			}
		}
		return nil
	})
	if err != nil {
		if dev != nil {
			dev.Close()
		}
		return nil, fmt.Errorf("create TUN device %s: %w", cfg.TUNName, err)
	}
	go func() {
		for range dev.Events() { // wireguard blocks on an undrained channel
		}
	}()
	t := &tunDev{dev: dev, name: cfg.TUNName, cfg: cfg}
	if t.io, err = newTUNFile(dev.File()); err != nil {
		t.close()
		return nil, fmt.Errorf("TUN device %s: %w", cfg.TUNName, err)
	}
	if err := t.configure(); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// link opens a netlink handle in the device's namespace and finds the
// device; the caller closes the handle.
func (t *tunDev) link() (*netlink.Handle, netlink.Link, error) {
	h, err := nlHandle(t.cfg.Netns)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	l, err := h.LinkByName(t.name)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("find %s: %w", t.name, err)
	}
	return h, l, nil
}

func (t *tunDev) configure() error {
	h, l, err := t.link()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", t.name, err)
	}
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Table: t.cfg.TUNTable, Scope: netlink.SCOPE_LINK}
	if err := h.RouteReplace(rt); err != nil {
		return fmt.Errorf("route table %d default dev %s: %w", t.cfg.TUNTable, t.name, err)
	}
	for _, v := range t.cfg.VIPs {
		if err := t.addVIP(h, l, v); err != nil {
			return err
		}
	}
	return nil
}

// addVIP puts VIP v on the device with its policy rule (a rule left over
// from a crash is replaced) and keeps the rule for removal.
func (t *tunDev) addVIP(h *netlink.Handle, l netlink.Link, v netip.Addr) error {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add VIP %v to %s: %w", v, t.name, err)
	}
	r := vipRule(t.cfg, v)
	_ = h.RuleDel(r)
	if err := h.RuleAdd(r); err != nil {
		return fmt.Errorf("rule from %v lookup %d: %w", v, t.cfg.TUNTable, err)
	}
	t.rules = append(t.rules, r)
	return nil
}

func vipRule(cfg *Config, v netip.Addr) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Src = &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(32, 32)}
	r.Table = cfg.TUNTable
	r.Priority = cfg.TUNRulePriority
	return r
}

// setVIPs makes vips the VIPs on the device (a reload): a new one gets its
// address and policy rule, so local services can listen on it; a removed
// one loses them.
func (t *tunDev) setVIPs(vips []netip.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, v := range vips {
		if v.Is4() {
			want[v] = true
		}
	}
	have := map[netip.Addr]bool{}
	for _, r := range t.rules {
		if a, ok := netip.AddrFromSlice(r.Src.IP.To4()); ok {
			have[a] = true
		}
	}
	if maps.Equal(want, have) {
		return nil
	}
	h, l, err := t.link()
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for _, v := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if have[v] {
			continue
		}
		if err := t.addVIP(h, l, v); err != nil {
			errs = append(errs, err)
		}
	}
	kept := t.rules[:0]
	for _, r := range t.rules {
		a, _ := netip.AddrFromSlice(r.Src.IP.To4())
		if want[a] {
			kept = append(kept, r)
			continue
		}
		if err := h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete rule from %v: %w", a, err))
		}
		ad := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := h.AddrDel(l, ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove VIP %v from %s: %w", a, t.name, err))
		}
	}
	t.rules = kept
	return errors.Join(errs...)
}

// close removes the policy rules and the device (its addresses and routes
// go with it).
func (t *tunDev) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	if t.io != nil {
		errs = append(errs, t.io.Close())
	}
	if len(t.rules) > 0 {
		if h, err := nlHandle(t.cfg.Netns); err == nil {
			for _, r := range t.rules {
				if err := h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete rule from %v: %w", r.Src, err))
				}
			}
			h.Close()
		} else {
			errs = append(errs, err)
		}
		t.rules = nil
	}
	if err := t.dev.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tunFile is the TUNDevice of the real TUN device: a duplicate of the
// device's file descriptor, so closing it (Run stopping) wakes its readers
// without destroying the device, which stays up with its VIPs until the
// Router's Close. The descriptor is non-blocking (wireguard's CreateTUN) and
// waits in the Go netpoller.
type tunFile struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool

	// Read state, used by the one reading goroutine; the closure is built
	// once because one per call would allocate.
	rbufs  [][]byte
	rsizes []int
	roff   int
	rn     int
	rerr   syscall.Errno
	rfn    func(fd uintptr) bool

	wpool sync.Pool // *tunWriter: Write is called by every receive goroutine
}

var _ TUNDevice = (*tunFile)(nil)

func newTUNFile(dev *os.File) (*tunFile, error) {
	rc, err := dev.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, serr := -1, error(nil)
	if err := rc.Control(func(d uintptr) { fd, serr = unix.FcntlInt(d, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("dup: %w", serr)
	}
	t := &tunFile{f: os.NewFile(uintptr(fd), dev.Name())}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, err
	}
	t.rfn = func(fd uintptr) bool {
		for t.rn < len(t.rbufs) {
			b := t.rbufs[t.rn][t.roff:]
			// RawSyscall: a non-blocking read only copies a queued
			// packet out.
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			if e == unix.EINTR {
				continue
			}
			if e == unix.EAGAIN {
				break
			}
			if e != 0 {
				t.rerr = e
				return true
			}
			t.rsizes[t.rn] = int(r)
			t.rn++
		}
		return t.rn > 0 // nothing yet: wait in the netpoller
	}
	t.wpool.New = func() any {
		w := &tunWriter{}
		w.fnv = w.fn
		return w
	}
	return t, nil
}

// Wake is Waker.Wake, as rxSock.Wake: the descriptor is in the netpoller,
// so a read deadline in the past returns the blocked Read.
func (t *tunFile) Wake() error { return t.f.SetReadDeadline(time.Unix(1, 0)) }

// Read is TUNDevice.Read: one read(2) per packet (TUN has no batch read),
// as many as are queued, up to len(bufs), after waiting for the first.
func (t *tunFile) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.rbufs, t.rsizes, t.roff, t.rn, t.rerr = bufs, sizes, offset, 0, 0
	err := t.rc.Read(t.rfn)
	n := t.rn
	t.rbufs, t.rsizes = nil, nil
	switch {
	case err != nil && t.closed.Load():
		return 0, net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Woken (Wake); as rxSock.Read.
		_ = t.f.SetReadDeadline(time.Time{})
		return n, nil
	case err != nil:
		return 0, err
	case n == 0 && t.rerr != 0:
		return 0, fmt.Errorf("read TUN: %w", t.rerr)
	}
	return n, nil // a read error after some packets comes back next time
}

// Write is TUNDevice.Write: one write(2) per packet (a TUN write takes one
// packet), all inside one netpoller operation. The os.File write lock is
// held for the batch, as it was for each single Write before.
func (t *tunFile) Write(bufs [][]byte, offset int) (int, error) {
	if t.closed.Load() {
		return 0, net.ErrClosed
	}
	w := t.wpool.Get().(*tunWriter)
	w.bufs, w.offset, w.n, w.err = bufs, offset, 0, 0
	err := t.rc.Write(w.fnv)
	n, werr := w.n, w.err
	w.bufs = nil // the pool must not keep packets alive
	t.wpool.Put(w)
	switch {
	case err != nil && t.closed.Load():
		return n, net.ErrClosed
	case err != nil:
		return n, err
	case werr != 0:
		return n, fmt.Errorf("write TUN: %w", werr)
	}
	return n, nil
}

// tunWriter is the state of one Write, pooled with its closure (fnv) so a
// Write allocates nothing.
type tunWriter struct {
	bufs   [][]byte
	offset int
	n      int
	err    syscall.Errno
	fnv    func(fd uintptr) bool
}

func (w *tunWriter) fn(fd uintptr) bool {
	for w.n < len(w.bufs) {
		b := w.bufs[w.n][w.offset:]
		// Counted Syscall: writing a packet runs the receive path of the
		// OS's network stack in this thread.
		_, _, e := unix.Syscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			return false // wait for room, then go on from w.n
		}
		if e != 0 {
			w.err = e
			return true
		}
		w.n++
	}
	return true
}

// Close closes the duplicate descriptor: blocked Reads return net.ErrClosed.
func (t *tunFile) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	return t.f.Close()
}
