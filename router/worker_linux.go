package router

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// worker is one receive goroutine: a NIC's receive loop (in >= 0) or the
// TUN reader (in == -1). It owns its counter shard, its per-output-link send
// queues and its scratch buffers, so the hot path shares nothing writable.
type worker struct {
	r       *Router
	in      int
	q       int // receive socket of link in
	sh      *shard
	tx      []*txQueue
	scratch [][]byte // ICMP error frames built during one batch
	nextScr int
	// ICMP error token bucket (RFC 1812 4.3.2.8 rate limiting).
	icmpTokens float64
	icmpLast   int64
}

func (r *Router) newWorker(in, q int, sh *shard) *worker {
	w := &worker{r: r, in: in, q: q, sh: sh, icmpTokens: float64(r.cfg.ICMPBurst)}
	for i, l := range r.links {
		w.tx = append(w.tx, newTxQueue(l, r.cfg.Batch, &sh.links[i]))
	}
	if in >= 0 {
		w.scratch = make([][]byte, r.cfg.Batch)
		for i := range w.scratch {
			w.scratch[i] = make([]byte, vnetHdrLen+icmpErrorFrameMax)
		}
	}
	return w
}

// run is a NIC's receive loop: recvmmsg a batch, decide and act on each
// frame, flush the send queues.
func (w *worker) run() error {
	r := w.r
	l := r.links[w.in]
	b := newRxBatch(r.cfg.Batch)
	c := &w.sh.links[w.in]
	for {
		n, err := l.recv(w.q, b)
		if err != nil {
			if isStop(err) {
				return nil
			}
			if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENOBUFS) {
				continue // link flapped; the monitor reports it
			}
			return err
		}
		now := r.now()
		owned := r.owned.Load()
		c.rxBatches.add(1)
		for i := 0; i < n; i++ {
			buf, trunc := b.frame(i)
			if trunc {
				c.rxFrames.add(1)
				c.drops[DropTruncated].add(1)
				continue
			}
			w.handle(buf, now, owned)
		}
		w.flush()
	}
}

func (w *worker) flush() {
	for _, q := range w.tx {
		if q.n > 0 {
			q.flush()
		}
	}
	w.nextScr = 0
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
			c.forwarded.add(1)
			c.fwdBytes.add(uint64(n))
			if m := r.attrib[w.in].Load(); m != nil {
				if vc := (*m)[ethSrc(f)]; vc != nil {
					vc.packets.Add(1)
					vc.bytes.Add(uint64(n))
				}
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
		if d.reason != DropNone {
			c.drops[d.reason].add(1)
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
		r.setAttribution(w.in, a.SenderMAC, d.vip.c)
	}
}

// send resolves nextHop on link out and queues frame (virtio-net header
// first) for sending: forwarded frames get the RFC 1624 TTL rewrite, frames
// from the TUN device a fresh Ethernet header. An unresolved next hop gets a
// copy of the frame queued (the only allocation, off the steady state) and an
// ARP request.
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
		r.arpRequest(out, nextHop, w.sh)
	}
	if ok {
		w.tx[out].add(frame)
		return
	}
	request, queued := r.neigh[out].enqueue(nextHop, append([]byte(nil), frame...), now)
	if !queued {
		w.sh.links[out].drops[DropNeighQueueFull].add(1)
	}
	if request {
		r.arpRequest(out, nextHop, w.sh)
	}
}

// sendQueued sends the frames that waited for mac on link li.
func (w *worker) sendQueued(li int, q [][]byte, mac MAC) {
	l := w.r.links[li]
	c := &w.sh.links[li]
	for _, b := range q {
		copy(b[vnetHdrLen:vnetHdrLen+6], mac[:])
		if err := l.writeOne(b); err != nil {
			c.drops[DropTx].add(1)
			continue
		}
		c.txFrames.add(1)
		c.txBytes.add(uint64(len(b) - vnetHdrLen))
	}
}

// local hands frame (virtio-net header, Ethernet, IPv4) to the OS through the
// TUN device: the header moves next to the IPv4 packet and its offsets lose
// the Ethernet header.
func (w *worker) local(frame []byte, d ipDecision) {
	c := &w.sh.links[w.in]
	h := frame[ethHdrLen : ethHdrLen+vnetHdrLen]
	copy(h, frame[:vnetHdrLen])
	vnetForTx(h)
	vnetShift(h, -ethHdrLen)
	if _, err := w.r.tun.file.Write(frame[ethHdrLen:]); err != nil {
		c.drops[DropTUN].add(1)
		return
	}
	n := uint64(len(frame) - vnetHdrLen - ethHdrLen)
	c.local.add(1)
	c.localBytes.add(n)
	d.vip.c.packets.Add(1)
	d.vip.c.bytes.Add(n)
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
// routes it out of the capture NICs. The device's virtio-net header is read
// in place just before where the Ethernet header goes, then moved to the
// front, so the packet is never copied.
func (w *worker) runTUN() error {
	r := w.r
	buf := make([]byte, slotSize)
	tc := &w.sh.tun
	for {
		n, err := r.tun.file.Read(buf[ethHdrLen:])
		if err != nil {
			if isStop(err) {
				return nil
			}
			return err
		}
		now := r.now()
		if n < vnetHdrLen+ipv4MinHdr {
			tc.drops[DropTruncated].add(1)
			continue
		}
		copy(buf[:vnetHdrLen], buf[ethHdrLen:ethHdrLen+vnetHdrLen])
		vh := buf[:vnetHdrLen]
		vnetShift(vh, ethHdrLen)
		ip := buf[vnetHdrLen+ethHdrLen : ethHdrLen+n]
		d := r.plane.decideLocalOut(ip, vnetIsGSO(vh))
		if d.action != ipForward {
			tc.drops[d.reason].add(1)
			continue
		}
		tc.read.add(1)
		tc.readBytes.add(uint64(d.hdr.totalLen))
		w.send(d.out, d.nextHop, buf[:vnetHdrLen+ethHdrLen+d.hdr.totalLen], now, false)
		w.flush()
	}
}
