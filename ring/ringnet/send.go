package ringnet

import (
	"context"
	"sync"
)

// SendQueue bounds the datagrams waiting on one path, in datagrams. They
// wait only while another goroutine is writing that path or its socket
// takes nothing (a full send buffer: a dead link, a stuck NIC queue);
// beyond the bound they are dropped and counted (Stats.TxDropped), and the
// core's reliable layer resends over every path. 1024 (WindowSize) holds
// one datagram to every node of the largest node map (ring.MaxNodes), the
// most one core output puts on a path (a hello to every node); more would
// be useless: the oldest datagram of a queue of n is n-1 or more counters
// older than the newest numbered, and receivers drop datagrams more than
// WindowSize counters behind the newest they have as replays.
const SendQueue = WindowSize

// sendPath is one path's outgoing side. The core's packets for the path
// are queued under the core lock, each numbered there with the boot's next
// counter, so nothing but memory is touched under that lock. Whichever
// goroutine holds the path's send turn then seals and writes the queue in
// order, outside the core lock: the goroutine that queued them, as long as
// the socket takes them at once (TryWriter), else the path's sender
// goroutine, which may wait in WriteTo without holding up anything but
// this path.
type sendPath struct {
	d      *Driver
	index  int
	conn   Conn
	try    TryWriter     // nil: the sender goroutine writes everything
	sealer *sealer       // this path's own: used by the turn holder only
	buf    []byte        // the turn holder's seal buffer, capacity MaxDatagram
	sealed []byte        // the queue's head, sealed, when a TryWriteTo did not take it
	wake   chan struct{} // capacity 1: the turn is handed to the sender goroutine

	mu   sync.Mutex // q, turn
	q    outQueue
	turn bool // a goroutine writes q; it gives the turn up only with q empty
}

// outPacket is a core packet waiting to be sealed and sent.
type outPacket struct {
	to       NodeID
	counter  uint64
	echo     uint64 // Header.Echo: the peer's boot salt when queued (opener.echo)
	data     []byte // the core's; the driver owns it after Ready
	announce bool   // a KindAnnounce (data is nil)
}

// put queues o, or drops it when the path has SendQueue datagrams waiting.
// Only the core lock's holder calls it.
func (sp *sendPath) put(o outPacket) {
	sp.mu.Lock()
	ok := sp.q.len() < SendQueue
	if ok {
		sp.q.push(o)
	}
	sp.mu.Unlock()
	if !ok {
		sp.d.stats.txDropped.Add(1)
	}
}

// push writes what is queued, unless another goroutine holds the turn (it
// writes what was queued meanwhile before it gives the turn up). It writes
// on the calling goroutine while the socket takes datagrams at once, and
// hands the turn to the sender goroutine when it does not.
func (sp *sendPath) push() {
	sp.mu.Lock()
	if sp.turn || sp.q.len() == 0 {
		sp.mu.Unlock()
		return
	}
	sp.turn = true
	sp.mu.Unlock()
	if sp.try == nil || !sp.drain(false) {
		sp.wake <- struct{}{} // never blocks: only the turn holder sends, and the sender has taken the last one
	}
}

// sender is the path's sender goroutine: it writes the queue, waiting on
// the socket as long as it must, whenever push hands it the turn.
func (sp *sendPath) sender(ctx context.Context) {
	for {
		select {
		case <-sp.wake:
			sp.drain(true)
		case <-ctx.Done():
			return
		}
	}
}

// drain seals and writes the queue, in order, until it is empty, then
// gives the turn up and reports true. With wait false it uses TryWriteTo
// and, at the first datagram the socket does not take at once, stops and
// reports false, keeping the turn (and that datagram, sealed) for the
// sender goroutine. The caller holds the turn.
func (sp *sendPath) drain(wait bool) bool {
	for {
		sp.mu.Lock()
		o, ok := sp.q.peek()
		if !ok {
			sp.turn = false
			sp.mu.Unlock()
			return true
		}
		sp.mu.Unlock()
		b := sp.sealed
		if b == nil {
			var err error
			h := Header{To: o.to, Path: uint8(sp.index), Kind: KindCore, Counter: o.counter, Echo: o.echo}
			if o.announce {
				h.Kind = KindAnnounce
			}
			b, err = sp.sealer.sealAs(sp.buf, h, o.data)
			if err != nil {
				sp.failed(o, "ring: seal", err)
				continue
			}
			sp.buf = b
		}
		to := (*sp.d.nodes.Load())[o.to-1][sp.index]
		var err error
		if wait {
			_, err = sp.conn.WriteTo(b, to)
		} else {
			var sent bool
			sent, err = sp.try.TryWriteTo(b, to)
			if !sent && err == nil {
				sp.sealed = b
				return false
			}
		}
		sp.sealed = nil
		if err != nil {
			sp.failed(o, "ring: send", err)
			continue
		}
		sp.pop()
		sp.d.stats.txDatagrams.Add(1)
		sp.d.stats.txBytes.Add(uint64(len(b)))
	}
}

// failed counts a datagram that could not be sealed or written and drops it.
func (sp *sendPath) failed(o outPacket, msg string, err error) {
	sp.sealed = nil
	sp.pop()
	sp.d.stats.txErrors.Add(1)
	if sp.d.debugOn() {
		sp.d.cfg.Logger.Debug(msg, "to", o.to, "path", sp.index, "err", err)
	}
}

func (sp *sendPath) pop() {
	sp.mu.Lock()
	sp.q.pop()
	sp.mu.Unlock()
}

// outQueue is a FIFO ring of packets. It grows by doubling to what the
// path has needed at most (SendQueue at worst) and keeps that, so a
// datagram costs no allocation once the queue has reached its size.
type outQueue struct {
	buf        []outPacket // len is a power of two, or 0
	head, size int
}

func (q *outQueue) len() int { return q.size }

func (q *outQueue) push(o outPacket) {
	if q.size == len(q.buf) {
		n := max(2*len(q.buf), 8)
		buf := make([]outPacket, n)
		for i := range q.size {
			buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = o
	q.size++
}

func (q *outQueue) peek() (outPacket, bool) {
	if q.size == 0 {
		return outPacket{}, false
	}
	return q.buf[q.head], true
}

func (q *outQueue) pop() {
	q.buf[q.head] = outPacket{} // let the payload go
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.size--
}
