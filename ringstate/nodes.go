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

// NodeSet is a set of nodes on the token: carriage kind 4
// (KindClosedNodes), the nodes an operator closed (`ringway node close`),
// and kind 5 (KindUnhealthyNodes), the nodes whose own monitors fail. Both
// stay in the ring but answer no VIP (vipstate.Input.Closed). Absent means
// empty.
//
//	version u8 (1) | count uvarint | node uvarint × count, strictly increasing, 1..vipstate.MaxNodes
type NodeSet []vipstate.Node

// MarshalBinary encodes c, sorted (deterministic bytes).
func (c NodeSet) MarshalBinary() ([]byte, error) {
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

// UnmarshalBinary decodes a NodeSet, replacing *c.
func (c *NodeSet) UnmarshalBinary(b []byte) error {
	if len(b) < 1 {
		return io.ErrUnexpectedEOF
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: version %d", errClosedNodes, b[0])
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(count) {
		return fmt.Errorf("%w: count", errClosedNodes)
	}
	b = b[k:]
	if count > uint64(len(b)) || count > vipstate.MaxNodes {
		return fmt.Errorf("%w: %d nodes in %d bytes", errClosedNodes, count, len(b))
	}
	out := make(NodeSet, 0, count)
	for range count {
		v, k := binary.Uvarint(b)
		if k <= 0 || k != uvarintLen(v) || v == 0 || v > vipstate.MaxNodes || (len(out) > 0 && vipstate.Node(v) <= out[len(out)-1]) {
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

// uvarintLen is the length of v's shortest uvarint: longer encodings of
// the same value are refused, so every set has one encoding.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// Closed returns the nodes closed by an operator under carriages cs.
func Closed(cs []ring.Carriage) NodeSet { return nodeSet(cs, KindClosedNodes) }

// Unhealthy returns the nodes whose monitors failed under carriages cs.
func Unhealthy(cs []ring.Carriage) NodeSet { return nodeSet(cs, KindUnhealthyNodes) }

func nodeSet(cs []ring.Carriage, kind uint16) NodeSet {
	var ns NodeSet
	if b, ok := carriage(cs, kind); ok && ns.UnmarshalBinary(b) == nil {
		return ns
	}
	return nil
}

// with returns s with n added (in) or removed (!in), sorted, without
// touching s's array.
func (s NodeSet) with(n vipstate.Node, in bool) NodeSet {
	i, found := slices.BinarySearch(s, n)
	switch {
	case in && !found && n != vipstate.None:
		return slices.Insert(slices.Clone(s), i, n)
	case !in && found:
		return slices.Delete(slices.Clone(s), i, i+1)
	}
	return s
}
