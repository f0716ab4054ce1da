package node

import (
	"net/netip"
	"sync"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// adminOp is an operator's VIP operation waiting for this node's next turn
// with the token: only the holder may change the table (DESIGN.md).
type adminOp struct {
	op   string // move, prefer, unprefer, stick, unstick, close, open
	vip  netip.Addr
	to   vipstate.Node
	done func(error) // called once, from the ring goroutine
}

// holder is the node's ring.Holder: it applies queued admin operations to the
// VIP table, then hands the token to ringstate's policies.
type holder struct {
	inner *ringstate.Holder

	mu      sync.Mutex
	pending []adminOp
}

var _ ring.Holder = (*holder)(nil)

func (h *holder) enqueue(op adminOp) {
	h.mu.Lock()
	h.pending = append(h.pending, op)
	h.mu.Unlock()
}

func (h *holder) OnToken(t ring.TokenView) []ring.Carriage {
	h.mu.Lock()
	ops := h.pending
	h.pending = nil
	h.mu.Unlock()
	if len(ops) > 0 {
		t.Carriages = applyAdmin(t.Carriages, ops)
	}
	return h.inner.OnToken(t)
}

// applyAdmin applies ops in order to the VIP table carriage. An op that fails
// (the table changed under it, e.g. the VIP was closed meanwhile) reports its
// error and changes nothing.
func applyAdmin(cs []ring.Carriage, ops []adminOp) []ring.Carriage {
	idx := -1
	for i, c := range cs {
		if c.Kind == ringstate.KindVIPTable {
			idx = i
		}
	}
	var table vipstate.Table
	if idx < 0 || table.UnmarshalBinary(cs[idx].Data) != nil {
		// A cold ring has no table yet: report it; the operator retries.
		for _, op := range ops {
			op.done(errNoTable)
		}
		return cs
	}
	for _, op := range ops {
		next, err := applyOne(table, op)
		if err == nil {
			table = next
		}
		op.done(err)
	}
	data, err := table.MarshalBinary()
	if err != nil {
		return cs
	}
	out := append([]ring.Carriage(nil), cs...)
	out[idx] = ring.Carriage{Kind: ringstate.KindVIPTable, Data: data}
	return out
}

func applyOne(t vipstate.Table, op adminOp) (vipstate.Table, error) {
	switch op.op {
	case "move":
		return t.Move(op.vip, op.to)
	case "prefer":
		return t.Prefer(op.vip)
	case "unprefer":
		return t.Unprefer(op.vip)
	case "stick":
		return t.Stick(op.vip)
	case "unstick":
		return t.Unstick(op.vip)
	case "close":
		return t.Close(op.vip)
	case "open":
		return t.Open(op.vip)
	}
	return t, errUnknownOp
}
