package tunnelnet

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ringway/ringway/forward"
)

// Booter is what the driver tells the filter of its peers' boots
// (forward.Filter.PeerBoot): a peer's new boot means it restarted and
// lost its state.
type Booter interface {
	PeerBoot(peer uint16, boot uint64, now int64)
}

// noteBoot tells the core, if it is a Booter, the boot of h's sender when
// it is not the one last told (a lock-free check per datagram).
func (d *Driver) noteBoot(h forward.TunnelHeader) {
	b, ok := d.cfg.Core.(Booter)
	if !ok {
		return
	}
	last := d.pt.Load().boots[h.Sender]
	if last == nil || last.Load() == h.Boot {
		return
	}
	last.Store(h.Boot)
	b.PeerBoot(h.Sender, h.Boot, d.cfg.Now())
}

// Syncer is what the driver needs of the filter for state replication
// (forward/replicate.go): forward.Filter. A Core that is also a Syncer
// gets its sync batches and acks sent and delivered.
type Syncer interface {
	// SyncMessages appends the sync datagrams due at now and returns when
	// the next resend is due (0: none).
	SyncMessages(now int64, dst []forward.SyncDatagram) ([]forward.SyncDatagram, int64)
	// SyncReady receives a value when there is something new to send.
	SyncReady() <-chan struct{}
	// StepSync takes a received sync batch or ack.
	StepSync(h forward.TunnelHeader, payload []byte, now int64)
}

// AckTaker is a Syncer that lets the driver acknowledge a sync batch on
// the goroutine that received it (forward.Filter.TakeSyncAck), without
// waking the sync goroutine: the sender's replication lag is one round
// trip, not one round trip and a wake-up.
type AckTaker interface {
	TakeSyncAck(peer uint16, b []byte) []byte
}

// SyncStats are the driver's replication datagrams, [0] sent, [1]
// received, and their bytes on the wire (tunnel header and tag included,
// not the outer IPv4 and UDP headers).
type SyncStats struct {
	Batches, Acks, Bytes [2]uint64
}

type syncCounters struct {
	batches, acks, bytes [2]atomic.Uint64
}

// SyncStats returns the replication datagrams' counters.
func (d *Driver) SyncStats() SyncStats {
	var s SyncStats
	for i := range 2 {
		s.Batches[i], s.Acks[i], s.Bytes[i] = d.sync.batches[i].Load(), d.sync.acks[i].Load(), d.sync.bytes[i].Load()
	}
	return s
}

// runSync sends the filter's sync batches and acks when it has new ones
// and when a resend is due, until ctx ends or Close.
func (d *Driver) runSync(ctx context.Context) {
	sy, ok := d.cfg.Core.(Syncer)
	if !ok {
		return
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var msgs []forward.SyncDatagram
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.done:
			return
		case <-sy.SyncReady():
		case <-t.C:
		}
		now := d.cfg.Now()
		var next int64
		msgs, next = sy.SyncMessages(now, msgs[:0])
		for _, m := range msgs {
			d.sendSync(m.Type, m.To, m.Payload)
		}
		clear(msgs) // the payloads belong to the filter
		wait := time.Hour
		if next != 0 {
			wait = time.Duration(max(next-now, int64(100*time.Microsecond)))
		}
		t.Reset(wait)
	}
}

// stepSync hands a received sync datagram to the filter.
func (d *Driver) stepSync(h forward.TunnelHeader, payload []byte) {
	sy, ok := d.cfg.Core.(Syncer)
	if !ok {
		return
	}
	i := &d.sync.acks[1]
	if h.Type == forward.TypeSync {
		i = &d.sync.batches[1]
	}
	i.Add(1)
	d.sync.bytes[1].Add(uint64(forward.DataOverhead + len(payload)))
	sy.StepSync(h, payload, d.cfg.Now())
	if at, ok := sy.(AckTaker); ok && h.Type == forward.TypeSync {
		var buf [4 + 8*forward.MaxSyncAcks]byte
		if b := at.TakeSyncAck(h.Sender, buf[:0]); len(b) > 0 {
			d.sendSync(forward.TypeSyncAck, h.Sender, b)
		}
	}
}

// sendSync sends a sync batch or ack (t) to node to and counts it.
func (d *Driver) sendSync(t forward.TunnelType, to uint16, payload []byte) {
	if !d.send(forward.TunnelHeader{Type: t, Receiver: to}, payload) {
		return
	}
	i := &d.sync.acks[0]
	if t == forward.TypeSync {
		i = &d.sync.batches[0]
	}
	i.Add(1)
	d.sync.bytes[0].Add(uint64(forward.DataOverhead + len(payload)))
}
