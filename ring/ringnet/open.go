package ringnet

import (
	"crypto/cipher"
	"net/netip"
	"sync"
	"time"

	"github.com/ringway/ringway/internal/replay"
)

// opener authenticates received datagrams and enforces the replay rules. It
// is shared by the receive goroutines; each peer's state has its own lock.
type opener struct {
	key       []byte
	self      NodeID
	addrs     [][]netip.AddrPort // addrs[id-1][path]
	peers     []peerState        // peers[id-1]
	staleBoot time.Duration
	now       func() time.Time
}

// peerState is what this node remembers of one sender: its current boot, the
// key for that boot and the replay window over that boot's counters.
type peerState struct {
	mu   sync.Mutex
	boot uint64
	salt uint64
	aead cipher.AEAD    // nil until a first authentic datagram
	win  *replay.Window // over the current boot's counters (WindowSize)
	last time.Time      // when the last authentic datagram arrived
	// derived is when a new boot of this known sender last cost a key
	// derivation (deriveEvery).
	derived time.Time
	// nonce lives here, not on the stack, where it would escape through the
	// AEAD interface call and allocate per datagram.
	nonce [12]byte
}

func newOpener(key []byte, self NodeID, addrs [][]netip.AddrPort, staleBoot time.Duration, now func() time.Time) *opener {
	o := &opener{key: key, self: self, addrs: addrs, peers: make([]peerState, len(addrs)), staleBoot: staleBoot, now: now}
	for i := range o.peers {
		o.peers[i].win = replay.New(WindowSize)
	}
	return o
}

// deriveEvery is the least time between two key derivations for new boots
// of one known sender (one restart needs one).
const deriveEvery = 50 * time.Millisecond

// bootEvent says what an accepted datagram told about its sender's boot.
type bootEvent uint8

const (
	bootSame     bootEvent = iota // the boot already known (or the first one seen)
	bootNewer                     // a restart: a newer boot id
	bootRollback                  // an older boot id, believed after StaleBoot of silence
)

// open checks datagram b that arrived on path from src and, if it is
// authentic, fresh and for this node, decrypts it in place and returns the
// plaintext (a subslice of b) and what it said about the sender's boot.
func (o *opener) open(b []byte, path int, src netip.AddrPort) (h Header, payload []byte, ev bootEvent, r DropReason) {
	// Size checks first: nothing is decrypted or parsed past the buffer.
	if len(b) < Overhead {
		return h, nil, bootSame, DropShort
	}
	if len(b) > MaxDatagram {
		return h, nil, bootSame, DropOversize
	}
	if r = parseHeader(b, &h); r != DropNone {
		return h, nil, bootSame, r
	}
	if int(h.Path) != path {
		return h, nil, bootSame, DropWrongPath
	}
	if h.To != o.self {
		return h, nil, bootSame, DropNotForUs
	}
	if h.From == 0 || int(h.From) > len(o.addrs) || h.From == o.self ||
		path >= len(o.addrs[h.From-1]) || unmap(src) != o.addrs[h.From-1][path] {
		return h, nil, bootSame, DropUnknownSender
	}
	p := &o.peers[h.From-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	now := o.now()
	aead := p.aead
	newBoot := false
	switch {
	case aead != nil && h.Boot == p.boot && h.Salt == p.salt:
		if !p.win.Check(h.Counter) {
			return h, nil, bootSame, DropReplay
		}
	case aead == nil || newer(h, p) || now.Sub(p.last) > o.staleBoot:
		// A forged datagram that claims a new boot costs an HKDF and a
		// cipher set-up (17× a forgery under the known key) before it
		// fails the tag: at most one per deriveEvery per known sender.
		// A real restart sends a hello every few ticks, so one of them
		// gets through.
		if aead != nil {
			if now.Sub(p.derived) < deriveEvery {
				return h, nil, bootSame, DropBootLimited
			}
			p.derived = now
		}
		// A first datagram, a restart (boot ids grow with the boot time), or a
		// sender silent so long that an older boot id is believed (its clock
		// went back across a restart). Datagrams of an old boot replayed after
		// that are caught by the core's sequence numbers.
		var err error
		if aead, err = deriveAEAD(o.key, h.From, h.Boot, h.Salt); err != nil {
			return h, nil, bootSame, DropAuth
		}
		newBoot = true
	default:
		return h, nil, bootSame, DropStaleBoot
	}
	nonceFor(&p.nonce, h.Counter)
	pt, err := aead.Open(b[HeaderLen:HeaderLen], p.nonce[:], b[HeaderLen:], b[:HeaderLen])
	if err != nil {
		return h, nil, bootSame, DropAuth
	}
	if newBoot {
		switch {
		case p.aead == nil:
		case newer(h, p):
			ev = bootNewer
		default:
			ev = bootRollback
		}
		p.boot, p.salt, p.aead = h.Boot, h.Salt, aead
		p.win.Reset()
	}
	p.win.Mark(h.Counter)
	p.last = now
	return h, pt, ev, DropNone
}

// newest returns the newest counter accepted from node from in its
// current boot (for the replay drop's debug log).
func (o *opener) newest(from NodeID) uint64 {
	p := &o.peers[from-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.win.Top()
}

// newer reports whether h is from a later boot than p's: a later boot
// time, or the same millisecond and 16 bits and a larger salt.
func newer(h Header, p *peerState) bool {
	return h.Boot > p.boot || (h.Boot == p.boot && h.Salt > p.salt)
}

func unmap(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}
