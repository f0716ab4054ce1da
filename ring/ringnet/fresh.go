package ringnet

import "time"

// Freshness (doc.go): every datagram echoes the receiver's boot salt as the
// sender last learnt it, and a receiver steps only datagrams that echo its
// current one. This file holds the driver's side of the handshake: the
// announces, the answers to datagrams that were not fresh, their log, and
// the packets sent again once a peer's boot is learnt.

// recentPackets is how many of the latest core packets to one peer the
// driver keeps to send again when it learns that peer's boot: a restarted
// node's first messages (a hello to each node) and a hop in flight.
const recentPackets = 8

// resendTicks bounds the age, in ticks, of a packet sent again when a
// peer's boot is learnt: by then the core has resent it (its first resend
// comes after AckTimeout, 2 ticks by default) or moved on.
const resendTicks = 8

// recentPacket is a core packet as queued: its path, when (the tick clock's
// next tick then), the echo the peer's boot had then, and its payload
// (which the driver owns after Ready and never changes).
type recentPacket struct {
	path int
	at   time.Time
	echo uint64
	data []byte
}

// recentRing is the last recentPackets core packets to one peer.
type recentRing struct {
	p    [recentPackets]recentPacket
	next int
}

// remember records core packet p, just queued with echo. The caller holds
// d.coreMu and has checked p.To (queue): d.recent grows with the node map,
// under the same lock. The tick clock is nil only before Run (a test that
// queues without running the driver).
func (d *Driver) remember(p Packet, echo uint64) {
	if d.clk == nil {
		return
	}
	r := &d.recent[p.To-1]
	r.p[r.next] = recentPacket{path: p.Path, at: d.clk.next, echo: echo, data: p.Data}
	r.next = (r.next + 1) % recentPackets
}

// learnt is called when an authentic datagram has taught node from's
// boot (a first one, a restart): the core packets queued to it lately
// echoed an unknown or earlier boot, so it dropped them as not fresh.
// They go again now, echoing its boot, one round trip after the first
// try rather than at the core's next resend (which waits for a timeout
// that may be shorter than the round trip on a loaded host).
func (d *Driver) learnt(from NodeID) {
	d.coreMu.Lock()
	if d.ended || d.clk == nil || from == 0 || int(from) > len(d.recent) {
		d.coreMu.Unlock()
		return
	}
	echo := d.opener.echo(from)
	// Now, not the tick clock: it lags while the driver sleeps through
	// ticks the core promised idle.
	oldest := d.cfg.Now().Add(-resendTicks * d.clk.tick)
	n := 0
	r := &d.recent[from-1]
	for i := range recentPackets {
		rp := &r.p[(r.next+i)%recentPackets] // oldest first
		if rp.data == nil || rp.echo == echo || rp.at.Before(oldest) {
			continue
		}
		rp.echo = echo
		d.counter++
		d.paths[rp.path].put(outPacket{to: from, counter: d.counter, echo: echo, data: rp.data})
		d.stats.resent.Add(1)
		n++
	}
	d.coreMu.Unlock()
	if n > 0 {
		// Every path: pushing one with nothing queued costs a lock and a
		// length check.
		d.push()
	}
}

// queueAnnounce numbers an announce to node to and queues it on path; the
// caller holds d.coreMu (which orders the counters) and pushes the path.
func (d *Driver) queueAnnounce(to NodeID, path int) {
	d.counter++
	d.paths[path].put(outPacket{to: to, counter: d.counter, echo: d.opener.echo(to), announce: true})
	d.stats.announcesSent.Add(1)
}

// answer sends an announce to node to on path: to sent a datagram that did
// not echo this boot, and learns it from this one.
func (d *Driver) answer(to NodeID, path int) {
	d.coreMu.Lock()
	if d.ended {
		d.coreMu.Unlock()
		return
	}
	d.queueAnnounce(to, path)
	d.coreMu.Unlock()
	d.paths[path].push()
}

// notFreshLogEvery is the least time between two info lines about
// datagrams dropped as not fresh (each line counts those since the last).
const notFreshLogEvery = 10 * time.Second

// notFresh logs a datagram dropped as DropNotFresh, at info at most once
// per notFreshLogEvery. A few are normal around a restart of this node
// (datagrams its peers sent to the previous boot, delivered after the
// restart) or of a peer (its first datagrams, sent before it heard of this
// boot); a steady stream is someone replaying recorded datagrams.
func (d *Driver) notFresh(h Header, path int) {
	echo := "an earlier boot of this node"
	if h.Echo == 0 {
		echo = "none (the peer had not heard of this boot)"
	}
	if d.debugOn() {
		d.cfg.Logger.Debug("ring: drop datagram", "path", path, "from", d.cfg.name(h.From), "reason", DropNotFresh, "echo", echo)
	}
	now := int64(d.cfg.Now().Sub(d.logBase))
	next := d.nextLog.Load()
	if (next != 0 && now < next) || !d.nextLog.CompareAndSwap(next, now+int64(notFreshLogEvery)) {
		return // no line due, or another datagram's goroutine writes it
	}
	total := d.stats.drops[DropNotFresh].Load()
	since := total - d.loggedDrops.Swap(total)
	d.cfg.Logger.Info("ring: dropped datagrams that were not sent to this boot of the node (sent before a restart and delivered after it, or replayed); the sender is told this boot",
		"reason", DropNotFresh, "peer", d.cfg.name(h.From), "path", path, "echo", echo, "dropped", since, "total", total)
}
