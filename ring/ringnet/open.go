package ringnet

import (
	"crypto/cipher"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringway/ringway/internal/replay"
)

// opener authenticates received datagrams and enforces the replay and
// freshness rules. It is shared by the receive goroutines; each peer's
// state has its own lock.
type opener struct {
	key       []byte
	self      NodeID
	salt      uint64                    // this boot's (Header.Salt): fresh datagrams echo it
	tab       atomic.Pointer[peerTable] // grows when nodes are appended (add)
	staleBoot time.Duration
	// answerEvery is the least time between two announces that answer one
	// sender's datagrams that were not fresh: the driver's tick. The core
	// sends a message's tries at least a tick apart (the hedge after
	// AckTimeout/2 ≥ 1 tick, resends after AckTimeout, doubling), so
	// every try is answered even if an answer is lost, while a replay
	// flood makes this node send at most one datagram per tick to a peer
	// (and a replayed datagram passes the replay window once).
	answerEvery time.Duration
	now         func() time.Time
}

// peerTable is the node map as the opener knows it.
type peerTable struct {
	addrs [][]netip.AddrPort // addrs[id-1][path]
	peers []*peerState       // peers[id-1]
}

// peerState is what this node remembers of one sender: its current boot, the
// key for that boot and the replay window over that boot's counters.
type peerState struct {
	mu   sync.Mutex
	boot uint64
	aead cipher.AEAD    // nil until a first authentic datagram
	win  *replay.Window // over the current boot's counters (WindowSize)
	last time.Time      // when the last authentic datagram arrived
	// derived is when a new boot of this known sender last cost a key
	// derivation (deriveEvery).
	derived time.Time
	// answered is when this node last answered a datagram of this sender
	// that was not fresh with an announce (opener.answerEvery).
	answered time.Time
	// echo is the current boot's salt (Header.Salt), read under mu here
	// and without it by the senders (Header.Echo of every datagram to this
	// peer); 0 until a first authentic datagram. Only open stores it,
	// under mu.
	echo atomic.Uint64
	// nonce lives here, not on the stack, where it would escape through the
	// AEAD interface call and allocate per datagram.
	nonce [12]byte
}

func newOpener(key []byte, self NodeID, salt uint64, addrs [][]netip.AddrPort, staleBoot, answerEvery time.Duration, now func() time.Time) *opener {
	o := &opener{key: key, self: self, salt: salt, staleBoot: staleBoot, answerEvery: answerEvery, now: now}
	o.tab.Store(&peerTable{})
	o.add(addrs)
	return o
}

// add appends nodes to the node map (a reload): their addresses and fresh
// peer states. The receive goroutines see the old table or the new one;
// the peers they share keep their state. Callers serialise add.
func (o *opener) add(addrs [][]netip.AddrPort) {
	old := o.tab.Load()
	t := &peerTable{addrs: append(slices.Clip(old.addrs), addrs...), peers: slices.Clip(old.peers)}
	for range addrs {
		t.peers = append(t.peers, &peerState{win: replay.New(WindowSize)})
	}
	o.tab.Store(t)
}

// deriveEvery is the least time between two key derivations for new boots
// of one known sender (one restart needs one).
const deriveEvery = 50 * time.Millisecond

// bootEvent says what an accepted datagram told about its sender's boot.
type bootEvent uint8

const (
	bootSame     bootEvent = iota // the boot already known
	bootFirst                     // the first boot seen of this sender
	bootNewer                     // a restart: a newer boot id
	bootRollback                  // an older boot id, believed after StaleBoot of silence
)

// open checks datagram b that arrived on path from src and, if it is
// authentic, new and for this node, decrypts it in place and returns the
// plaintext (a subslice of b) and what it said about the sender's boot.
// An authentic datagram that does not echo this boot is DropNotFresh: it
// still teaches the sender's boot (so that this node echoes it from now
// on) and ev says so, but it must reach nothing else; answer then says
// whether to answer it with an announce now (opener.answerEvery: at most
// one answer per sender per tick), and records that it is answered.
func (o *opener) open(b []byte, path int, src netip.AddrPort) (h Header, payload []byte, ev bootEvent, answer bool, r DropReason) {
	// Size checks first: nothing is decrypted or parsed past the buffer.
	if len(b) < Overhead {
		return h, nil, bootSame, false, DropShort
	}
	if len(b) > MaxDatagram {
		return h, nil, bootSame, false, DropOversize
	}
	if r = parseHeader(b, &h); r != DropNone {
		return h, nil, bootSame, false, r
	}
	if h.Kind == KindAnnounce && len(b) != Overhead {
		return h, nil, bootSame, false, DropMalformed
	}
	if int(h.Path) != path {
		return h, nil, bootSame, false, DropWrongPath
	}
	if h.To != o.self {
		return h, nil, bootSame, false, DropNotForUs
	}
	t := o.tab.Load()
	if h.From == 0 || int(h.From) > len(t.addrs) || h.From == o.self ||
		path >= len(t.addrs[h.From-1]) || unmap(src) != t.addrs[h.From-1][path] {
		return h, nil, bootSame, false, DropUnknownSender
	}
	p := t.peers[h.From-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	now := o.now()
	aead := p.aead
	newBoot := false
	switch {
	case aead != nil && h.Boot == p.boot && h.Salt == p.echo.Load():
		if !p.win.Check(h.Counter) {
			return h, nil, bootSame, false, DropReplay
		}
	case aead == nil || newer(h, p) || now.Sub(p.last) > o.staleBoot:
		// A forged datagram that claims a new boot costs an HKDF and a
		// cipher set-up (17× a forgery under the known key) before it
		// fails the tag: at most one per deriveEvery per known sender.
		// A real restart sends a hello every few ticks, so one of them
		// gets through.
		if aead != nil {
			if now.Sub(p.derived) < deriveEvery {
				return h, nil, bootSame, false, DropBootLimited
			}
			p.derived = now
		}
		// A first datagram, a restart (boot ids grow with the boot time), or a
		// sender silent so long that an older boot id is believed (its clock
		// went back across a restart). Datagrams of an old boot replayed after
		// that are caught by the core's sequence numbers.
		var err error
		if aead, err = deriveAEAD(o.key, h.From, h.Boot, h.Salt); err != nil {
			return h, nil, bootSame, false, DropAuth
		}
		newBoot = true
	default:
		return h, nil, bootSame, false, DropStaleBoot
	}
	nonceFor(&p.nonce, h.Counter)
	pt, err := aead.Open(b[HeaderLen:HeaderLen], p.nonce[:], b[HeaderLen:], b[:HeaderLen])
	if err != nil {
		return h, nil, bootSame, false, DropAuth
	}
	if newBoot {
		switch {
		case p.aead == nil:
			ev = bootFirst
		case newer(h, p):
			ev = bootNewer
		default:
			ev = bootRollback
		}
		p.boot, p.aead = h.Boot, aead
		p.echo.Store(h.Salt)
		p.win.Reset()
	}
	p.win.Mark(h.Counter)
	p.last = now
	if h.Echo != o.salt {
		// Sent to an earlier boot of this node, or before the sender
		// heard of this one: a replay may be among them, and nothing but
		// the datagram's own age tells them apart. A restarted node must
		// not take a token or a ring state from its past (the core, having
		// forgotten everything, would accept an old ring's token).
		answer = p.answered.IsZero() || now.Sub(p.answered) >= o.answerEvery
		if answer {
			p.answered = now
		}
		return h, nil, ev, answer, DropNotFresh
	}
	return h, pt, ev, false, DropNone
}

// echo returns what datagrams to node to echo: its current boot's salt as
// this node learnt it, or 0 before a first authentic datagram from it.
func (o *opener) echo(to NodeID) uint64 {
	t := o.tab.Load()
	if to == 0 || int(to) > len(t.peers) {
		return 0
	}
	return t.peers[to-1].echo.Load()
}

// newest returns the newest counter accepted from node from in its
// current boot (for the replay drop's debug log).
func (o *opener) newest(from NodeID) uint64 {
	t := o.tab.Load()
	if from == 0 || int(from) > len(t.peers) {
		return 0
	}
	p := t.peers[from-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.win.Top()
}

// newer reports whether h is from a later boot than p's: a later boot
// time, or the same millisecond and 16 bits and a larger salt. The caller
// holds p.mu.
func newer(h Header, p *peerState) bool {
	return h.Boot > p.boot || (h.Boot == p.boot && h.Salt > p.echo.Load())
}

func unmap(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}
