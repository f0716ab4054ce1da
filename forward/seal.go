package forward

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ringway/ringway/internal/keys"
	"github.com/ringway/ringway/internal/replay"
)

// tunnelInfo prefixes the HKDF info that derives a sender's datagram key
// for one boot from the cluster key. It differs from the ring's ("ringway
// ring datagram v1"), so a ring datagram never authenticates as a tunnel
// datagram or the other way round.
const tunnelInfo = "ringway forward tunnel v1"

// TunnelWindow is the replay window per peer, in datagrams: what the
// tunnel tolerates of reordering between a sender's workers, which share
// one counter, and the receiver's. WireGuard's is about as large (8,128).
const TunnelWindow = 8192

// tunnelAEAD returns the AES-256-GCM of datagrams sent by node from during
// boot: K = HKDF-SHA256(cluster key, info = "ringway forward tunnel v1" ‖
// from ‖ boot). One key per (sender, boot), so a counter that restarts at
// 1 on every boot never reuses a nonce under a key.
func tunnelAEAD(clusterKey []byte, from uint16, boot uint64) (cipher.AEAD, error) {
	var info [len(tunnelInfo) + 10]byte
	copy(info[:], tunnelInfo)
	binary.BigEndian.PutUint16(info[len(tunnelInfo):], from)
	binary.BigEndian.PutUint64(info[len(tunnelInfo)+2:], boot)
	return keys.GCM(clusterKey, info[:])
}

// nonceOf returns the GCM nonce of the datagram whose header is b: header
// bytes 20 to 31, the low half of the boot id and the counter. It is unique
// under the key, which is per boot, because the counter never repeats
// within a boot; taking it from the header costs no copy and nothing on
// the stack that would escape through the AEAD interface and allocate.
func nonceOf(b []byte) []byte { return b[20:32] }

// Sealer seals the tunnel datagrams one node sends during one boot. It is
// safe for concurrent use: the router's workers share it, and its counter.
type Sealer struct {
	self    uint16
	boot    uint64
	aead    cipher.AEAD
	counter atomic.Uint64
}

// NewSealer returns the sealer of node self for boot (the node's boot id,
// the ring's: it grows from one boot to the next, see ringnet's doc). The
// cluster key is 32 bytes.
func NewSealer(clusterKey []byte, self uint16, boot uint64) (*Sealer, error) {
	if self == 0 {
		return nil, errors.New("tunnel sealer: node id 0")
	}
	a, err := tunnelAEAD(clusterKey, self, boot)
	if err != nil {
		return nil, fmt.Errorf("tunnel sealer: %w", err)
	}
	return &Sealer{self: self, boot: boot, aead: a}, nil
}

var (
	errPayload   = errors.New("tunnel: payload length does not suit the type (data: 1 to 65535 bytes; register, hint, ack: none)")
	errExhausted = errors.New("tunnel: datagram counter exhausted for this boot")
)

// Seal appends to dst the datagram carrying h and payload and returns the
// extended slice. It sets h's Sender, Boot and Counter (the sealer's next);
// the caller sets the rest. It does not allocate when dst has room for
// h.Len() + len(payload) + TagLen more bytes. payload must not overlap
// dst's spare room, except exactly: payload at dst[len(dst)+h.Len():] is
// sealed in place (a packet read behind 32 bytes of headroom is
// tunnelled without a copy).
func (s *Sealer) Seal(dst []byte, h TunnelHeader, payload []byte) ([]byte, error) {
	h.Sender, h.Boot = s.self, s.boot
	h.Counter = 1 // for check; the real one is taken last, so errors waste none
	if r := h.check(); r != TunnelOK {
		return dst, fmt.Errorf("tunnel: header %+v: %v", h, r)
	}
	if h.Type.hasFlow() != (len(payload) == 0) || len(payload) > MaxPayload {
		return dst, errPayload
	}
	if h.Counter = s.counter.Add(1); h.Counter == 0 {
		s.counter.Store(^uint64(0)) // stays exhausted
		return dst, errExhausted
	}
	n, hl := len(dst), h.Len()
	dst = slices.Grow(dst, hl+len(payload)+TagLen)[:n+hl]
	h.put(dst[n:])
	return s.aead.Seal(dst, nonceOf(dst[n:]), payload, dst[n:]), nil
}

// Opener authenticates the tunnel datagrams a node receives. It is safe
// for concurrent use: each peer's state has its own lock, held only to
// check and move the replay window, not while decrypting.
type Opener struct {
	key   []byte
	self  uint16
	peers atomic.Pointer[map[uint16]*tunnelPeer] // replaced whole by SetPeers
	setMu sync.Mutex                             // serialises SetPeers

	opened atomic.Uint64
	drops  [numTunnelDrops]atomic.Uint64
}

// tunnelPeer is what a receiver knows of one sender: its newest boot, the
// key of that boot and the replay window over its counters.
type tunnelPeer struct {
	mu   sync.Mutex
	boot uint64
	aead cipher.AEAD // nil until a first authentic datagram
	win  *replay.Window
}

// NewOpener returns the opener of node self, accepting datagrams from the
// given peers (node ids; self and 0 are ignored).
func NewOpener(clusterKey []byte, self uint16, peers []uint16) (*Opener, error) {
	if len(clusterKey) != 32 {
		return nil, fmt.Errorf("tunnel opener: cluster key is %d bytes, want 32", len(clusterKey))
	}
	if self == 0 {
		return nil, errors.New("tunnel opener: node id 0")
	}
	o := &Opener{key: slices.Clone(clusterKey), self: self}
	o.SetPeers(peers)
	return o, nil
}

// SetPeers replaces the set of nodes datagrams are accepted from. A peer
// in both sets keeps its boot and replay window; a peer removed is
// forgotten, so if it comes back, its first authentic datagram of any boot
// is believed (as after this node's own restart): the membership epoch in
// the header is what lets the caller refuse a stale datagram then.
func (o *Opener) SetPeers(peers []uint16) {
	o.setMu.Lock()
	defer o.setMu.Unlock()
	var old map[uint16]*tunnelPeer
	if p := o.peers.Load(); p != nil {
		old = *p
	}
	m := make(map[uint16]*tunnelPeer, len(peers))
	for _, id := range peers {
		if id == 0 || id == o.self {
			continue
		}
		if p, ok := old[id]; ok {
			m[id] = p
		} else {
			m[id] = &tunnelPeer{win: replay.New(TunnelWindow)}
		}
	}
	o.peers.Store(&m)
}

// Forget drops what the opener knows of peer's boot: its next authentic
// datagram of any boot is believed. For a peer whose boot id went back
// (its clock stepped back across a restart), which is otherwise refused as
// stale_boot until then; the ring notices that case (ringnet's
// PeerRollbacks).
func (o *Opener) Forget(peer uint16) {
	if p := (*o.peers.Load())[peer]; p != nil {
		p.mu.Lock()
		p.boot, p.aead = 0, nil
		p.win.Reset()
		p.mu.Unlock()
	}
}

// Open checks datagram b and, if it is well formed, addressed to this node
// by a peer, fresh and authentic, decrypts its payload in place and
// returns the header and the payload (a subslice of b). Otherwise it
// returns why not, and counts it. Nothing about a peer changes unless the
// datagram authenticates. Open does not allocate, except once per new boot
// of a peer (its key).
func (o *Opener) Open(b []byte) (h TunnelHeader, payload []byte, r TunnelDrop) {
	h, payload, r = o.open(b)
	if r != TunnelOK {
		o.drops[r].Add(1)
		return h, nil, r
	}
	o.opened.Add(1)
	return h, payload, r
}

func (o *Opener) open(b []byte) (h TunnelHeader, payload []byte, r TunnelDrop) {
	if len(b) < HeaderLen+TagLen {
		return h, nil, TunnelShort
	}
	if len(b) > MaxDatagram {
		return h, nil, TunnelOversize
	}
	if r = h.parse(b); r != TunnelOK {
		return h, nil, r
	}
	hl := h.Len()
	switch {
	case len(b) < hl+TagLen:
		return h, nil, TunnelShort
	case h.Type.hasFlow() != (len(b) == hl+TagLen):
		return h, nil, TunnelMalformed // a payload where none belongs, or none where one must be
	case len(b) > hl+MaxPayload+TagLen:
		return h, nil, TunnelOversize
	}
	if h.Receiver != o.self {
		return h, nil, TunnelNotForUs
	}
	p := (*o.peers.Load())[h.Sender]
	if p == nil {
		return h, nil, TunnelUnknownSender
	}

	// Before the costly part: is the datagram fresh, and under which key?
	p.mu.Lock()
	aead, boot := p.aead, p.boot
	switch {
	case aead != nil && h.Boot == boot:
		if !p.win.Check(h.Counter) {
			p.mu.Unlock()
			return h, nil, TunnelReplayed
		}
	case aead == nil || h.Boot > boot:
		aead = nil // a first datagram or a restart: the new boot's key, below
	default:
		p.mu.Unlock()
		return h, nil, TunnelStaleBoot
	}
	p.mu.Unlock()
	if aead == nil {
		var err error
		if aead, err = tunnelAEAD(o.key, h.Sender, h.Boot); err != nil {
			return h, nil, TunnelForged // cannot happen: the key length was checked
		}
	}
	pt, err := aead.Open(b[hl:hl], nonceOf(b), b[hl:], b[:hl])
	if err != nil {
		return h, nil, TunnelForged
	}

	// Authentic: now the window moves, or the boot changes. Another
	// goroutine may have done either meanwhile, so look again.
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.aead != nil && h.Boot == p.boot:
		if !p.win.Check(h.Counter) {
			return h, nil, TunnelReplayed
		}
	case p.aead == nil || h.Boot > p.boot:
		p.boot, p.aead = h.Boot, aead
		p.win.Reset()
	default:
		return h, nil, TunnelStaleBoot
	}
	p.win.Mark(h.Counter)
	return h, pt, TunnelOK
}

// TunnelStats are an Opener's counters since NewOpener. All are monotonic.
type TunnelStats struct {
	Opened uint64                 // datagrams accepted
	Drops  [numTunnelDrops]uint64 // datagrams refused, by reason (Drops[TunnelOK] is 0)
}

// Stats returns the opener's counters.
func (o *Opener) Stats() TunnelStats {
	s := TunnelStats{Opened: o.opened.Load()}
	for i := range s.Drops {
		s.Drops[i] = o.drops[i].Load()
	}
	return s
}
