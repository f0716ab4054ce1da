package ringstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Carriage kinds (docs/internals.md).
const (
	KindVIPTable uint16 = 1 // vipstate.Table.MarshalBinary
	KindLoad     uint16 = 2 // per-VIP load, see Load
	// Kind 3, KindConfigEpoch, is the config epoch (epoch.go).
	KindClosedNodes    uint16 = 4 // nodes closed by an operator, see NodeSet
	KindUnhealthyNodes uint16 = 5 // nodes whose monitors fail, see NodeSet
	// Kind 6 (KindSwitches) is in switches.go.
)

// MaxForeignCarriages is how many carriages of kinds this package does not
// know the Holder passes on; the rest are dropped.
const MaxForeignCarriages = 16

// Config configures a Holder.
type Config struct {
	// Initial is the table from the configuration, used when a ring starts
	// cold (no carriages yet).
	Initial vipstate.Table
	// Balance configures load balancing (vipstate.DefaultBalanceConfig).
	Balance vipstate.BalanceConfig
	// Filling, when set, reports whether this node's fill runs
	// (forward.Filter.Filling); the holder then writes the filled set,
	// carriage kind 7 (filling.go), at every turn. It is read like the
	// view's Local: what this node says of itself now.
	Filling func() bool
}

// Holder implements ring.Holder with vipstate. It keeps nothing between
// calls: OnToken is a pure function of its Config and the TokenView, whose
// Proposals carry the operator's operations (VIPOp, NodeOp) and whose Local
// carries this node's load (a Load) and health.
type Holder struct {
	cfg Config
}

var _ ring.Holder = (*Holder)(nil)

// New returns a Holder.
func New(cfg Config) *Holder { return &Holder{cfg: cfg} }

// OnToken decodes the table, loads and node sets, writes this node's own
// load and health (t.Local) onto them, applies the operator's proposals in
// order, applies vipstate.Step for the ring's live members (a leaving Self
// is not among them, so its VIPs move to the others), and returns the
// re-encoded carriages. The turn is Urgent when this node, a member, gave a
// VIP it served to another node, which serves it only once the token
// reaches it. A table that does not decode is left as it is (and every
// proposal refused): the holder cannot repair what it cannot read, and
// changing nothing never makes two nodes answer one VIP.
func (h *Holder) OnToken(t ring.TokenView) ring.Turn {
	table := h.cfg.Initial
	var loads Load
	var closed, unhealthy NodeSet
	// The filled set (carriage kind 7, filling.go): written only with
	// Config.Filling; without it the carriage rides on in rest.
	var filled NodeSet
	writeFilled, keptFilled := h.cfg.Filling != nil, false
	// The switches an operator set (carriage kind 6); until then the
	// defaults (defaultSwitches), which follow the configured balancing.
	var sw Switches
	swSet := false
	var rest []ring.Carriage
	var epoch Epoch
	var epochRaw []byte // an epoch that does not decode rides on as it is
	haveEpoch := false
	for _, c := range t.Carriages {
		switch c.Kind {
		case KindConfigEpoch:
			if haveEpoch = epoch.UnmarshalBinary(c.Data) == nil; !haveEpoch {
				epochRaw = c.Data
			}
		case KindVIPTable:
			var tb vipstate.Table
			if err := tb.UnmarshalBinary(c.Data); err != nil {
				return ring.Turn{Carriages: t.Carriages, Results: refuseAll(t.Proposals, "the VIP table on the token does not decode: "+err.Error())}
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
		case KindFilledNodes:
			if writeFilled {
				// Unreadable: nobody filled, which is safe.
				_ = filled.UnmarshalBinary(c.Data)
			} else if !keptFilled {
				// Not ours to write: the first one rides on untouched,
				// whatever came before it (the ring's one filled set
				// is not a foreign kind the cap is for).
				rest, keptFilled = append(rest, c), true
			}
		case KindSwitches:
			// Unreadable: the defaults, as if never set.
			swSet = sw.UnmarshalBinary(c.Data) == nil
		default:
			// Kinds of a newer version ride on unchanged, up to a few:
			// more would crowd the token, and only a forger sends
			// hundreds (ring.MaxHolderCarriages bounds the whole turn).
			if len(rest) < MaxForeignCarriages {
				rest = append(rest, c)
			}
		}
	}
	if loads == nil {
		loads = Load{}
	}
	self := vipstate.Node(t.Self)
	member := slices.Contains(t.Members, t.Self)
	before := table.OwnedBy(self) // before operator actions and Step
	if member && t.Local.Load != nil {
		var mine Load
		if mine.UnmarshalBinary(t.Local.Load) == nil {
			for vip, rate := range mine {
				if table.Owner(vip) == self {
					loads[vip] = rate
				}
			}
		}
	}
	// The core hands proposals over only to a member of a ring with
	// quorum (ring.TokenView.Proposals).
	var results []ring.Result
	epochBefore := epoch.Epoch
	for _, p := range t.Proposals {
		var err error
		switch {
		case p.Kind == ProposeSwitch:
			var o SwitchOp
			if err = o.UnmarshalBinary(p.Data); err == nil {
				if !swSet {
					sw = h.cfg.defaultSwitches(epoch, haveEpoch)
				}
				sw, swSet = o.apply(sw), true
			}
		case (p.Kind == ProposeConfig || p.Kind == ProposeFile) && epochRaw != nil:
			err = errors.New("the config epoch on the token does not decode")
		case p.Kind == ProposeConfig:
			if epoch, table, err = applyConfig(p, t.Self, epoch, haveEpoch, table); err == nil {
				haveEpoch = true
			}
		case p.Kind == ProposeFile:
			if len(p.Data) != 1+FileHashLen || p.Data[0] != 1 {
				err = fmt.Errorf("%w: file hash of %d bytes", errProposal, len(p.Data))
				break
			}
			epoch.Files = withFile(epoch.Files, FileHash{Node: t.Self, Hash: [FileHashLen]byte(p.Data[1:])})
			haveEpoch = true
		default:
			table, closed, err = applyProposal(p, table, closed)
		}
		r := ring.Result{ID: p.ID}
		if err != nil {
			r.Err = err.Error()
		}
		results = append(results, r)
	}
	auto := !swSet || sw.Auto // AUTO is on until an operator turns it off
	if member {
		// AUTO off: a node whose monitors recover waits for an operator.
		if !auto && !t.Local.Unhealthy && slices.Contains(unhealthy, self) {
			closed = closed.with(self, true)
		}
		unhealthy = unhealthy.with(self, t.Local.Unhealthy)
		if writeFilled {
			filled = filled.with(self, !h.cfg.Filling())
		}
	}
	// AUTO off: nodes that come back to a running ring (restarted,
	// recovered from a cut, dropped as slow) are closed until an operator
	// opens them.
	if !auto && t.Carriages != nil {
		for _, n := range comingBack(t.Members, t.Joined) {
			closed = closed.with(vipstate.Node(n), true)
		}
	}
	// A mark is its node's own word; a node that left the ring marks itself
	// again at its first turn after it rejoins.
	gone := func(n vipstate.Node) bool { return !slices.Contains(t.Members, ring.NodeID(n)) }
	unhealthy, filled = slices.DeleteFunc(unhealthy, gone), slices.DeleteFunc(filled, gone)
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
	balance := h.cfg.Balance
	if haveEpoch {
		if epoch.Epoch > 0 {
			balance = epoch.Balance
		}
		epoch = epoch.carried(t.Members, t.Self, epoch.Epoch != epochBefore)
	}
	// L.BAL, once an operator set it, wins over the configured balancing.
	if swSet {
		balance.Enabled = sw.Balance
	}
	in := vipstate.Input{Self: self, Live: live, Closed: out, Balance: balance}
	if len(loads) > 0 {
		in.VIPLoad = loads
	}
	table, _ = table.Step(in)
	urgent := false
	if member {
		for _, vip := range before {
			if o := table.Owner(vip); o != self && o != vipstate.None {
				urgent = true
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
		return ring.Turn{Carriages: t.Carriages, Results: refuseAll(t.Proposals, "the VIP table does not encode: "+err.Error())}
	}
	cs := make([]ring.Carriage, 0, 7+len(rest))
	cs = append(cs, ring.Carriage{Kind: KindVIPTable, Data: tb})
	switch {
	case epochRaw != nil:
		cs = append(cs, ring.Carriage{Kind: KindConfigEpoch, Data: epochRaw})
	case haveEpoch:
		eb, err := epoch.MarshalBinary()
		if err != nil {
			return ring.Turn{Carriages: t.Carriages, Results: refuseAll(t.Proposals, "the config epoch does not encode: "+err.Error())}
		}
		cs = append(cs, ring.Carriage{Kind: KindConfigEpoch, Data: eb})
	}
	if len(loads) > 0 {
		lb, _ := loads.MarshalBinary()
		cs = append(cs, ring.Carriage{Kind: KindLoad, Data: lb})
	}
	for _, set := range []struct {
		kind uint16
		ns   NodeSet
	}{{KindClosedNodes, closed}, {KindUnhealthyNodes, unhealthy}, {KindFilledNodes, filled}} {
		if len(set.ns) > 0 {
			if b, err := set.ns.MarshalBinary(); err == nil {
				cs = append(cs, ring.Carriage{Kind: set.kind, Data: b})
			}
		}
	}
	if swSet {
		b, _ := sw.MarshalBinary()
		cs = append(cs, ring.Carriage{Kind: KindSwitches, Data: b})
	}
	return ring.Turn{Carriages: append(cs, rest...), Urgent: urgent, Results: results}
}

// comingBack returns the nodes that came back to the ring in a join: the
// smaller side of it. A join looks the same from both sides (a node cut off
// and healed sees the others join it, they see it join them), so the
// holder compares the members it saw join with those it already had; the
// fewer are the ones coming back, seen alike from either side. Equal sides
// are ambiguous, and nobody is closed: serving beats not serving.
func comingBack(members, joined []ring.NodeID) []ring.NodeID {
	var in, stayed []ring.NodeID
	for _, m := range members {
		if slices.Contains(joined, m) {
			in = append(in, m)
		} else {
			stayed = append(stayed, m)
		}
	}
	switch {
	case len(in) == 0 || len(in) == len(stayed):
		return nil
	case len(in) < len(stayed):
		return in
	}
	return stayed
}

// defaultSwitches are the switches of a ring whose token carries none:
// balancing as configured (by the config epoch, once there is one), AUTO
// on.
func (cfg Config) defaultSwitches(e Epoch, haveEpoch bool) Switches {
	if haveEpoch && e.Epoch > 0 { // epoch 0 carries only file hashes
		return Switches{Balance: e.Balance.Enabled, Auto: true}
	}
	return Switches{Balance: cfg.Balance.Enabled, Auto: true}
}

// Switches returns the switches carriages cs carry, or the defaults of a
// Holder with cfg.
func (cfg Config) Switches(cs []ring.Carriage) Switches {
	e, ok := CurrentEpoch(cs)
	return switchesIn(cs, cfg.defaultSwitches(e, ok))
}

// carriage returns the data of the carriage of kind in cs.
func carriage(cs []ring.Carriage, kind uint16) ([]byte, bool) {
	for _, c := range cs {
		if c.Kind == kind {
			return c.Data, true
		}
	}
	return nil, false
}

// refuseAll answers every proposal with the same refusal.
func refuseAll(ps []ring.Proposal, why string) []ring.Result {
	var rs []ring.Result
	for _, p := range ps {
		rs = append(rs, ring.Result{ID: p.ID, Err: why})
	}
	return rs
}

// Table decodes the VIP table carried in cs; ok is false when there is none.
func Table(cs []ring.Carriage) (t vipstate.Table, ok bool, err error) {
	b, found := carriage(cs, KindVIPTable)
	if !found {
		return t, false, nil
	}
	err = t.UnmarshalBinary(b)
	return t, err == nil, err
}

// Loads returns the per-VIP load carried in cs (bytes/s, as each VIP's
// owner measured it); empty when there is none or it does not decode.
func Loads(cs []ring.Carriage) Load {
	var l Load
	if b, ok := carriage(cs, KindLoad); ok {
		_ = l.UnmarshalBinary(b) // unreadable: no load
	}
	return l
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
