package mgmt

import (
	"context"
	"fmt"
	"net/http"
	"slices"
)

// SwitchNames are the switches POST /api/v1/switches/{switch}/{on|off}
// accepts.
var SwitchNames = []string{"balance", "auto"}

// SwitchOp turns a cluster switch on or off, cluster-wide through the
// token.
type SwitchOp struct {
	Switch string // one of SwitchNames
	On     bool
}

// Validate says what is wrong with op, if anything.
func (op SwitchOp) Validate() error {
	if !slices.Contains(SwitchNames, op.Switch) {
		return fmt.Errorf("unknown switch %q: want one of %v", op.Switch, SwitchNames)
	}
	return nil
}

// SwitchBackend is a Backend that also sets the cluster's switches.
type SwitchBackend interface {
	// Switch queues op like Backend.Node and returns its operation id
	// (OpQueuer).
	Switch(op SwitchOp) (uint64, error)
}

func (s *Server) switchOp(w http.ResponseWriter, r *http.Request) {
	b, ok := s.backend.(SwitchBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this node does not set switches")
		return
	}
	st := r.PathValue("state")
	if st != "on" && st != "off" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("switch state %q: want on or off", st))
		return
	}
	op := SwitchOp{Switch: r.PathValue("switch"), On: st == "on"}
	s.queue(w, r, op.Validate, func() (uint64, error) { return b.Switch(op) },
		"switch queued", "switch", op.Switch, "on", op.On)
}

// Switch turns a cluster switch on or off.
func (c *Client) Switch(ctx context.Context, op SwitchOp) error {
	if err := op.Validate(); err != nil {
		return err
	}
	state := "off"
	if op.On {
		state = "on"
	}
	return c.do(ctx, http.MethodPost, "/api/v1/switches/"+op.Switch+"/"+state, nil, nil)
}
