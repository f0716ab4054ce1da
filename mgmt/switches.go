package mgmt

import (
	"context"
	"fmt"
	"net/http"
	"slices"
)

// Switches are the cluster's run-time switches an operator may set:
// balancing (L.BAL: load balancing may move VIPs) and auto (AUTO: a node
// that joins or recovers takes VIPs by itself; off, it is closed until an
// operator opens it). They ride on the token, so one request at any node
// sets them for the whole cluster.
var Switches = []string{"balancing", "auto"}

// SwitchSettings are the values a switch may be set to; "default" returns
// it to the configuration's value.
var SwitchSettings = []string{"on", "off", "default"}

// SwitchOp sets one switch: POST /api/v1/switches/{switch}/{setting}.
type SwitchOp struct {
	Switch string // one of Switches
	To     string // one of SwitchSettings
}

// Validate says what is wrong with op, if anything.
func (op SwitchOp) Validate() error {
	switch {
	case !slices.Contains(Switches, op.Switch):
		return fmt.Errorf("unknown switch %q: want one of %v", op.Switch, Switches)
	case !slices.Contains(SwitchSettings, op.To):
		return fmt.Errorf("switch %s: unknown setting %q: want one of %v", op.Switch, op.To, SwitchSettings)
	}
	return nil
}

// Switcher is a Backend that sets run-time switches; the API answers 501
// for one that does not.
type Switcher interface {
	QueueSwitch(op SwitchOp) (uint64, error)
}

func (s *Server) setSwitch(w http.ResponseWriter, r *http.Request) {
	op := SwitchOp{Switch: r.PathValue("switch"), To: r.PathValue("setting")}
	sw, ok := s.backend.(Switcher)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this node sets no switches")
		return
	}
	s.queue(w, r, op.Validate, func() (uint64, error) { return sw.QueueSwitch(op) },
		"switch queued", "switch", op.Switch, "to", op.To)
}

// Switch sends op; nil means the node queued it.
func (c *Client) Switch(ctx context.Context, op SwitchOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/api/v1/switches/"+op.Switch+"/"+op.To, nil, nil)
}
