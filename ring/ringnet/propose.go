package ringnet

import (
	"context"
	"errors"

	"github.com/ringway/ringway/ring"
)

// Proposer is implemented by a core that takes proposals and this node's
// own measurements as inputs (*ring.Node): see ring.Node.Propose and
// ring.Node.SetLocal.
type Proposer interface {
	Propose(kind uint16, data []byte) (uint64, error)
	SetLocal(l ring.Local)
}

var errNoProposer = errors.New("ringnet: the core takes no proposals")

// Propose hands the core a proposal, serialised with every other input
// (see Do), and returns its ID; the core's answer arrives later on
// Events() as a ring.EventApplied or ring.EventRefused with that ID. It
// returns the core's error (ring.ErrProposalsFull, ring.ErrLeft), or Do's.
func (d *Driver) Propose(ctx context.Context, kind uint16, data []byte) (uint64, error) {
	p, ok := d.core.(Proposer)
	if !ok {
		return 0, errNoProposer
	}
	var id uint64
	var err error
	if derr := d.Do(ctx, func(Core) { id, err = p.Propose(kind, data) }); derr != nil {
		return 0, derr
	}
	return id, err
}

// SetLocal replaces what the core says of this node on the token (its
// health and load), serialised with every other input (see Do).
func (d *Driver) SetLocal(ctx context.Context, l ring.Local) error {
	p, ok := d.core.(Proposer)
	if !ok {
		return errNoProposer
	}
	return d.Do(ctx, func(Core) { p.SetLocal(l) })
}
