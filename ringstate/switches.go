package ringstate

import (
	"errors"
	"fmt"
	"io"

	"github.com/ringway/ringway/ring"
)

// KindSwitches is carriage kind 6: the cluster's runtime switches, the
// patent's L.BAL and AUTO options (Figure 12, 1222 and 1224). Absent means
// the configured defaults (Config.Switches).
const KindSwitches uint16 = 6

// ProposeSwitch is the proposal kind of a SwitchOp.
const ProposeSwitch uint16 = 4

// Switches are the cluster-wide runtime switches. Both are on by default,
// as in the patent.
type Switches struct {
	// Balance (L.BAL): dynamic load balancing moves VIPs from busy nodes
	// to idle ones. Off: only fail-over, preference and operators move
	// VIPs.
	Balance bool
	// Auto (AUTO, automatic rejoin): a node that joins the ring, or whose
	// monitors recover, receives VIPs by itself. Off: such a node is
	// closed (as by `ringway node close`) and receives nothing until an
	// operator opens it.
	Auto bool
}

// DefaultSwitches are the patent's defaults: both on.
func DefaultSwitches() Switches { return Switches{Balance: true, Auto: true} }

// The carriage and the proposal:
//
//	carriage: version u8 (1) | flags u8 (bit 0 balance, bit 1 auto; others 0)
//	proposal: version u8 (1) | switch u8 (1 balance, 2 auto) | on u8 (0, 1)
const (
	switchBalance = 1 << 0
	switchAuto    = 1 << 1
)

var errSwitches = errors.New("ringstate: malformed switches")

// MarshalBinary encodes s.
func (s Switches) MarshalBinary() ([]byte, error) {
	var f byte
	if s.Balance {
		f |= switchBalance
	}
	if s.Auto {
		f |= switchAuto
	}
	return []byte{1, f}, nil
}

// UnmarshalBinary decodes Switches, replacing *s; it accepts exactly what
// MarshalBinary writes.
func (s *Switches) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return io.ErrUnexpectedEOF
	}
	if len(b) > 2 || b[0] != 1 || b[1]&^(switchBalance|switchAuto) != 0 {
		return fmt.Errorf("%w: % x", errSwitches, b)
	}
	*s = Switches{Balance: b[1]&switchBalance != 0, Auto: b[1]&switchAuto != 0}
	return nil
}

// Switch names one switch.
type Switch uint8

// The switches.
const (
	SwitchBalance Switch = 1 // L.BAL
	SwitchAuto    Switch = 2 // AUTO
)

func (w Switch) String() string {
	switch w {
	case SwitchBalance:
		return "balance"
	case SwitchAuto:
		return "auto"
	}
	return fmt.Sprintf("switch(%d)", uint8(w))
}

// ParseSwitch returns the switch named s: "balance" or "auto".
func ParseSwitch(s string) (Switch, error) {
	for _, w := range []Switch{SwitchBalance, SwitchAuto} {
		if w.String() == s {
			return w, nil
		}
	}
	return 0, fmt.Errorf("unknown switch %q (balance or auto)", s)
}

// SwitchOp turns one switch on or off: proposal kind ProposeSwitch
// (`ringway cluster balance|auto on|off`).
type SwitchOp struct {
	Switch Switch
	On     bool
}

// MarshalBinary encodes o.
func (o SwitchOp) MarshalBinary() ([]byte, error) {
	if o.Switch != SwitchBalance && o.Switch != SwitchAuto {
		return nil, fmt.Errorf("ringstate: %v", o.Switch)
	}
	b := []byte{1, byte(o.Switch), 0}
	if o.On {
		b[2] = 1
	}
	return b, nil
}

// UnmarshalBinary decodes a SwitchOp, replacing *o; it accepts exactly
// what MarshalBinary writes.
func (o *SwitchOp) UnmarshalBinary(b []byte) error {
	if len(b) < 3 {
		return io.ErrUnexpectedEOF
	}
	if len(b) > 3 || b[0] != 1 || b[2] > 1 {
		return fmt.Errorf("%w: operation % x", errSwitches, b)
	}
	v := SwitchOp{Switch: Switch(b[1]), On: b[2] == 1}
	if _, err := v.MarshalBinary(); err != nil {
		return fmt.Errorf("%w: %v", errSwitches, err)
	}
	*o = v
	return nil
}

func (o SwitchOp) apply(s Switches) Switches {
	switch o.Switch {
	case SwitchBalance:
		s.Balance = o.On
	case SwitchAuto:
		s.Auto = o.On
	}
	return s
}

// ProposeSwitchOp encodes a switch operation as a ring proposal.
func ProposeSwitchOp(o SwitchOp) (kind uint16, data []byte, err error) {
	data, err = o.MarshalBinary()
	return ProposeSwitch, data, err
}

// switchesIn returns the switches carried in cs, or def when cs carries
// none or an unreadable one.
func switchesIn(cs []ring.Carriage, def Switches) Switches {
	var s Switches
	if b, ok := carriage(cs, KindSwitches); ok && s.UnmarshalBinary(b) == nil {
		return s
	}
	return def
}
