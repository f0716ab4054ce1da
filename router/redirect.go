package router

import (
	"encoding/binary"
	"errors"
	"sync"
)

// Symmetric routing (DESIGN.md "Symmetric routing and stateful fail-over"):
// a forwarded packet whose flow another node handles is handed, before any
// rewrite, to the inter-node tunnel; packets the tunnel brings are routed
// by this node's own table and decided again by its filter, as if they had
// arrived here.

// Redirector is a Filter that can also send a forwarded packet to another
// node (package forward implements it). With Config.Tunnel set, the
// router asks Decide instead of Pass for every packet it would forward.
type Redirector interface {
	Filter
	// Decide decides ip, which arrived on link in (from == 0) or through
	// the tunnel from node from after hops hops (in is then the link its
	// source is routed by), and would leave by link out: pass to forward
	// it; else to != 0 to send it through the tunnel to node to, with
	// hops + 1; else drop it. Same contract as Pass. With pass, hold != 0
	// asks the router to hold the packet (the first of a new flow, whose
	// register is on its way to the flow's authoritative node) and forward
	// it once Released returns hold; the router may forward it at once
	// instead (it cannot hold it).
	Decide(ip []byte, in, out int, from uint16, hops uint8, now int64) (pass bool, to uint16, hold uint64)
	// Released appends to dst the holds whose packets must be forwarded
	// at now, and returns when the next one is due (0: none is held).
	Released(now int64, dst []uint64) (out []uint64, next int64)
	// DeferReady receives a value when a hold is released before its time
	// (the authoritative node's ack came).
	DeferReady() <-chan struct{}
}

// heldMax bounds the packets the router holds for Decide: twice what the
// filter holds at most (forward.MaxDeferred, 256), since a released
// packet keeps its slot until its batch is written while the filter may
// already hold new ones. At the bound a packet is forwarded at once
// (TunnelStats.HoldRefused). Slot buffers are allocated on first use.
const heldMax = 512

// earlyMax is how many released holds the router remembers that had no
// packet stored yet: an ack can come back before the worker that asked for
// the hold has stored the packet (the register leaves from another
// goroutine as soon as it is queued), and that packet must then not wait.
const earlyMax = 64

// heldPacket is one packet the router holds: a copy of its frame and the
// routing decision to finish forwarding it with.
type heldPacket struct {
	hold  uint64
	frame []byte // virtio-net header, Ethernet header, IPv4 packet
	d     ipDecision
	in    int   // link it arrived on
	state uint8 // heldFree, heldWaiting, heldSending
}

const (
	heldFree = iota
	heldWaiting
	heldSending
)

// holdStore is the packets held for Decide (pfsync's defer): receive
// workers put, the defer worker takes what Released names and frees each
// slot once its frame has left. Slot buffers are kept, so in the steady
// state holding allocates nothing.
type holdStore struct {
	mu     sync.Mutex
	slots  [heldMax]heldPacket
	early  [earlyMax]uint64
	nEarly int           // entries of early written (a ring once full)
	kick   chan struct{} // capacity 1: a packet was put (the defer worker arms its timer)
}

func newHoldStore() *holdStore { return &holdStore{kick: make(chan struct{}, 1)} }

// put holds a copy of frame under hold; false (forward it now) when no
// slot is free or hold was released already.
func (s *holdStore) put(hold uint64, frame []byte, d ipDecision, in int) bool {
	s.mu.Lock()
	for i := range min(s.nEarly, earlyMax) {
		if s.early[i] == hold {
			s.early[i] = 0
			s.mu.Unlock()
			return false
		}
	}
	var p *heldPacket
	for i := range s.slots {
		if s.slots[i].state == heldFree {
			p = &s.slots[i]
			break
		}
	}
	if p == nil {
		s.mu.Unlock()
		return false
	}
	p.hold, p.frame, p.d, p.in, p.state = hold, append(p.frame[:0], frame...), d, in, heldWaiting
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true
}

// take returns the packet held under hold, to be sent then freed, or nil
// when none is (remembered: its put comes later and must not wait).
func (s *holdStore) take(hold uint64) *heldPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		if p := &s.slots[i]; p.state == heldWaiting && p.hold == hold {
			p.state = heldSending
			return p
		}
	}
	s.early[s.nEarly%earlyMax] = hold
	s.nEarly++
	return nil
}

// free makes p's slot free again; its frame has left.
func (s *holdStore) free(p *heldPacket) {
	s.mu.Lock()
	p.state = heldFree
	s.mu.Unlock()
}

// held returns the packets held now.
func (s *holdStore) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.slots {
		if s.slots[i].state != heldFree {
			n++
		}
	}
	return n
}

// TunnelDevice carries packets between nodes (forward/tunnelnet
// implements it over UDP). Send and Read may be called concurrently.
type TunnelDevice interface {
	// Send sends the IPv4 packet ip (header on, checksums complete,
	// at most one MTU) to node to, having taken hops tunnel hops with
	// this one. It does not keep ip, does not block for long and does
	// not allocate in the steady state; a packet it cannot send is
	// counted by it and lost.
	// With seg.Size != 0, ip is a TCP GSO super-packet (checksum
	// partial, as the device left it) to be carried whole and sent on as
	// the same super-packet; Send returns ErrSegmentsTooBig, sending
	// nothing, when it cannot carry one that large (the caller then cuts
	// it into segments).
	Send(to uint16, hops uint8, seg Segments, ip []byte) error
	// SendBatch sends plain packets (Seg zero) as Send would, in as few
	// system calls as it can, and returns how many it could not send
	// (counted by it and lost). It does not keep the packets.
	SendBatch(pkts []TunnelPacket) (failed int)
	// Paths is how many receive paths (sockets) the tunnel has, ≥ 1; it
	// does not change. The router reads each with a worker of its own,
	// so that a packet wakes one goroutine on its way in.
	Paths() int
	// Read waits for at least one packet from the tunnel on path
	// (0 ≤ path < Paths) and reads up to len(bufs): packet i is written to
	// bufs[i][offset:offset+sizes[i]], came from node froms[i] after
	// hops[i] hops, and is a super-packet when segs[i].Size != 0. It
	// returns net.ErrClosed after Close.
	Read(path int, bufs [][]byte, sizes []int, froms []uint16, hops []uint8, segs []Segments, offset int) (n int, err error)
	// Flush sends the registers and hints the filter has queued, if any,
	// at once: a worker calls it before it forwards a packet the filter
	// passed, so a new flow's register leaves before its first packet.
	// Cheap when nothing is queued.
	Flush()
	// Close makes Read return net.ErrClosed. Safe to call more than once.
	Close() error
}

// Segments describes a TCP GSO super-packet handed through the tunnel
// whole (TunnelDevice): the zero value is a plain packet.
type Segments struct {
	GSOType uint8  // the virtio-net header's gso_type: vnetGSOTCPv4, optionally with vnetGSOECN
	Size    uint16 // TCP payload bytes per segment (the virtio-net gso_size)
}

// TunnelPacket is one packet for TunnelDevice.SendBatch.
type TunnelPacket struct {
	To   uint16
	Hops uint8
	IP   []byte
}

// ErrSegmentsTooBig is TunnelDevice.Send's refusal of a super-packet
// larger than one datagram can carry.
var ErrSegmentsTooBig = errors.New("tunnel: super-packet too large for one datagram")

// tunnelCounters count one goroutine's use of the tunnel.
type tunnelCounters struct {
	sent, sentBytes counter // packets handed to TunnelDevice.Send
	sendErrors      counter // Send refused them
	segmented       counter // GSO super-frames cut into segments before sending
	whole           counter // GSO super-frames sent whole (Segments)
	received, rcvd  counter // packets read from the tunnel, and their bytes
	forwarded       counter // of those, forwarded by this node
	redirected      counter // of those, sent on to another node (hops 2)
	held            counter // first packets held for the filter (Decide's hold)
	holdRefused     counter // first packets the filter asked to hold, forwarded at once
	released        counter // held packets forwarded
	mssClamped      counter // TCP SYNs whose MSS was lowered to fit the tunnel (mss.go)
	fragNeeded      counter // DF packets too large for the tunnel, answered with ICMP fragmentation needed
	coalesced       counter // segments from the tunnel sent as part of a super-frame (coalesce_linux.go)
	superFrames     counter // those super-frames
	drops           [numDropReasons]counter
}

// TunnelStats are the router's tunnel counters, summed over goroutines.
type TunnelStats struct {
	Sent, SentBytes     uint64 // packets this node sent through the tunnel (redirected) and their bytes
	SendErrors          uint64 // packets the tunnel device refused
	Segmented           uint64 // GSO super-frames segmented before they were sent
	Whole               uint64 // GSO super-frames sent whole, as one datagram
	Received, RcvdBytes uint64 // packets the tunnel brought and their bytes
	Forwarded           uint64 // of those, forwarded out of a link
	Redirected          uint64 // of those, sent on to the flow's handler
	Held                uint64 // first packets held until their register's ack (or the deferral's end)
	HoldRefused         uint64 // first packets the filter asked to hold, forwarded at once (no slot, or already released)
	Released            uint64 // held packets forwarded
	HeldNow             int    // packets held now
	MSSClamped          uint64 // TCP SYNs whose MSS was lowered to fit the tunnel
	FragNeeded          uint64 // DF packets too large for the tunnel, dropped (ICMP fragmentation needed sent, rate permitting)
	Coalesced           uint64 // TCP segments from the tunnel that left in SuperFrames (coalesce_linux.go)
	SuperFrames         uint64 // GSO super-frames the handler built from them
	Drops               map[DropReason]uint64
}

func sumTunnel(shards []*shard) TunnelStats {
	var s TunnelStats
	for _, sh := range shards {
		c := &sh.tunnel
		s.Sent += c.sent.load()
		s.SentBytes += c.sentBytes.load()
		s.SendErrors += c.sendErrors.load()
		s.Segmented += c.segmented.load()
		s.Whole += c.whole.load()
		s.Received += c.received.load()
		s.RcvdBytes += c.rcvd.load()
		s.Forwarded += c.forwarded.load()
		s.Redirected += c.redirected.load()
		s.Held += c.held.load()
		s.HoldRefused += c.holdRefused.load()
		s.Released += c.released.load()
		s.MSSClamped += c.mssClamped.load()
		s.FragNeeded += c.fragNeeded.load()
		s.Coalesced += c.coalesced.load()
		s.SuperFrames += c.superFrames.load()
		for d := range c.drops {
			if v := c.drops[d].load(); v != 0 {
				if s.Drops == nil {
					s.Drops = map[DropReason]uint64{}
				}
				s.Drops[DropReason(d)] += v
			}
		}
	}
	return s
}

// virtio-net GSO fields (include/uapi/linux/virtio_net.h).
const (
	vnetOffGSOSize = 4
	vnetGSOTCPv4   = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOECN     = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// segmentTCP cuts the IPv4 TCP GSO super-packet ip into segments of at
// most mss payload bytes, as the device would (Linux tcp_gso_segment):
// each segment gets its own total length, IP id (+1 per segment), sequence
// number and full checksums; FIN and PSH stay on the last segment only,
// CWR on the first only. Each segment is built in buf (which must hold
// the headers and mss bytes) and passed to emit before the next. It
// returns false, emitting nothing, for a packet it cannot cut.
func segmentTCP(ip []byte, mss int, buf []byte, emit func(seg []byte)) bool {
	if len(ip) < ipv4MinHdr || ip[9] != protoTCP || mss <= 0 {
		return false
	}
	ihl := int(ip[0]&0x0f) * 4
	if len(ip) < ihl+20 {
		return false
	}
	hl := ihl + int(ip[ihl+12]>>4)*4
	if hl > len(ip) || hl+mss > len(buf) {
		return false
	}
	payload := ip[hl:]
	seq := binary.BigEndian.Uint32(ip[ihl+4:])
	id := binary.BigEndian.Uint16(ip[4:])
	flags := ip[ihl+13]
	for off, i := 0, 0; off < len(payload) || (off == 0 && len(payload) == 0); i++ {
		n := min(mss, len(payload)-off)
		seg := buf[:hl+n]
		copy(seg, ip[:hl])
		copy(seg[hl:], payload[off:off+n])
		binary.BigEndian.PutUint16(seg[2:], uint16(hl+n))
		binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
		setIPv4Checksum(seg)
		t := seg[ihl:]
		binary.BigEndian.PutUint32(t[4:], seq+uint32(off))
		f := flags
		if off+n < len(payload) {
			f &^= tcpFlagFIN | tcpFlagPSH
		}
		if off > 0 {
			f &^= tcpFlagCWR
		}
		t[13] = f
		t[16], t[17] = 0, 0
		pseudo := sum16(seg[12:20], uint32(protoTCP)+uint32(len(t)))
		binary.BigEndian.PutUint16(t[16:], checksum(t, pseudo))
		emit(seg)
		off += n
		if n == 0 {
			break
		}
	}
	return true
}

const (
	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)
