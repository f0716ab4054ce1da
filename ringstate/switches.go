package ringstate

import (
	"fmt"
	"io"
	"slices"

	"github.com/ringway/ringway/ring"
)

// KindSwitches is the carriage of the cluster's run-time switches
// (Switches). Kind 3 is the config epoch's.
const KindSwitches uint16 = 6

// ProposeSwitch is the proposal kind of a SwitchOp (the same number as its
// carriage, so it cannot collide with the config epoch's proposals).
const ProposeSwitch uint16 = 6

// Setting is one run-time switch's value: as configured, or set on or off
// by an operator for the whole cluster.
type Setting uint8

// Settings.
const (
	AsConfigured Setting = iota
	On
	Off
)

func (s Setting) String() string {
	switch s {
	case AsConfigured:
		return "as configured"
	case On:
		return "on"
	case Off:
		return "off"
	}
	return fmt.Sprintf("setting(%d)", uint8(s))
}

// Resolve returns the setting's value given the configured one.
func (s Setting) Resolve(configured bool) bool {
	switch s {
	case On:
		return true
	case Off:
		return false
	}
	return configured
}

// Switches is carriage kind 6: what operators switched at run time, for
// the whole cluster (the patent console's L.BAL and AUTO buttons). Every
// holder reads it at its turn, so a switch takes effect cluster-wide within
// one rotation and survives any node's restart (it rides on the token).
//
//	version u8 (1) | balancing u8 | auto u8   (each a Setting)
//
// Balancing (L.BAL): load balancing may move VIPs. Auto (AUTO): a node that
// comes back to the ring or becomes healthy again receives VIPs by itself;
// when off, such a node is closed (as `ringway node close`) and waits for
// an operator to open it: the holder closes a member whose monitors pass
// again, a node that rejoins closes itself.
type Switches struct {
	Balancing Setting
	Auto      Setting
}

const switchesLen = 3

// MarshalBinary encodes s.
func (s Switches) MarshalBinary() ([]byte, error) {
	if s.Balancing > Off || s.Auto > Off {
		return nil, fmt.Errorf("ringstate: switches %d %d out of range", s.Balancing, s.Auto)
	}
	return []byte{1, byte(s.Balancing), byte(s.Auto)}, nil
}

// UnmarshalBinary decodes Switches, replacing *s; it accepts exactly what
// MarshalBinary writes.
func (s *Switches) UnmarshalBinary(b []byte) error {
	if len(b) < switchesLen {
		return io.ErrUnexpectedEOF
	}
	if len(b) > switchesLen || b[0] != 1 || b[1] > byte(Off) || b[2] > byte(Off) {
		return fmt.Errorf("ringstate: malformed switches % x", b)
	}
	*s = Switches{Balancing: Setting(b[1]), Auto: Setting(b[2])}
	return nil
}

// SwitchesOf decodes the switches carried in cs; none (or unreadable)
// means everything as configured.
func SwitchesOf(cs []ring.Carriage) Switches {
	var s Switches
	for _, c := range cs {
		if c.Kind == KindSwitches {
			if s.UnmarshalBinary(c.Data) != nil {
				return Switches{}
			}
		}
	}
	return s
}

// Switch names a run-time switch.
type Switch uint8

// Switches an operator may set.
const (
	SwitchBalancing Switch = iota + 1
	SwitchAuto
)

// ParseSwitch returns the switch named s: "balancing" (or "lbal") or
// "auto".
func ParseSwitch(s string) (Switch, error) {
	switch s {
	case "balancing", "lbal", "l.bal":
		return SwitchBalancing, nil
	case "auto":
		return SwitchAuto, nil
	}
	return 0, fmt.Errorf("unknown switch %q (balancing or auto)", s)
}

func (w Switch) String() string {
	switch w {
	case SwitchBalancing:
		return "balancing"
	case SwitchAuto:
		return "auto"
	}
	return fmt.Sprintf("switch(%d)", uint8(w))
}

// SwitchOp sets one switch: proposal kind ProposeSwitch.
//
//	version u8 (1) | switch u8 | setting u8
type SwitchOp struct {
	Switch Switch
	To     Setting
}

// MarshalBinary encodes o.
func (o SwitchOp) MarshalBinary() ([]byte, error) {
	if o.Switch < SwitchBalancing || o.Switch > SwitchAuto || o.To > Off {
		return nil, fmt.Errorf("ringstate: switch operation %d %d out of range", o.Switch, o.To)
	}
	return []byte{1, byte(o.Switch), byte(o.To)}, nil
}

// UnmarshalBinary decodes a SwitchOp, replacing *o.
func (o *SwitchOp) UnmarshalBinary(b []byte) error {
	if len(b) < 3 {
		return io.ErrUnexpectedEOF
	}
	v := SwitchOp{Switch: Switch(b[1]), To: Setting(b[2])}
	if _, err := v.MarshalBinary(); len(b) > 3 || b[0] != 1 || err != nil {
		return fmt.Errorf("%w: switch operation % x", errProposal, b)
	}
	*o = v
	return nil
}

// apply returns s with o applied.
func (o SwitchOp) apply(s Switches) Switches {
	switch o.Switch {
	case SwitchBalancing:
		s.Balancing = o.To
	case SwitchAuto:
		s.Auto = o.To
	}
	return s
}

// ProposeSwitchOp encodes a switch operation as a ring proposal.
func ProposeSwitchOp(o SwitchOp) (kind uint16, data []byte, err error) {
	data, err = o.MarshalBinary()
	return ProposeSwitch, data, err
}

// autoClose closes, when AUTO is off, the members that became healthy
// again (were in the unhealthy set before, not after), so they take no
// VIPs until an operator opens them. A node that comes back to the ring
// (a restart, a healed cut) closes itself: only it can tell that it was
// away (at a merge each side sees the other as joined), so the node
// proposes that (node/console.go), not the holder.
func (s Switches) autoClose(closed NodeSet, t ring.TokenView, before, after NodeSet) NodeSet {
	if s.Auto != Off {
		return closed
	}
	for _, n := range before {
		if !slices.Contains(after, n) && slices.Contains(t.Members, ring.NodeID(n)) {
			closed = closed.with(n, true)
		}
	}
	return closed
}
