package ringstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/vipstate"
)

// Proposal kinds (ring.Proposal.Kind): the operator's operations, proposed
// at the node that received them (ring.Node.Propose) and applied by its
// Holder at its next turn as a member of a ring with quorum. Any member may
// apply them: an operation only records intent, and a VIP moves at its
// owner's turn (vipstate's rule).
const (
	ProposeVIP  uint16 = 1 // a VIPOp
	ProposeNode uint16 = 2 // a NodeOp
)

// VIPAction is what a VIPOp does to its VIP (`ringway vip ...`).
type VIPAction uint8

// VIP actions.
const (
	VIPMove     VIPAction = iota + 1 // move to Node and prefer it there
	VIPPrefer                        // prefer the current owner
	VIPUnprefer                      // clear the preference
	VIPStick                         // persistence current
	VIPUnstick                       // persistence none
	VIPClose                         // answered by nobody
	VIPOpen                          // answered again
)

var vipActionNames = [...]string{
	VIPMove: "move", VIPPrefer: "prefer", VIPUnprefer: "unprefer", VIPStick: "stick",
	VIPUnstick: "unstick", VIPClose: "close", VIPOpen: "open",
}

func (a VIPAction) String() string {
	if int(a) < len(vipActionNames) && vipActionNames[a] != "" {
		return vipActionNames[a]
	}
	return fmt.Sprintf("vip-action(%d)", uint8(a))
}

// ParseVIPAction returns the action named s ("move", "prefer", ...).
func ParseVIPAction(s string) (VIPAction, error) {
	for a, name := range vipActionNames {
		if name != "" && name == s {
			return VIPAction(a), nil
		}
	}
	return 0, fmt.Errorf("unknown VIP operation %q (move, prefer, unprefer, stick, unstick, close or open)", s)
}

// VIPOp is an operator's operation on one VIP: proposal kind ProposeVIP.
//
//	version u8 (1) | action u8 | vip [4]byte | node u16 (VIPMove only, else 0)
type VIPOp struct {
	Action VIPAction
	VIP    netip.Addr
	Node   vipstate.Node // VIPMove's destination
}

const vipOpLen = 8

var errProposal = errors.New("ringstate: malformed proposal")

// MarshalBinary encodes o.
func (o VIPOp) MarshalBinary() ([]byte, error) {
	if o.Action < VIPMove || o.Action > VIPOpen {
		return nil, fmt.Errorf("ringstate: VIP operation %v", o.Action)
	}
	if !o.VIP.Is4() {
		return nil, fmt.Errorf("ringstate: VIP operation on %v: only IPv4 VIPs", o.VIP)
	}
	if (o.Action == VIPMove) != (o.Node != vipstate.None) || int(o.Node) > vipstate.MaxNodes {
		return nil, fmt.Errorf("ringstate: VIP operation %v with node %d", o.Action, o.Node)
	}
	a := o.VIP.As4()
	b := []byte{1, byte(o.Action), a[0], a[1], a[2], a[3]}
	return binary.BigEndian.AppendUint16(b, uint16(o.Node)), nil
}

// UnmarshalBinary decodes a VIPOp, replacing *o; it accepts exactly what
// MarshalBinary writes.
func (o *VIPOp) UnmarshalBinary(b []byte) error {
	if len(b) < vipOpLen {
		return io.ErrUnexpectedEOF
	}
	if len(b) > vipOpLen || b[0] != 1 {
		return fmt.Errorf("%w: VIP operation of %d bytes, version %d", errProposal, len(b), b[0])
	}
	v := VIPOp{Action: VIPAction(b[1]), VIP: netip.AddrFrom4([4]byte(b[2:6])), Node: vipstate.Node(binary.BigEndian.Uint16(b[6:]))}
	if _, err := v.MarshalBinary(); err != nil {
		return fmt.Errorf("%w: %v", errProposal, err)
	}
	*o = v
	return nil
}

// apply returns t with o applied.
func (o VIPOp) apply(t vipstate.Table) (vipstate.Table, error) {
	switch o.Action {
	case VIPMove:
		return t.Move(o.VIP, o.Node)
	case VIPPrefer:
		return t.Prefer(o.VIP)
	case VIPUnprefer:
		return t.Unprefer(o.VIP)
	case VIPStick:
		return t.Stick(o.VIP)
	case VIPUnstick:
		return t.Unstick(o.VIP)
	case VIPClose:
		return t.Close(o.VIP)
	case VIPOpen:
		return t.Open(o.VIP)
	}
	return t, fmt.Errorf("unknown VIP operation %v", o.Action)
}

// NodeOp closes or opens a node (`ringway node close|open`): proposal kind
// ProposeNode. A closed node stays in the ring but hands its VIPs over at
// its next turn and receives none until opened.
//
//	version u8 (1) | node u16 | close u8 (0 open, 1 close)
type NodeOp struct {
	Node  vipstate.Node
	Close bool
}

const nodeOpLen = 4

// MarshalBinary encodes o.
func (o NodeOp) MarshalBinary() ([]byte, error) {
	if o.Node == vipstate.None || int(o.Node) > vipstate.MaxNodes {
		return nil, fmt.Errorf("ringstate: node operation on node %d, outside 1..%d", o.Node, vipstate.MaxNodes)
	}
	b := binary.BigEndian.AppendUint16([]byte{1}, uint16(o.Node))
	if o.Close {
		return append(b, 1), nil
	}
	return append(b, 0), nil
}

// UnmarshalBinary decodes a NodeOp, replacing *o; it accepts exactly what
// MarshalBinary writes.
func (o *NodeOp) UnmarshalBinary(b []byte) error {
	if len(b) < nodeOpLen {
		return io.ErrUnexpectedEOF
	}
	if len(b) > nodeOpLen || b[0] != 1 || b[3] > 1 {
		return fmt.Errorf("%w: node operation % x", errProposal, b)
	}
	v := NodeOp{Node: vipstate.Node(binary.BigEndian.Uint16(b[1:])), Close: b[3] == 1}
	if _, err := v.MarshalBinary(); err != nil {
		return fmt.Errorf("%w: %v", errProposal, err)
	}
	*o = v
	return nil
}

// applyProposal applies one proposal to the table or the closed set.
func applyProposal(p ring.Proposal, t vipstate.Table, closed NodeSet) (vipstate.Table, NodeSet, error) {
	switch p.Kind {
	case ProposeVIP:
		var o VIPOp
		if err := o.UnmarshalBinary(p.Data); err != nil {
			return t, closed, err
		}
		nt, err := o.apply(t)
		if err != nil {
			return t, closed, err
		}
		return nt, closed, nil
	case ProposeNode:
		var o NodeOp
		if err := o.UnmarshalBinary(p.Data); err != nil {
			return t, closed, err
		}
		return t, closed.with(o.Node, o.Close), nil
	}
	return t, closed, fmt.Errorf("%w: unknown kind %d", errProposal, p.Kind)
}

// ProposeVIPOp and ProposeNodeOp encode an operation as a ring proposal.
func ProposeVIPOp(o VIPOp) (kind uint16, data []byte, err error) {
	data, err = o.MarshalBinary()
	return ProposeVIP, data, err
}

// ProposeNodeOp encodes a node operation as a ring proposal.
func ProposeNodeOp(o NodeOp) (kind uint16, data []byte, err error) {
	data, err = o.MarshalBinary()
	return ProposeNode, data, err
}
