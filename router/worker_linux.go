package router

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// worker is one receive goroutine: a NIC's receive queue (in >= 0) or the
// TUN reader (in == -1). It owns its counter shard, its receive slots, its
// per-output-link send queues and its TUN queue, so the hot path shares
// nothing writable. Every frame of a batch is decided and queued, then the
// queues are flushed with one Write per device before the next Read (the
// queued frames point into the receive slots).
type worker struct {
	r       *Router
	in      int
	rd      FrameReader // receive queue of link in (nil for the TUN reader)
	sh      *shard
	bufs    [][]byte // receive slots
	sizes   []int
	tx      []*txQueue
	tun     tunQueue
	ctl     ctlTx
	scratch [][]byte // ICMP error frames built during one batch
	nextScr int
	// frag holds the fragments built during one batch (frag.go); fragUsed
	// bytes of it are queued. When a packet needs more, every queue is
	// flushed and frag starts over.
	frag     []byte
	fragUsed int
	// ICMP error token bucket (RFC 1812 4.3.2.8 rate limiting).
	icmpTokens float64
	icmpLast   int64

	// The application check (probe_linux.go).
	name       string // "ext0 queue 0", "tun"
	waker      Waker  // the reader as a Waker, nil when it is none
	probe      probeSlot
	answered   uint64 // the last round answered (the worker's copy)
	probeFwd   []byte // Ethernet frame that must be forwarded, or nil
	probeSpoof []byte // Ethernet frame the filter must drop, or nil
	probeOut   []byte // TUN reader: IPv4 packet that must be routed, or nil

	tq  tunnelQueue // packets for the tunnel, sent at flush (tunnel_linux.go)
	tcp tcpRun      // the tunnel worker's run of TCP segments (coalesce_linux.go)
}

func (r *Router) newWorker(in int, rd FrameReader, sh *shard) *worker {
	b := r.cfg.Batch
	w := &worker{r: r, in: in, rd: rd, sh: sh, icmpTokens: float64(r.cfg.ICMPBurst), ctl: newCtlTx(),
		bufs: make([][]byte, b), sizes: make([]int, b), frag: make([]byte, fragArena)}
	mem := make([]byte, b*slotSize)
	for i := range w.bufs {
		w.bufs[i] = mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
	}
	for i, l := range r.links {
		w.tx = append(w.tx, newTxQueue(l.dev, b, &sh.links[i]))
	}
	if in >= 0 {
		w.tun = tunQueue{dev: r.tun, bufs: make([][]byte, b), vips: make([]*vipCounters, b), c: &sh.links[in]}
		w.scratch = make([][]byte, b)
		for i := range w.scratch {
			w.scratch[i] = make([]byte, vnetHdrLen+icmpErrorFrameMax)
		}
	}
	return w
}

// run is a NIC's receive loop: read a batch, decide and act on each frame,
// flush the send queues. It returns nil once the device is closed.
// Between batches it answers the application check (Router.Probe); a Read
// that Probe woke returns no frame.
func (w *worker) run() error {
	for {
		n, err := w.rd.Read(w.bufs, w.sizes, 0)
		if err != nil {
			if isStop(err) {
				return nil
			}
			if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENOBUFS) {
				w.checkProbe()
				continue // link flapped; the monitor reports it
			}
			return err
		}
		if n > 0 {
			w.batch(n)
		}
		w.checkProbe()
	}
}

// batch acts on the first n frames of the receive slots and flushes.
func (w *worker) batch(n int) {
	r := w.r
	c := &w.sh.links[w.in]
	now := r.now()
	w.probe.busy.Store(now + 1) // Probe tells a wedged worker by it
	owned := r.owned.Load()
	c.rxBatches.add(1)
	for i := range n {
		size := w.sizes[i]
		if size > len(w.bufs[i]) {
			c.rxFrames.add(1)
			c.drops[DropTruncated].add(1)
			continue
		}
		w.handle(w.bufs[i][:size], now, owned)
	}
	w.flush()
	w.probe.busy.Store(0)
}

// flush writes every queued frame: one Write per output link, one to TUN.
func (w *worker) flush() {
	w.tq.flush(w)
	for _, q := range w.tx {
		if q.n > 0 {
			q.flush()
		}
	}
	if w.tun.n > 0 {
		w.tun.flush()
	}
	w.nextScr = 0
	w.fragUsed = 0
}

// fragArena is the bytes of fragments one worker builds between two
// flushes: a 64 KiB packet cut for a 1500-byte MTU (45 fragments) fits
// twice; smaller MTUs flush mid-packet.
const fragArena = 2 * slotSize

// fragment sends the IPv4 packet in frame (virtio-net header, Ethernet
// header, packet; d.frag set: no DF, larger than d.mtu, not GSO) as
// fragments of at most d.mtu bytes towards d.nextHop on d.out (frag.go). The
// fragments are built in the worker's arena, without allocating; each goes
// through send like a whole packet (TTL decrement and MAC rewrite, or the
// Ethernet header for TUN output).
func (w *worker) fragment(frame []byte, d ipDecision, now int64, forwarded bool) {
	c := &w.sh.links[d.out]
	h := d.hdr
	f := frame[vnetHdrLen:]
	ip := f[ethHdrLen : ethHdrLen+h.totalLen]
	var opts [40]byte
	no, ok := copiedOptions(opts[:], ip, h)
	if !ok || !vnetCompleteCsum(frame[:vnetHdrLen], f[:ethHdrLen+h.totalLen], h.proto) {
		c.drops[DropBadIPHeader].add(1)
		return
	}
	first, later, ok := fragSizes(h, no, d.mtu)
	if !ok {
		c.drops[DropTooBig].add(1)
		return
	}
	data := h.totalLen - h.hdrLen
	for off := 0; off < data; {
		n := min(later, data-off)
		if off == 0 {
			n = min(first, data)
		}
		need := vnetHdrLen + ethHdrLen + 60 + n
		if w.fragUsed+need > len(w.frag) {
			w.flush() // every queued fragment leaves; the arena is free again
		}
		b := w.frag[w.fragUsed : w.fragUsed+need]
		clear(b[:vnetHdrLen])
		copy(b[vnetHdrLen:], f[:ethHdrLen])
		m := putFragment(b[vnetHdrLen+ethHdrLen:], ip, h, opts[:no], off, n)
		b = b[:vnetHdrLen+ethHdrLen+m]
		w.fragUsed += len(b)
		w.send(d.out, d.nextHop, b, now, forwarded)
		c.fragments.add(1)
		off += n
	}
	c.fragmented.add(1)
}

// handle acts on one received frame (virtio-net header first).
func (w *worker) handle(buf []byte, now int64, owned *ownedSet) {
	r := w.r
	c := &w.sh.links[w.in]
	c.rxFrames.add(1)
	c.rxBytes.add(uint64(len(buf) - vnetHdrLen))
	if len(buf) < vnetHdrLen+ethHdrLen {
		c.drops[DropTruncated].add(1)
		return
	}
	vh, f := buf[:vnetHdrLen], buf[vnetHdrLen:]
	l := &r.plane.links[w.in]
	switch ethType(f) {
	case ethTypeARP:
		w.arp(buf, now, owned)
	case ethTypeIPv4:
		d := r.plane.decideIPv4(f, w.in, owned, vnetIsGSO(vh))
		n := ethHdrLen + d.hdr.totalLen
		switch d.action {
		case ipForward:
			if r.filter != nil && !w.filterForward(buf[:vnetHdrLen+n], d, now) {
				return
			}
			c.forwarded.add(1)
			c.fwdBytes.add(uint64(n))
			if vc := lookupAttrib(r.attrib[w.in], ethSrc(f)); vc != nil {
				vc.packets.Add(1)
				vc.bytes.Add(uint64(n))
			}
			if d.frag {
				w.fragment(buf[:vnetHdrLen+n], d, now, true)
				return
			}
			vnetForTx(vh)
			w.send(d.out, d.nextHop, buf[:vnetHdrLen+n], now, true)
		case ipEcho:
			clear(vh)
			m := answerEcho(f, l, d.hdr)
			w.tx[w.in].add(buf[:vnetHdrLen+m])
			c.echoReplies.add(1)
			d.vip.c.packets.Add(1)
			d.vip.c.bytes.Add(uint64(n))
		case ipLocal:
			if r.filter != nil && !r.filter.PassLocal(f[ethHdrLen:n], w.in, now) {
				c.drops[DropLocalFiltered].add(1)
				return
			}
			w.local(buf[:vnetHdrLen+n], d)
		case ipICMPError:
			c.drops[d.reason].add(1)
			w.icmpError(f[:n], d, now)
		default:
			c.drops[d.reason].add(1)
		}
	default:
		c.drops[DropEtherType].add(1)
	}
}

// arp answers requests for owned VIPs and feeds the ARP cache.
func (w *worker) arp(buf []byte, now int64, owned *ownedSet) {
	r := w.r
	c := &w.sh.links[w.in]
	l := &r.plane.links[w.in]
	a, d := decideARP(buf[vnetHdrLen:], l, owned)
	if d.learn != learnNone {
		if q := r.neigh[w.in].learn(a.SenderIP, a.SenderMAC, d.learn, now); len(q) > 0 {
			w.sendQueued(w.in, q, a.SenderMAC)
		}
	}
	if !d.answer {
		if d.reason == DropARPNotOwned && a.Op == arpRequest && d.learn != learnNone {
			// Requests are broadcast: every node learns which VIP a
			// host uses, also one another node answers, so the node
			// that takes the VIP over counts the host's traffic at
			// once (the host asks again only when its entry goes
			// stale, 15-45 s on Linux).
			if vc := r.configuredVIP(a.TargetIP); vc != nil {
				r.setAttribution(w.in, a.SenderMAC, a.SenderIP.As4(), vc, now)
			}
		}
		if d.reason != DropNone {
			c.drops[d.reason].add(1)
		}
		if d.reason == DropARPConflict {
			w.defend(&a, d.vip, now)
		}
		return
	}
	c.arpRequests.add(1)
	d.vip.c.arpRequests.Add(1)
	out := buf[:vnetHdrLen+minFrame] // the slot holds far more than a padded ARP frame
	clear(out[:vnetHdrLen])
	n := putARPReply(out[vnetHdrLen:], l, &a)
	w.tx[w.in].add(out[:vnetHdrLen+n])
	c.arpReplies.add(1)
	d.vip.c.arpReplies.Add(1)
	if isUnicastMAC(a.SenderMAC) {
		r.setAttribution(w.in, a.SenderMAC, a.SenderIP.As4(), d.vip.c, now)
	}
}

// defend answers another host's claim to the owned VIP v (an ARP packet
// from a.SenderMAC with v as sender address): as RFC 5227 2.4 (b) has a
// host defend its address, it broadcasts a gratuitous ARP (request and reply
// form) so the hosts that just learned the other MAC learn ours again, and
// logs a warning, both at most once per VIP per Config.ARPDefendInterval
// (a host that keeps claiming the VIP would otherwise make the router flood
// and the log grow). Every claim is counted (VIPStats.Conflicts).
func (w *worker) defend(a *arpPacket, v ownedVIP, now int64) {
	r := w.r
	v.c.conflicts.Add(1)
	last := v.c.defendedAt.Load()
	if last != 0 && now+1-last < int64(r.cfg.ARPDefendInterval) || !v.c.defendedAt.CompareAndSwap(last, now+1) {
		return
	}
	l := &r.links[w.in]
	op := "request"
	if a.Op == arpReply {
		op = "reply"
	}
	r.log.Warn("router: another host claims a VIP this node owns; defending it with gratuitous ARP",
		"vip", a.SenderIP, "nic", l.info.name, "their_mac", a.SenderMAC.String(), "arp", op, "claims", v.c.conflicts.Load())
	c := &w.sh.links[w.in]
	for _, reply := range []bool{false, true} {
		n := putGARP(w.ctl.frame(), &l.info, a.SenderIP, reply)
		if err := w.ctl.send(l.dev, n); err != nil {
			c.drops[DropTx].add(1)
			return
		}
		c.txFrames.add(1)
		c.txBytes.add(uint64(n))
	}
	c.garps.add(1)
	v.c.garps.Add(1)
}

// send resolves nextHop on link out and queues frame (virtio-net header
// first) for sending: forwarded frames get the RFC 1624 TTL rewrite, frames
// from the TUN device a fresh Ethernet header. An unresolved next hop gets a
// copy of the frame queued (the only allocation, off the steady state, and
// bounded: see neighTable.enqueue) and an ARP request.
func (w *worker) send(out int, nextHop netip.Addr, frame []byte, now int64, forwarded bool) {
	r := w.r
	ol := &r.plane.links[out]
	f := frame[vnetHdrLen:]
	mac, ok, probe := r.neigh[out].lookup(nextHop, now)
	if forwarded {
		rewriteForward(f, ol.mac, mac)
	} else {
		putEth(f, mac, ol.mac, ethTypeIPv4)
	}
	if probe {
		r.arpRequest(out, nextHop, w.sh, &w.ctl)
	}
	if ok {
		w.tx[out].add(frame)
		return
	}
	request, refused := r.neigh[out].enqueue(nextHop, frame, now)
	if refused != DropNone {
		w.sh.links[out].drops[refused].add(1)
	}
	if request {
		r.arpRequest(out, nextHop, w.sh, &w.ctl)
	}
}

// sendQueued queues the frames that waited for mac on link li; they leave
// with this batch. The ARP cache handed them over, so they stay valid.
func (w *worker) sendQueued(li int, q [][]byte, mac MAC) {
	for _, b := range q {
		copy(b[vnetHdrLen:vnetHdrLen+6], mac[:])
		w.tx[li].add(b)
	}
}

// local queues frame (virtio-net header, Ethernet, IPv4) for the OS through
// the TUN device: the header moves next to the IPv4 packet and its offsets
// lose the Ethernet header, so the TUN packet is frame[ethHdrLen:].
func (w *worker) local(frame []byte, d ipDecision) {
	h := frame[ethHdrLen : ethHdrLen+vnetHdrLen]
	copy(h, frame[:vnetHdrLen])
	vnetForTx(h)
	vnetShift(h, -ethHdrLen)
	w.tun.add(frame, d.vip.c)
}

// icmpError sends the ICMP error d asks for about frame f back to its L2
// source on the input link (the previous hop), from the link's primary
// address, within the rate limit.
func (w *worker) icmpError(f []byte, d ipDecision, now int64) {
	c := &w.sh.links[w.in]
	el := float64(now-w.icmpLast) / 1e9
	w.icmpLast = now
	w.icmpTokens = min(float64(w.r.cfg.ICMPBurst), w.icmpTokens+el*w.r.cfg.ICMPRate)
	if w.icmpTokens < 1 || w.nextScr >= len(w.scratch) {
		c.drops[DropICMPRateLimit].add(1)
		return
	}
	w.icmpTokens--
	s := w.scratch[w.nextScr]
	w.nextScr++
	clear(s[:vnetHdrLen])
	n := putICMPError(s[vnetHdrLen:], &w.r.plane.links[w.in], ethSrc(f), f[ethHdrLen:], d.hdr, d.icmpType, d.icmpCode, d.mtu)
	w.tx[w.in].add(s[:vnetHdrLen+n])
	c.icmpErrors.add(1)
}

// runTUN reads what the OS sends from VIPs (replies of local services) and
// routes it out of the capture NICs. Packets are read at offset ethHdrLen:
// the device's virtio-net header lands just before where the Ethernet header
// goes and is then moved to the front, so the packet is never copied.
func (w *worker) runTUN() error {
	for {
		n, err := w.r.tun.Read(w.bufs, w.sizes, ethHdrLen)
		if err != nil {
			if isStop(err) {
				return nil
			}
			return err
		}
		if n > 0 {
			w.tunBatch(n)
		}
		w.checkProbe()
	}
}

// tunBatch routes the first n packets read from the TUN device and flushes.
func (w *worker) tunBatch(n int) {
	r := w.r
	tc := &w.sh.tun
	now := r.now()
	w.probe.busy.Store(now + 1)
	for i := range n {
		size, buf := w.sizes[i], w.bufs[i]
		if size < vnetHdrLen+ipv4MinHdr {
			tc.drops[DropTruncated].add(1)
			continue
		}
		copy(buf[:vnetHdrLen], buf[ethHdrLen:ethHdrLen+vnetHdrLen])
		vh := buf[:vnetHdrLen]
		vnetShift(vh, ethHdrLen)
		ip := buf[vnetHdrLen+ethHdrLen : ethHdrLen+size]
		d := r.plane.decideLocalOut(ip, vnetIsGSO(vh))
		if d.action != ipForward {
			tc.drops[d.reason].add(1)
			continue
		}
		tc.read.add(1)
		tc.readBytes.add(uint64(d.hdr.totalLen))
		if d.frag {
			w.fragment(buf[:vnetHdrLen+ethHdrLen+d.hdr.totalLen], d, now, false)
			continue
		}
		w.send(d.out, d.nextHop, buf[:vnetHdrLen+ethHdrLen+d.hdr.totalLen], now, false)
	}
	w.flush()
	w.probe.busy.Store(0)
}

// txQueue batches frames for one output link from one goroutine; one Write
// sends them at flush. Frames must stay unchanged until flush.
type txQueue struct {
	dev  LinkDevice
	bufs [][]byte
	n    int
	// counters of the flushing goroutine for this link
	c *linkCounters
}

func newTxQueue(dev LinkDevice, n int, c *linkCounters) *txQueue {
	return &txQueue{dev: dev, bufs: make([][]byte, n), c: c}
}

// add queues the frame b (virtio-net header included), flushing first when
// the queue is full.
func (q *txQueue) add(b []byte) {
	if q.n == len(q.bufs) {
		q.flush()
	}
	q.bufs[q.n] = b
	q.n++
}

// flush writes every queued frame. A frame the device refuses is counted
// (DropTx) and skipped; after Close the rest are counted too.
func (q *txQueue) flush() {
	bufs := q.bufs[:q.n]
	for len(bufs) > 0 {
		n, err := q.dev.Write(bufs, 0)
		for _, b := range bufs[:n] {
			q.c.txFrames.add(1)
			q.c.txBytes.add(uint64(len(b) - vnetHdrLen))
		}
		bufs = bufs[n:]
		if err == nil || len(bufs) == 0 {
			break
		}
		if isStop(err) {
			q.c.drops[DropTx].add(uint64(len(bufs)))
			break
		}
		q.c.drops[DropTx].add(1)
		bufs = bufs[1:]
	}
	clear(q.bufs[:q.n]) // frames queued by the ARP cache are garbage now
	q.n = 0
}

// tunQueue batches one receive goroutine's local deliveries; one Write hands
// them to the TUN device at flush. bufs[i] is the received frame with the
// virtio-net header moved next to the IPv4 packet: the packet written is
// bufs[i][ethHdrLen:].
type tunQueue struct {
	dev  TUNDevice
	bufs [][]byte
	vips []*vipCounters // the VIP each packet is delivered to
	n    int
	c    *linkCounters // of the receiving link
}

func (q *tunQueue) add(frame []byte, vip *vipCounters) {
	if q.n == len(q.bufs) {
		q.flush()
	}
	q.bufs[q.n], q.vips[q.n] = frame, vip
	q.n++
}

// flush writes the queued packets; counting as txQueue.flush.
func (q *tunQueue) flush() {
	i := 0
	for i < q.n {
		n, err := q.dev.Write(q.bufs[i:q.n], ethHdrLen)
		for ; n > 0; n-- {
			b := uint64(len(q.bufs[i]) - vnetHdrLen - ethHdrLen)
			q.c.local.add(1)
			q.c.localBytes.add(b)
			q.vips[i].packets.Add(1)
			q.vips[i].bytes.Add(b)
			i++
		}
		if err == nil {
			break
		}
		if isStop(err) {
			q.c.drops[DropTUN].add(uint64(q.n - i))
			break
		}
		if i < q.n {
			q.c.drops[DropTUN].add(1)
			i++
		}
	}
	clear(q.bufs[:q.n])
	clear(q.vips[:q.n])
	q.n = 0
}

// ctlTx sends single frames built on the spot (ARP requests, gratuitous ARP)
// from one goroutine, at once and without allocating.
type ctlTx struct {
	buf []byte // virtio-net header and a minimum-size frame
	one [1][]byte
}

func newCtlTx() ctlTx { return ctlTx{buf: make([]byte, vnetHdrLen+minFrame)} }

// frame returns the buffer to build a frame in, after a zero virtio-net header.
func (c *ctlTx) frame() []byte {
	clear(c.buf[:vnetHdrLen])
	return c.buf[vnetHdrLen:]
}

// send writes the first n bytes of the frame built in frame() to dev.
func (c *ctlTx) send(dev LinkDevice, n int) error {
	c.one[0] = c.buf[:vnetHdrLen+n]
	_, err := dev.Write(c.one[:], 0)
	return err
}
