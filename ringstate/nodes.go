package ringstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// ClosedNodes is carriage kind 4 (KindClosedNodes), the nodes an operator
// closed: they stay in the ring but answer no VIP until opened
// (`ringway node close`). Absent means none.
//
//	version u8 (1) | count uvarint | node uvarint × count, strictly increasing, 1..vipstate.MaxNodes
type ClosedNodes []vipstate.Node

// MarshalBinary encodes c, sorted (deterministic bytes).
func (c ClosedNodes) MarshalBinary() ([]byte, error) {
	s := slices.Clone(c)
	slices.Sort(s)
	s = slices.Compact(s)
	b := []byte{1}
	b = binary.AppendUvarint(b, uint64(len(s)))
	for _, n := range s {
		if n == vipstate.None || int(n) > vipstate.MaxNodes {
			return nil, fmt.Errorf("ringstate: closed node %d is outside 1..%d", n, vipstate.MaxNodes)
		}
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b, nil
}

var errClosedNodes = errors.New("ringstate: malformed closed-nodes carriage")

// UnmarshalBinary decodes a ClosedNodes, replacing *c.
func (c *ClosedNodes) UnmarshalBinary(b []byte) error {
	if len(b) < 1 {
		return io.ErrUnexpectedEOF
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: version %d", errClosedNodes, b[0])
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 {
		return fmt.Errorf("%w: count", errClosedNodes)
	}
	b = b[k:]
	if count > uint64(len(b)) || count > vipstate.MaxNodes {
		return fmt.Errorf("%w: %d nodes in %d bytes", errClosedNodes, count, len(b))
	}
	out := make(ClosedNodes, 0, count)
	for range count {
		v, k := binary.Uvarint(b)
		if k <= 0 || v == 0 || v > vipstate.MaxNodes || (len(out) > 0 && vipstate.Node(v) <= out[len(out)-1]) {
			return fmt.Errorf("%w: node %d", errClosedNodes, v)
		}
		out = append(out, vipstate.Node(v))
		b = b[k:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last node", errClosedNodes, len(b))
	}
	*c = out
	return nil
}

// Closed returns the nodes closed by an operator under carriages cs.
func Closed(cs []ring.Carriage) ClosedNodes {
	for _, c := range cs {
		if c.Kind == KindClosedNodes {
			var cn ClosedNodes
			if cn.UnmarshalBinary(c.Data) == nil {
				return cn
			}
		}
	}
	return nil
}

// NodeOp closes or opens a node (`ringway node close|open`): a closed node
// stays in the ring but hands its VIPs over at its next turn and receives
// none until opened. Done, if set, is called when the op was applied (by
// the next OnToken at which this node holds the token and is a member with
// quorum), never while the Holder's lock is held.
type NodeOp struct {
	Node  vipstate.Node
	Close bool
	Done  func()
}

// EnqueueNode queues a node operation for this node's next turn.
func (h *Holder) EnqueueNode(op NodeOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodeOps = append(h.nodeOps, op)
}

func (h *Holder) takeNodeOps() []NodeOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := h.nodeOps
	h.nodeOps = nil
	return ops
}

// applyNodeOps returns closed with the queued operations applied.
func (h *Holder) applyNodeOps(closed ClosedNodes) ClosedNodes {
	for _, op := range h.takeNodeOps() {
		i, found := slices.BinarySearch(closed, op.Node)
		switch {
		case op.Close && !found && op.Node != vipstate.None:
			closed = slices.Insert(slices.Clone(closed), i, op.Node)
		case !op.Close && found:
			closed = slices.Delete(slices.Clone(closed), i, i+1)
		}
		if op.Done != nil {
			op.Done()
		}
	}
	return closed
}
