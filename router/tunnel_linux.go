package router

import (
	"context"
	"encoding/binary"
	"time"
)

// The router's side of the inter-node tunnel (redirect.go): the receive
// workers hand redirected packets to Config.Tunnel, and one more worker
// routes what the tunnel brings.

// tunnelOffset is where the tunnel worker has packets read: after room for
// the virtio-net and Ethernet headers, so a packet goes out with no copy.
const tunnelOffset = vnetHdrLen + ethHdrLen

// filterForward asks the filter about the packet in frame (virtio-net
// header, Ethernet header, IPv4 packet), received on w.in and routed out
// of d.out: true to forward it. A packet the filter redirects is handed to
// the tunnel here, and a refused one counted.
func (w *worker) filterForward(frame []byte, d ipDecision, now int64) bool {
	r := w.r
	ip := frame[vnetHdrLen+ethHdrLen:]
	if r.redir == nil {
		if r.filter.Pass(ip, w.in, d.out, now) {
			return true
		}
		w.sh.links[w.in].drops[DropFiltered].add(1)
		return false
	}
	pass, to, hold := r.redir.Decide(ip, w.in, d.out, 0, 0, now)
	if pass && d.hdr.proto == protoTCP {
		w.clampMSS(ip, frame[vnetOffFlags]&vnetFlagNeedsCsum != 0)
	}
	switch {
	case pass && hold != 0:
		// The first packet of a new flow whose authoritative node is
		// another node: held until that node acknowledges the register
		// (stored before the register leaves, so the ack finds it).
		c := &w.sh.tunnel
		if r.held.put(hold, frame, d, w.in) {
			c.held.add(1)
			r.tunnel.Flush()
			return false
		}
		c.holdRefused.add(1)
		r.tunnel.Flush()
		return true
	case pass:
		r.tunnel.Flush()
		return true
	case to == 0:
		w.sh.links[w.in].drops[DropFiltered].add(1)
	default:
		w.tunnelFrame(frame, d, to, now)
	}
	return false
}

// clampMSS lowers the MSS of a TCP SYN the filter passed to what fits the
// tunnel (mss.go); partial: its checksum is left to the device.
func (w *worker) clampMSS(ip []byte, partial bool) {
	if mtu := w.r.tunnelMTU(); mtu > 0 && clampMSS(ip, uint16(mtu-40), partial) {
		w.sh.tunnel.mssClamped.add(1)
	}
}

// tooBigForTunnel reports whether the packet of frame (virtio-net header
// first), of which size bytes would be tunnelled at once, cannot cross the
// tunnel unfragmented and must not be fragmented (DF); it then answers the
// sender with ICMP fragmentation needed and the tunnel's MTU (RFC 1191),
// rate permitting.
func (w *worker) tooBigForTunnel(frame []byte, d ipDecision, size int, now int64) bool {
	mtu := w.r.tunnelMTU()
	if mtu == 0 || size <= mtu || !d.hdr.df {
		return false
	}
	c := &w.sh.tunnel
	c.fragNeeded.add(1)
	f := frame[vnetHdrLen:]
	if e := icmpError(f[ethHdrLen:], d.hdr, 3, 4, mtu, DropTooBig); e.action == ipICMPError {
		w.icmpError(f, e, now)
	}
	return true
}

// tunnelFrame sends the packet of a received frame to node to (hops 1):
// its L4 checksum completed if the device left it partial, a TCP GSO
// super-frame cut into segments first (the tunnel carries packets of at
// most one MTU).
func (w *worker) tunnelFrame(frame []byte, d ipDecision, to uint16, now int64) {
	c := &w.sh.tunnel
	vh, f := frame[:vnetHdrLen], frame[vnetHdrLen:]
	proto := d.hdr.proto
	if vnetIsGSO(vh) {
		mss := int(binary.LittleEndian.Uint16(vh[vnetOffGSOSize:]))
		if ip := f[ethHdrLen:]; len(ip) > ipv4MinHdr+13 && proto == protoTCP {
			ihl := int(ip[0]&0x0f) * 4
			if len(ip) > ihl+12 && w.tooBigForTunnel(frame, d, ihl+int(ip[ihl+12]>>4)*4+mss, now) {
				return
			}
		}
		if vh[vnetOffGSOType]&^vnetGSOECN != vnetGSOTCPv4 {
			c.drops[DropTooBig].add(1) // UDP GSO: not cut yet (docs/forward.md)
			return
		}
		// Whole, as one datagram, when the device left the checksum
		// partial (it then is the pseudo-header's sum the receiver's
		// device completes per segment).
		if ip := f[ethHdrLen:]; vh[vnetOffFlags]&vnetFlagNeedsCsum != 0 && d.hdr.totalLen <= len(ip) {
			seg := Segments{GSOType: vh[vnetOffGSOType], Size: uint16(mss)}
			err := w.r.tunnel.Send(to, 1, seg, ip[:d.hdr.totalLen])
			if err == nil {
				c.whole.add(1)
				c.sent.add(1)
				c.sentBytes.add(uint64(d.hdr.totalLen))
				return
			}
			if err != ErrSegmentsTooBig {
				c.sendErrors.add(1)
				return
			}
		}
		bp := w.r.segPool.Get().(*[]byte)
		ok := segmentTCP(f[ethHdrLen:], mss, *bp, func(seg []byte) { w.tunnelSend(seg, to, 1) })
		w.r.segPool.Put(bp)
		if !ok {
			c.drops[DropBadIPHeader].add(1)
			return
		}
		c.segmented.add(1)
		return
	}
	if w.tooBigForTunnel(frame, d, d.hdr.totalLen, now) {
		return
	}
	if !vnetCompleteCsum(vh, f, proto) {
		c.drops[DropBadIPHeader].add(1)
		return
	}
	w.tunnelSend(f[ethHdrLen:], to, 1)
}

func (w *worker) tunnelSend(ip []byte, to uint16, hops uint8) {
	w.tunnelSendSegs(ip, to, hops, Segments{})
}

func (w *worker) tunnelSendSegs(ip []byte, to uint16, hops uint8, seg Segments) {
	c := &w.sh.tunnel
	if seg.Size == 0 {
		w.tq.add(w, ip, to, hops)
		return
	}
	if err := w.r.tunnel.Send(to, hops, seg, ip); err != nil {
		c.sendErrors.add(1)
		return
	}
	c.sent.add(1)
	c.sentBytes.add(uint64(len(ip)))
}

// runTunnel routes what the tunnel brings on path until it is closed.
func (w *worker) runTunnel(path int) error {
	froms := make([]uint16, len(w.bufs))
	hops := make([]uint8, len(w.bufs))
	segs := make([]Segments, len(w.bufs))
	for {
		n, err := w.r.tunnel.Read(path, w.bufs, w.sizes, froms, hops, segs, tunnelOffset)
		if err != nil {
			if isStop(err) {
				return nil
			}
			return err
		}
		if n > 0 {
			w.tunnelBatch(n, froms, hops, segs)
		}
	}
}

// tunnelBatch routes the first n packets read from the tunnel by this
// node's routing table and decides them again with the filter (in: the
// link their source is routed by), as if they had arrived here: forwarded
// (TTL decremented once, by the handler), sent on to the flow's handler,
// or dropped.
func (w *worker) tunnelBatch(n int, froms []uint16, hops []uint8, segs []Segments) {
	r := w.r
	c := &w.sh.tunnel
	now := r.now()
	for i := range n {
		size, seg := w.sizes[i], segs[i]
		c.received.add(1)
		c.rcvd.add(uint64(size))
		frame := w.bufs[i][:tunnelOffset+size]
		clear(frame[:vnetHdrLen]) // the sender completed the checksums, or seg says otherwise
		ip := frame[tunnelOffset:]
		d := r.plane.decideLocalOut(ip, seg.Size != 0)
		if d.action != ipForward {
			c.drops[d.reason].add(1)
			continue
		}
		if seg.Size != 0 && !vnetSetTCPGSO(frame[:vnetHdrLen], ip[:d.hdr.totalLen], seg, r.plane.links[d.out].mtu.get()) {
			c.drops[DropBadIPHeader].add(1)
			continue
		}
		if d.hdr.ttl <= 1 {
			c.drops[DropTTLExceeded].add(1)
			continue
		}
		in, _, ok := r.plane.routes.lookup(d.hdr.src)
		if !ok || r.redir == nil {
			c.drops[DropFiltered].add(1)
			continue
		}
		ip = ip[:d.hdr.totalLen]
		pass, to, _ := r.redir.Decide(ip, in, d.out, froms[i], hops[i], now) // a tunnelled packet starts no flow: never held
		if !pass {
			if to != 0 && hops[i] == 1 {
				w.tunnelSendSegs(ip, to, 2, seg)
				c.redirected.add(1)
			} else {
				c.drops[DropFiltered].add(1)
			}
			continue
		}
		if d.hdr.proto == protoTCP {
			w.clampMSS(ip, seg.Size != 0)
		}
		decTTL(ip)
		c.forwarded.add(1)
		frame = frame[:tunnelOffset+d.hdr.totalLen]
		if seg.Size == 0 && !d.frag && w.coalesce(frame, d, now) {
			continue
		}
		w.endRun(now) // what follows of the run's flow leaves after it
		if d.frag {
			w.fragment(frame, d, now, false)
			continue
		}
		w.send(d.out, d.nextHop, frame, now, false)
	}
	w.endRun(now)
	w.flush()
}

// coalesce adds the forwarded packet in frame to the worker's run of TCP
// segments (coalesce_linux.go): it continues the run, or ends it and starts the
// next. It reports false when the packet cannot be part of a run (the
// caller then ends the run and sends the packet alone).
func (w *worker) coalesce(frame []byte, d ipDecision, now int64) bool {
	ip := frame[tunnelOffset:]
	ihl, hl, payload, ok := tcpMerge(ip)
	if !ok {
		return false
	}
	if w.tcp.open() {
		added, ended := w.tcp.add(ip, d.out, d.nextHop, hl, payload)
		if added {
			if ended {
				w.endRun(now)
			}
			return true
		}
		w.endRun(now)
	}
	return w.tcp.start(frame, d.out, d.nextHop, ihl, hl, payload)
}

// endRun sends the worker's run of TCP segments, if one is open.
func (w *worker) endRun(now int64) {
	if !w.tcp.open() {
		return
	}
	out, nextHop, n := w.tcp.out, w.tcp.nextHop, w.tcp.n
	frame, ok := w.tcp.finish(w.r.plane.links[out].mtu.get())
	c := &w.sh.tunnel
	if !ok {
		c.drops[DropBadIPHeader].add(uint64(n))
		return
	}
	if n > 1 {
		c.coalesced.add(uint64(n))
		c.superFrames.add(1)
	}
	w.send(out, nextHop, frame, now, false)
}

// runDefer forwards the packets held for the filter (filterForward) when
// it releases them: at its ack signal, when the first deadline it named
// comes, or when a new packet is held (to learn its deadline). Released
// packets take the normal send path from this worker's queues.
func (w *worker) runDefer(ctx context.Context) {
	r := w.r
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var holds []uint64
	var sent []*heldPacket
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.redir.DeferReady():
		case <-r.held.kick:
		case <-t.C:
		}
		now := r.now()
		var next int64
		holds, next = r.redir.Released(now, holds[:0])
		for _, h := range holds {
			if p := r.held.take(h); p != nil {
				w.release(p, now)
				sent = append(sent, p)
			}
		}
		w.flush()
		for _, p := range sent {
			r.held.free(p)
		}
		clear(sent)
		sent = sent[:0]
		if next != 0 {
			t.Reset(time.Duration(max(next-now, 0)))
		}
	}
}

// release forwards a held packet as handle would have.
func (w *worker) release(p *heldPacket, now int64) {
	r := w.r
	c := &w.sh.links[p.in]
	n := len(p.frame) - vnetHdrLen
	c.forwarded.add(1)
	c.fwdBytes.add(uint64(n))
	w.sh.tunnel.released.add(1)
	if vc := lookupAttrib(r.attrib[p.in], ethSrc(p.frame[vnetHdrLen:])); vc != nil {
		vc.packets.Add(1)
		vc.bytes.Add(uint64(n))
	}
	if p.d.frag {
		w.fragment(p.frame, p.d, now, true)
		return
	}
	vnetForTx(p.frame[:vnetHdrLen])
	w.send(p.d.out, p.d.nextHop, p.frame, now, true)
}

// vnetSetTCPGSO writes into the virtio-net header h what the device needs
// to send the IPv4 TCP super-packet ip (after an Ethernet header) as the
// segments seg describes: GSO type and size, header length, and the
// partial checksum's start and offset. It returns false, for a packet to
// drop, when ip is not TCP, its headers are not whole, or a segment would
// not fit mtu.
func vnetSetTCPGSO(h, ip []byte, seg Segments, mtu int) bool {
	if len(ip) < ipv4MinHdr || ip[9] != protoTCP || seg.GSOType&^vnetGSOECN != vnetGSOTCPv4 || seg.Size == 0 {
		return false
	}
	ihl := int(ip[0]&0x0f) * 4
	if len(ip) < ihl+20 {
		return false
	}
	hl := ihl + int(ip[ihl+12]>>4)*4
	if hl < ihl+20 || hl >= len(ip) || hl+int(seg.Size) > mtu {
		return false
	}
	h[vnetOffFlags] = vnetFlagNeedsCsum
	h[vnetOffGSOType] = seg.GSOType
	binary.LittleEndian.PutUint16(h[vnetOffHdrLen:], uint16(ethHdrLen+hl))
	binary.LittleEndian.PutUint16(h[vnetOffGSOSize:], seg.Size)
	binary.LittleEndian.PutUint16(h[vnetOffCsumStart:], uint16(ethHdrLen+ihl))
	binary.LittleEndian.PutUint16(h[vnetOffCsumOffset:], 16)
	return true
}

// tunnelQueue batches one worker's plain packets for the tunnel: copied
// into an arena (the frames they come from are reused before the batch
// ends), sent with one TunnelDevice.SendBatch at the worker's flush.
type tunnelQueue struct {
	pkts  []TunnelPacket
	arena []byte
}

// tunnelQueueMax bounds the packets and bytes queued between flushes.
const (
	tunnelQueueMax   = 64
	tunnelArenaBytes = 256 << 10
)

func (q *tunnelQueue) add(w *worker, ip []byte, to uint16, hops uint8) {
	if q.arena == nil {
		q.arena = make([]byte, 0, tunnelArenaBytes)
		q.pkts = make([]TunnelPacket, 0, tunnelQueueMax)
	}
	if len(q.pkts) == tunnelQueueMax || len(q.arena)+len(ip) > cap(q.arena) {
		q.flush(w)
	}
	if len(ip) > cap(q.arena) {
		return // cannot happen: a packet is at most 64 KiB
	}
	n := len(q.arena)
	q.arena = append(q.arena, ip...)
	q.pkts = append(q.pkts, TunnelPacket{To: to, Hops: hops, IP: q.arena[n:len(q.arena):len(q.arena)]})
}

func (q *tunnelQueue) flush(w *worker) {
	if len(q.pkts) == 0 {
		return
	}
	c := &w.sh.tunnel
	failed := w.r.tunnel.SendBatch(q.pkts)
	var bytes uint64
	for _, p := range q.pkts {
		bytes += uint64(len(p.IP))
	}
	c.sent.add(uint64(len(q.pkts) - failed))
	c.sentBytes.add(bytes) // of those handed over (failures are rare: counted by number only)
	c.sendErrors.add(uint64(failed))
	clear(q.pkts)
	q.pkts, q.arena = q.pkts[:0], q.arena[:0]
}
