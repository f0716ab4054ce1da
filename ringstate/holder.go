package ringstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Carriage kinds (docs/internals.md).
const (
	KindVIPTable uint16 = 1 // vipstate.Table.MarshalBinary
	KindLoad     uint16 = 2 // per-VIP load, see Load
	// Kind 3 is reserved for the config epoch (docs/internals.md).
	KindClosedNodes    uint16 = 4 // nodes closed by an operator, see NodeSet
	KindUnhealthyNodes uint16 = 5 // nodes whose monitors fail, see NodeSet
)

// Config configures a Holder.
type Config struct {
	// Initial is the table from the configuration, used when a ring starts
	// cold (no carriages yet).
	Initial vipstate.Table
	// Balance configures load balancing (vipstate.DefaultBalanceConfig).
	Balance vipstate.BalanceConfig
	// LocalLoad, if set, returns this node's current traffic per VIP it
	// owns, in bytes/s; the holder writes it onto the token. It must not
	// block. nil: no measurements (balancing then sees only others').
	LocalLoad func() map[netip.Addr]uint64
	// LocalHealthy, if set, reports whether this node's monitors pass; the
	// holder writes the answer onto the token (carriage kind 5) at each of
	// its turns. An unhealthy node answers no VIP, like a closed one. It
	// must not block. nil: always healthy.
	LocalHealthy func() bool
}

// Holder implements ring.Holder with vipstate.
type Holder struct {
	cfg Config

	mu      sync.Mutex
	pending []Op // operator actions waiting for this node to hold the token
	nodeOps []NodeOp

	// gaveAway: the last OnToken took a VIP from this node, a member, and
	// gave it to another (ring.Urgent). Read by the core right after.
	gaveAway bool
}

// Urgent reports whether the last OnToken gave a VIP this node served to
// another node, which serves it only once the token reaches it: the ring
// core then passes the token at once instead of holding it (ring.Urgent).
func (h *Holder) Urgent() bool { return h.gaveAway }

// Op is an operator action on the table (vipstate's Move, Prefer, Stick,
// Close, ...), e.g. func(t vipstate.Table) (vipstate.Table, error) { return
// t.Move(vip, 2) }. Ops only record intent; the VIP moves at its owner's
// turn (vipstate's rule), so applying them at any holder is safe.
type Op struct {
	Apply func(vipstate.Table) (vipstate.Table, error)
	// Done, if set, is called with Apply's error from within OnToken (on
	// the ring driver's goroutine); it must not block.
	Done func(error)
}

// Enqueue queues an operator action; the next OnToken at which this node
// is a member of a ring with quorum applies it to the token's table before
// vipstate's Step. It is safe to call from any goroutine. This is the one
// input of the Holder that is not in the TokenView; the simulator does not
// use it, so replays stay pure.
func (h *Holder) Enqueue(op Op) { put(h, &h.pending, op) }

// put appends op to one of the Holder's operator queues.
func put[T any](h *Holder, q *[]T, op T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*q = append(*q, op)
}

// take empties one of the Holder's operator queues and returns what it held.
func take[T any](h *Holder, q *[]T) []T {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := *q
	*q = nil
	return ops
}

var _ ring.Holder = (*Holder)(nil)

// New returns a Holder.
func New(cfg Config) *Holder { return &Holder{cfg: cfg} }

// OnToken decodes the table and loads, applies vipstate.Step for the ring's
// live members (a leaving Self is not among them, so its VIPs move to the
// others), and returns the re-encoded carriages. A table that does not
// decode is left as it is: the holder cannot repair what it cannot read,
// and changing nothing never makes two nodes answer one VIP.
func (h *Holder) OnToken(t ring.TokenView) []ring.Carriage {
	table := h.cfg.Initial
	var loads Load
	var closed, unhealthy NodeSet
	var rest []ring.Carriage
	for _, c := range t.Carriages {
		switch c.Kind {
		case KindVIPTable:
			var tb vipstate.Table
			if err := tb.UnmarshalBinary(c.Data); err != nil {
				return t.Carriages
			}
			table = tb
		case KindLoad:
			if err := loads.UnmarshalBinary(c.Data); err != nil {
				loads = Load{}
			}
		case KindClosedNodes:
			// Unreadable: nobody closed (answering beats not answering).
			_ = closed.UnmarshalBinary(c.Data)
		case KindUnhealthyNodes:
			_ = unhealthy.UnmarshalBinary(c.Data)
		default:
			rest = append(rest, c)
		}
	}
	if loads == nil {
		loads = Load{}
	}
	before := table.OwnedBy(vipstate.Node(t.Self)) // before operator actions and Step
	if h.cfg.LocalLoad != nil && slices.Contains(t.Members, t.Self) {
		for vip, rate := range h.cfg.LocalLoad() {
			if table.Owner(vip) == vipstate.Node(t.Self) {
				loads[vip] = rate
			}
		}
	}
	if !t.NoQuorum && slices.Contains(t.Members, t.Self) {
		for _, op := range take(h, &h.pending) {
			nt, err := op.Apply(table)
			if err == nil {
				table = nt
			}
			if op.Done != nil {
				op.Done(err)
			}
		}
	}
	self := vipstate.Node(t.Self)
	if !t.NoQuorum && slices.Contains(t.Members, t.Self) {
		closed = h.applyNodeOps(closed)
	}
	if slices.Contains(t.Members, t.Self) {
		unhealthy = unhealthy.with(self, h.cfg.LocalHealthy != nil && !h.cfg.LocalHealthy())
	}
	// A mark is its node's own word; a node that left the ring marks itself
	// again at its first turn after it rejoins.
	for _, n := range unhealthy {
		if !slices.Contains(t.Members, ring.NodeID(n)) {
			unhealthy = unhealthy.with(n, false)
		}
	}
	// Closed and unhealthy nodes alike receive no VIPs.
	out := slices.Clone(closed)
	for _, n := range unhealthy {
		out = out.with(n, true)
	}
	// A closed or unhealthy Self hands its VIPs over at this turn
	// (vipstate.ReasonHandover).
	live := make([]vipstate.Node, len(t.Members))
	for i, m := range t.Members {
		live[i] = vipstate.Node(m)
	}
	in := vipstate.Input{Self: self, Live: live, Closed: out, Balance: h.cfg.Balance}
	if len(loads) > 0 {
		in.VIPLoad = loads
	}
	table, _ = table.Step(in)
	h.gaveAway = false
	if slices.Contains(t.Members, t.Self) {
		for _, vip := range before {
			if o := table.Owner(vip); o != vipstate.Node(t.Self) && o != vipstate.None {
				h.gaveAway = true
				break
			}
		}
	}
	// Forget loads of VIPs the table does not have (a config change).
	for vip := range loads {
		if _, ok := table.Lookup(vip); !ok {
			delete(loads, vip)
		}
	}
	tb, err := table.MarshalBinary()
	if err != nil {
		return t.Carriages
	}
	cs := make([]ring.Carriage, 0, 4+len(rest))
	cs = append(cs, ring.Carriage{Kind: KindVIPTable, Data: tb})
	if len(loads) > 0 {
		lb, _ := loads.MarshalBinary()
		cs = append(cs, ring.Carriage{Kind: KindLoad, Data: lb})
	}
	for _, set := range []struct {
		kind uint16
		ns   NodeSet
	}{{KindClosedNodes, closed}, {KindUnhealthyNodes, unhealthy}} {
		if len(set.ns) > 0 {
			if b, err := set.ns.MarshalBinary(); err == nil {
				cs = append(cs, ring.Carriage{Kind: set.kind, Data: b})
			}
		}
	}
	return append(cs, rest...)
}

// Table decodes the VIP table carried in cs; ok is false when there is none.
func Table(cs []ring.Carriage) (t vipstate.Table, ok bool, err error) {
	for _, c := range cs {
		if c.Kind == KindVIPTable {
			err = t.UnmarshalBinary(c.Data)
			return t, err == nil, err
		}
	}
	return t, false, nil
}

// Owned returns the VIPs node self must answer under committed state s:
// those the table gives it, if self is a member of s's ring and the ring
// has quorum; none otherwise (starting, between rings, leaving, minority).
func Owned(s *ring.State, self ring.NodeID) ([]netip.Addr, error) {
	if s == nil || s.NoQuorum || !slices.Contains(s.Members, self) {
		return nil, nil
	}
	t, ok, err := Table(s.Carriages)
	if !ok {
		return nil, err
	}
	return t.OwnedBy(vipstate.Node(self)), nil
}

// SameService reports whether a node serving by committed state a needs
// nothing new from b: the same ring, members, alone and quorum flags and
// carriages, where the VIP tables may differ only in their rotation
// counters (vipstate.SameRows), which change on every rotation. The ring
// driver then need not wake the node for b (ringnet.Config.SameState).
func SameService(a, b *ring.State) bool {
	if a.RingID != b.RingID || a.Alone != b.Alone || a.NoQuorum != b.NoQuorum ||
		!slices.Equal(a.Members, b.Members) || (a.Members == nil) != (b.Members == nil) ||
		len(a.Carriages) != len(b.Carriages) {
		return false
	}
	for i, ca := range a.Carriages {
		cb := b.Carriages[i]
		switch {
		case ca.Kind != cb.Kind:
			return false
		case ca.Kind == KindVIPTable:
			if !vipstate.SameRows(ca.Data, cb.Data) {
				return false
			}
		case !bytes.Equal(ca.Data, cb.Data):
			return false
		}
	}
	return true
}

// Load is carriage kind 2: the traffic of each VIP in bytes/s, as measured
// by its owner.
//
//	version u8 (1) | count u32 | (vip [4]byte | rate u64) × count, sorted by VIP
type Load map[netip.Addr]uint64

// MaxLoadEntries caps a decoded Load.
const MaxLoadEntries = 1 << 16

// MarshalBinary encodes l in VIP order (deterministic bytes).
func (l Load) MarshalBinary() ([]byte, error) {
	vips := make([]netip.Addr, 0, len(l))
	for v := range l {
		if !v.Is4() {
			return nil, fmt.Errorf("ringstate: load for %v: only IPv4 VIPs", v)
		}
		vips = append(vips, v)
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	b := make([]byte, 0, 5+12*len(vips))
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vips)))
	for _, v := range vips {
		a := v.As4()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint64(b, l[v])
	}
	return b, nil
}

// UnmarshalBinary decodes a Load, replacing *l.
func (l *Load) UnmarshalBinary(b []byte) error {
	if len(b) < 5 {
		return io.ErrUnexpectedEOF
	}
	if b[0] != 1 {
		return errors.New("ringstate: unknown load carriage version")
	}
	n := binary.BigEndian.Uint32(b[1:])
	if n > MaxLoadEntries {
		return fmt.Errorf("ringstate: load carriage has %d entries, more than %d", n, MaxLoadEntries)
	}
	b = b[5:]
	if uint64(len(b)) < 12*uint64(n) {
		return io.ErrUnexpectedEOF
	}
	if uint64(len(b)) != 12*uint64(n) {
		return fmt.Errorf("ringstate: %d trailing bytes in load carriage", len(b)-12*int(n))
	}
	m := make(Load, n)
	for i := 0; i < int(n); i++ {
		e := b[12*i:]
		m[netip.AddrFrom4([4]byte(e[:4]))] = binary.BigEndian.Uint64(e[4:12])
	}
	*l = m
	return nil
}
