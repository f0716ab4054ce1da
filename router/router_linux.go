package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Router is the data plane of one node. New opens everything and starts
// nothing; Run runs it; Close stops it and undoes what New did.
type Router struct {
	cfg     Config
	log     *slog.Logger
	plane   *plane
	links   []nic
	neigh   []*neighTable
	attrib  []*attribTable // per link: sender MAC → the VIP it uses as gateway (bounded, bounded.go)
	tun     TUNDevice
	tunDev  *tunDev // the real TUN device (nil with Config.Devices)
	kernel  *KernelState
	start   time.Time
	filter  Filter        // cfg.Filter
	checker FilterChecker // cfg.Filter, if it is one: the probes ask it
	redir   Redirector    // cfg.Filter, if it is one and cfg.Tunnel is set
	held    *holdStore    // packets held for redir (first packets of new flows)
	tunnel  TunnelDevice  // cfg.Tunnel
	segPool sync.Pool     // *[]byte: GSO segments on their way to the tunnel

	probeMu    sync.Mutex // serializes Probe
	probeRound uint64
	probeAck   chan struct{} // a worker answered a probe (capacity 1)

	owned   atomic.Pointer[ownedSet]
	setMu   sync.Mutex // serializes SetOwned
	vipMu   sync.Mutex
	vipCtrs map[netip.Addr]*vipCounters // every VIP ever configured or owned
	garpMu  sync.Mutex
	garp    *garpSched
	kick    chan struct{}

	shards []*shard // one per receive goroutine (link-major), then TUN reader, timer, defer worker, one per tunnel path

	devOnce sync.Once // closes the devices: Run stopping, or Close
	devErr  error

	runMu     sync.Mutex
	workers   []*worker // while Run runs: the receive workers, then the TUN reader
	running   bool
	closed    bool
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// nic is one capture NIC as the router uses it.
type nic struct {
	info linkInfo
	dev  LinkDevice
}

// New opens the AF_PACKET sockets of every link and the TUN device inside
// cfg.Netns (or takes cfg.Devices), applies SetupKernel when
// cfg.ManageKernel is set, and returns a Router that owns no VIP yet (see
// SetOwned). It starts no goroutine.
func New(cfg Config) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Router{cfg: cfg, log: cfg.Logger, start: time.Now(), filter: cfg.Filter, vipCtrs: map[netip.Addr]*vipCounters{},
		garp: newGARPSched(cfg.garpConfig()), probeAck: make(chan struct{}, 1)}
	r.checker, _ = cfg.Filter.(FilterChecker)
	if rd, ok := cfg.Filter.(Redirector); ok && cfg.Tunnel != nil {
		r.redir, r.tunnel, r.held = rd, cfg.Tunnel, newHoldStore()
		r.segPool.New = func() any { b := make([]byte, slotSize); return &b }
	}
	ok := false
	defer func() {
		if !ok {
			r.release()
		}
	}()
	if err := r.openLinks(); err != nil {
		return nil, err
	}
	var infos []linkInfo
	var connected []netip.Prefix
	maxMTU := 0
	for _, l := range r.links {
		infos = append(infos, l.info)
		connected = append(connected, l.info.prefix)
		maxMTU = max(maxMTU, l.info.mtu.get())
		r.neigh = append(r.neigh, newNeighTable(cfg.neighConfig()))
	}
	r.wireTimer()
	rt, err := newRouteTable(connected, cfg.Routes)
	if err != nil {
		return nil, err
	}
	r.plane = &plane{links: infos, routes: rt}
	for range r.links {
		r.attrib = append(r.attrib, newAttribTable(cfg.AttribMACs))
	}
	// A shard per receive queue, then the TUN, timer and defer workers',
	// then one per tunnel path.
	nt := 0
	if cfg.Tunnel != nil {
		nt = max(1, cfg.Tunnel.Paths())
	}
	for i := 0; i < len(r.links)*cfg.RxQueues+3+nt; i++ {
		r.shards = append(r.shards, newShard(len(r.links)))
	}
	for _, v := range cfg.VIPs {
		r.vipCtrs[v] = &vipCounters{}
	}
	r.owned.Store(&ownedSet{vips: map[[4]byte]ownedVIP{}})
	if cfg.ManageKernel {
		k, err := SetupKernel(KernelConfig{Netns: cfg.Netns, Links: cfg.Links, VIPs: cfg.VIPs, Logger: r.log})
		if err != nil {
			return nil, fmt.Errorf("kernel setup: %w", err)
		}
		r.kernel = k
	}
	if cfg.Devices != nil {
		r.tun = cfg.Devices.TUN
	} else {
		t, err := openTUN(&r.cfg, maxMTU)
		if err != nil {
			return nil, err
		}
		r.tunDev, r.tun = t, t.io
	}
	ok = true
	for _, l := range r.links {
		r.log.Info("router: capturing", "nic", l.info.name, "mac", l.info.mac.String(), "primary", l.info.primary, "mtu", l.info.mtu.get())
	}
	r.log.Info("router: local delivery", "tun", cfg.TUNName, "vips", len(cfg.VIPs))
	return r, nil
}

// openLinks opens the capture sockets of every link in cfg.Netns, or takes
// cfg.Devices.Links.
func (r *Router) openLinks() error {
	cfg := &r.cfg
	add := func(i int, dev LinkDevice) error {
		mac := dev.HardwareAddr()
		if len(mac) != 6 {
			return fmt.Errorf("link %s: hardware address %v is not Ethernet", cfg.Links[i].Name, mac)
		}
		info := linkInfo{index: i, name: cfg.Links[i].Name, mac: MAC(mac), mtu: newLinkMTU(dev.MTU()),
			primary: cfg.Links[i].Primary.Addr(), prefix: cfg.Links[i].Primary.Masked()}
		r.links = append(r.links, nic{info: info, dev: dev})
		return nil
	}
	if cfg.Devices != nil {
		for i, dev := range cfg.Devices.Links {
			if err := add(i, dev); err != nil {
				return err
			}
		}
		return nil
	}
	return inNetns(cfg.Netns, func() error {
		primaries := make([]netip.Addr, len(cfg.Links))
		for i, l := range cfg.Links {
			primaries[i] = l.Primary.Addr()
		}
		for i, l := range cfg.Links {
			lk, err := openLink(l.Name, cfg, primaries)
			if err != nil {
				return err
			}
			if err := add(i, lk); err != nil {
				lk.Close()
				return err
			}
		}
		return nil
	})
}

func (r *Router) now() int64 { return int64(time.Since(r.start)) }

// Now returns the router's clock, in ns: the time its Filter calls get.
func (r *Router) Now() int64 { return r.now() }

// linkFor returns the link whose subnet holds a, or -1.
func (r *Router) linkFor(a netip.Addr) int {
	best, bits := -1, -1
	for i := range r.plane.links {
		if p := r.plane.links[i].prefix; p.Contains(a) && p.Bits() > bits {
			best, bits = i, p.Bits()
		}
	}
	return best
}

// configuredVIP returns the counters of VIP v, or nil when v is not a VIP
// of this node's configuration (never creates one: v comes off the wire).
func (r *Router) configuredVIP(v netip.Addr) *vipCounters {
	r.vipMu.Lock()
	defer r.vipMu.Unlock()
	return r.vipCtrs[v]
}

func (r *Router) vipCounter(v netip.Addr) *vipCounters {
	r.vipMu.Lock()
	defer r.vipMu.Unlock()
	c := r.vipCtrs[v]
	if c == nil {
		c = &vipCounters{}
		r.vipCtrs[v] = c
	}
	return c
}

// SetOwned replaces the set of VIPs this node answers for (the node calls it
// with each committed VIP table). The new set takes effect at once for every
// following frame: released VIPs are no longer answered; acquired VIPs are
// announced with gratuitous ARP right away and on the GARP schedule. VIPs on
// no link's subnet are ignored with a warning. It returns the VIPs acquired
// and released by this call, sorted. vips is not retained.
func (r *Router) SetOwned(vips []netip.Addr) (acquired, released []netip.Addr) {
	r.setMu.Lock()
	defer r.setMu.Unlock()
	next := &ownedSet{vips: make(map[[4]byte]ownedVIP, len(vips))}
	for _, v := range vips {
		li := -1
		if v.Is4() {
			li = r.linkFor(v)
		}
		if li < 0 {
			r.log.Warn("router: VIP is on no capture NIC's subnet; not answering for it", "vip", v)
			continue
		}
		next.vips[v.As4()] = ownedVIP{link: li, c: r.vipCounter(v)}
	}
	prev := r.owned.Swap(next)
	acquired, released = diffOwned(prev, next)
	now := time.Duration(r.now())
	r.garpMu.Lock()
	for _, v := range released {
		r.garp.release(v)
	}
	for _, v := range acquired {
		r.garp.acquire(v, now)
	}
	r.garpMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	if len(acquired)+len(released) > 0 {
		r.log.Info("router: ownership changed", "acquired", acquired, "released", released, "owned", len(next.vips))
	}
	return acquired, released
}

// Announce restarts the gratuitous ARP schedule (GARPCount announcements,
// the first at once) of each VIP in vips that this node owns; others are
// ignored. The node calls it when ring membership changes: after a partition
// heals, a node that kept a VIP all along must tell hosts that learned
// another owner's MAC meanwhile, though its own ownership never changed.
func (r *Router) Announce(vips []netip.Addr) {
	owned := r.owned.Load()
	now := time.Duration(r.now())
	n := 0
	r.garpMu.Lock()
	for _, v := range vips {
		if _, ok := owned.lookup(v); ok {
			r.garp.acquire(v, now)
			n++
		}
	}
	r.garpMu.Unlock()
	if n > 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Owned returns the VIPs currently answered for, sorted.
func (r *Router) Owned() []netip.Addr { return r.owned.Load().addrs() }

// SetGARP changes the gratuitous ARP schedule at run time (a reload):
// count announcements after acquiring a VIP, interval apart, then one
// every refresh (0: never), at most rate per second across all VIPs.
// Announcements already scheduled keep their next time. Values outside
// Config's rules are refused.
func (r *Router) SetGARP(count int, interval, refresh time.Duration, rate float64) error {
	c := r.cfg.garpConfig()
	c.count, c.interval, c.refresh, c.rate = count, interval, refresh, rate
	if c.count < 1 || c.interval <= 0 || c.refresh < 0 || c.rate <= 0 {
		return errors.New("router: garp: count ≥ 1, interval > 0, refresh ≥ 0 and rate > 0 are required")
	}
	r.garpMu.Lock()
	r.garp.setConfig(c)
	r.garpMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

// SetARPCache changes the ARP cache of every link at run time (a reload):
// reachable is how long a resolved host is used without re-probing it,
// queue how many packets wait per unresolved next hop. Entries keep
// their last confirmation: a shorter reachable makes older ones stale at
// once (used while re-probed, as usual). Values outside Config's rules
// are refused.
func (r *Router) SetARPCache(reachable time.Duration, queue int) error {
	if reachable <= 0 || queue < 1 {
		return errors.New("router: arp cache: reachable > 0 and queue ≥ 1 are required")
	}
	for _, t := range r.neigh {
		t.setTunables(reachable, queue)
	}
	return nil
}

// setAttribution records that hosts sending from mac (whose ARP request
// gave address host) on link li use the VIP counted by c as their gateway,
// so forwarded traffic is counted per VIP.
func (r *Router) setAttribution(li int, mac MAC, host [4]byte, c *vipCounters, now int64) {
	setAttrib(r.attrib[li], mac, c, host, now)
}

// GatewayHosts returns the addresses of the hosts whose last ARP request
// (seen on any link, answered here or by another node) was for one of
// vips: the hosts that use them as their gateway, as far as this node
// knows (a reload's --drop-flows drops their flows). A host behind a
// router that uses a VIP as its next hop is not among them (only the
// router's address is); a host that asked for another VIP since counts on
// that one. Sorted, without duplicates.
func (r *Router) GatewayHosts(vips []netip.Addr) []netip.Addr {
	want := map[*vipCounters]bool{}
	r.vipMu.Lock()
	for _, v := range vips {
		if c := r.vipCtrs[v]; c != nil {
			want[c] = true
		}
	}
	r.vipMu.Unlock()
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, t := range r.attrib {
		for e := range t.all() {
			// A node's gratuitous ARP for a VIP (sender and target the
			// VIP) is attributed too; the VIP is no host.
			if h := netip.AddrFrom4(e.val.host); want[e.val.c] && !seen[h] && !h.IsUnspecified() && !slices.Contains(vips, h) {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// SetVIPs makes vips the VIPs of this node's configuration (a reload that
// adds or removes VIPs): a host's ARP request for one of them is
// attributed even while another node answers it, and the TUN device
// carries each one's address and policy rule (local services can listen
// on a new VIP; a removed one is no longer the OS's). Counters of VIPs no
// longer configured stay (they are every VIP ever configured or owned).
func (r *Router) SetVIPs(vips []netip.Addr) error {
	for _, v := range vips {
		r.vipCounter(v)
	}
	if r.tunDev != nil {
		return r.tunDev.setVIPs(vips)
	}
	return nil
}

// Run runs the data plane until ctx is done or Close is called; it returns
// nil then, or the error that stopped a receive loop. It stops by closing the
// link and TUN devices (their reads return net.ErrClosed); the TUN device
// with its VIPs and rules and the kernel settings stay until Close. Run may
// be called once.
func (r *Router) Run(ctx context.Context) error {
	r.runMu.Lock()
	if r.closed {
		r.runMu.Unlock()
		return net.ErrClosed
	}
	if r.running {
		r.runMu.Unlock()
		return errors.New("router: Run called twice")
	}
	r.running = true
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	r.runMu.Unlock()
	defer close(r.done)
	defer cancel()

	var workers []*worker
	for i, l := range r.links {
		for q, rd := range l.dev.Readers() {
			if len(workers) == len(r.links)*r.cfg.RxQueues {
				return errors.New("router: a link device has more readers than Config.RxQueues")
			}
			w := r.newWorker(i, rd, r.shards[len(workers)])
			w.name = fmt.Sprintf("%s queue %d", l.info.name, q)
			w.waker, _ = rd.(Waker)
			workers = append(workers, w)
		}
	}
	nrx := len(r.links) * r.cfg.RxQueues
	tw := r.newWorker(-1, nil, r.shards[nrx])
	tw.name = "tun"
	tw.waker, _ = r.tun.(Waker)
	all := append(workers, tw)
	for _, w := range all {
		r.probeFrames(w)
	}
	r.runMu.Lock()
	r.workers = all
	r.runMu.Unlock()
	defer func() {
		r.runMu.Lock()
		r.workers = nil
		r.runMu.Unlock()
	}()
	errc := make(chan error, len(workers)+3)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { errc <- w.run() })
	}
	wg.Go(func() { errc <- tw.runTUN() })
	wg.Go(func() { r.runTimer(ctx, r.shards[nrx+1]) })
	wg.Go(func() { r.watchMTU(ctx) })
	if r.tunnel != nil {
		for p := range max(1, r.tunnel.Paths()) {
			xw := r.newWorker(-1, nil, r.shards[nrx+3+p])
			xw.name = fmt.Sprintf("tunnel path %d", p)
			wg.Go(func() { errc <- xw.runTunnel(p) })
		}
		dw := r.newWorker(-1, nil, r.shards[nrx+2])
		dw.name = "defer"
		wg.Go(func() { dw.runDefer(ctx) })
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		if first != nil {
			r.log.Error("router: stopping", "err", first)
		}
	}
	cancel()
	if err := r.closeDevices(); err != nil {
		r.log.Warn("router: closing devices", "err", err)
	}
	wg.Wait()
	return first
}

// closeDevices closes the link and TUN devices once: the receive loops see
// net.ErrClosed and return. The TUN device itself, with its VIPs and rules,
// stays until Close.
func (r *Router) closeDevices() error {
	r.devOnce.Do(func() {
		var errs []error
		for _, l := range r.links {
			errs = append(errs, l.dev.Close())
		}
		if r.tun != nil {
			errs = append(errs, r.tun.Close())
		}
		if r.tunnel != nil {
			errs = append(errs, r.tunnel.Close())
		}
		r.devErr = errors.Join(errs...)
	})
	return r.devErr
}

// Close stops Run, closes the sockets and the TUN device (its VIPs, routes
// and rules go with it) and restores the kernel settings. Safe to call more
// than once.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.runMu.Lock()
		r.closed = true
		cancel, done := r.cancel, r.done
		r.runMu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
		r.closeErr = r.release()
	})
	return r.closeErr
}

func (r *Router) release() error {
	errs := []error{r.closeDevices()}
	if r.tunDev != nil {
		errs = append(errs, r.tunDev.close())
	}
	if r.kernel != nil {
		errs = append(errs, r.kernel.Restore())
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of every counter and the ARP caches.
func (r *Router) Stats() Stats {
	now := r.now()
	var s Stats
	for i, l := range r.links {
		ls := LinkStats{Name: l.info.name, MTU: l.info.mtu.get()}
		sumLinks(r.shards, i, &ls)
		ls.SocketDrops = l.dev.Dropped()
		ls.Neighbors = r.neigh[i].snapshot(now)
		ls.Pending = r.neigh[i].pendingLen()
		ls.NeighEvicted = r.neigh[i].resolved.evicted.Load()
		ls.Attributed = r.attrib[i].len()
		ls.AttribEvicted = r.attrib[i].evicted.Load()
		s.Links = append(s.Links, ls)
		s.TUN.Written += ls.Local
	}
	s.TUN.Name = r.cfg.TUNName
	for _, sh := range r.shards {
		s.TUN.Read += sh.tun.read.load()
		s.TUN.ReadBytes += sh.tun.readBytes.load()
		for d := range sh.tun.drops {
			if v := sh.tun.drops[d].load(); v != 0 {
				if s.TUN.Drops == nil {
					s.TUN.Drops = map[DropReason]uint64{}
				}
				s.TUN.Drops[DropReason(d)] += v
			}
		}
	}
	s.Tunnel = sumTunnel(r.shards)
	if r.held != nil {
		s.Tunnel.HeldNow = r.held.held()
	}
	owned := r.owned.Load()
	r.vipMu.Lock()
	for v, c := range r.vipCtrs {
		_, own := owned.lookup(v)
		s.VIPs = append(s.VIPs, VIPStats{VIP: v, Owned: own, ARPRequests: c.arpRequests.Load(), ARPReplies: c.arpReplies.Load(),
			GARPs: c.garps.Load(), Packets: c.packets.Load(), Bytes: c.bytes.Load(), Conflicts: c.conflicts.Load()})
	}
	r.vipMu.Unlock()
	sortVIPStats(s.VIPs)
	return s
}

// LinkMAC returns the MAC address of the named capture NIC.
func (r *Router) LinkMAC(name string) (net.HardwareAddr, bool) {
	for _, l := range r.links {
		if l.info.name == name {
			return net.HardwareAddr(l.info.mac[:]), true
		}
	}
	return nil, false
}

// runTimer sends due gratuitous ARP and runs the ARP caches' timers. It is
// deadline-driven: after each pass it sleeps until the earliest moment
// garpSched.nextAt or neighTable.nextAt name, or until kicked. Every event
// that creates earlier work kicks it (r.kick): SetOwned and Announce for
// GARP, a neighTable creating a pending resolution or a new entry (its wake
// channel is r.kick). A wakeup with nothing due is harmless: the pass finds
// nothing and the deadline is recomputed. cfg.Tick caps the sleep only as a
// safety net (default 1 s), so an idle router wakes about once a second
// instead of every 50 ms.
func (r *Router) runTimer(ctx context.Context, sh *shard) {
	t := time.NewTimer(0) // a first pass at once: VIPs owned before Run
	defer t.Stop()
	ctl := newCtlTx()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		at, ok := r.timerPass(r.now(), sh, &ctl)
		// Go 1.23+ timers: Reset drops a value the timer may have sent
		// while a kick woke us, so no stale wakeup follows.
		t.Reset(timerSleep(r.now(), at, ok, r.cfg.Tick))
	}
}

// wireTimer makes the channel that wakes runTimer early and hands it to the
// ARP caches (SetOwned and Announce send on it themselves).
func (r *Router) wireTimer() {
	r.kick = make(chan struct{}, 1)
	for _, nt := range r.neigh {
		nt.wake = r.kick
	}
}

// timerPass does the timer work due at now and returns when the next is due.
func (r *Router) timerPass(now int64, sh *shard, ctl *ctlTx) (at int64, ok bool) {
	r.garpMu.Lock()
	due := r.garp.due(time.Duration(now))
	gat, gok := r.garp.nextAt(time.Duration(now))
	r.garpMu.Unlock()
	at, ok = int64(gat), gok
	owned := r.owned.Load()
	for _, v := range due {
		ov, found := owned.lookup(v)
		if !found {
			continue
		}
		l := r.links[ov.link]
		c := &sh.links[ov.link]
		var failed bool
		for _, reply := range []bool{false, true} {
			n := putGARP(ctl.frame(), &l.info, v, reply)
			if err := ctl.send(l.dev, n); err != nil {
				c.drops[DropTx].add(1)
				failed = true
			} else {
				c.txFrames.add(1)
				c.txBytes.add(uint64(n))
			}
		}
		if !failed {
			c.garps.add(1)
			ov.c.garps.Add(1)
			if r.cfg.OnGARP != nil {
				r.cfg.OnGARP(v, time.Now())
			}
		}
	}
	for i, nt := range r.neigh {
		reqs, failed := nt.tick(now)
		for _, ip := range reqs {
			r.arpRequest(i, ip, sh, ctl)
		}
		if len(failed) > 0 {
			sh.links[i].drops[DropNeighUnresolved].add(uint64(len(failed)))
		}
		nat, nok := nt.nextAt(now)
		at, ok = earliest(at, ok, nat, nok)
	}
	return at, ok
}

// arpRequest asks for target on link li (resolution or re-probe).
func (r *Router) arpRequest(li int, target netip.Addr, sh *shard, ctl *ctlTx) {
	l := &r.links[li]
	n := putARPRequest(ctl.frame(), &l.info, target)
	c := &sh.links[li]
	if err := ctl.send(l.dev, n); err != nil {
		c.drops[DropTx].add(1)
		return
	}
	c.arpResolves.add(1)
	c.txFrames.add(1)
	c.txBytes.add(uint64(n))
}
