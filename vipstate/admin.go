package vipstate

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors the admin operations return; the management API maps them to
// "not found" and "bad request".
var (
	// ErrUnknownVIP: the table holds no such VIP.
	ErrUnknownVIP = errors.New("vipstate: unknown VIP")
	// ErrUnknownNode: the node is None or not in the node map.
	ErrUnknownNode = errors.New("vipstate: unknown node")
	// ErrNoHost: the operation needs the VIP's current host and it has none
	// (closed, or not placed yet).
	ErrNoHost = errors.New("vipstate: VIP has no current host")
)

// The admin operations are the patent's console actions (Figure 12). Each
// applies to the VIP's whole group, since a group moves as one, and returns a
// new table; the receiver is unchanged. They only record intent: the VIP
// actually moves in a later Step, at its current owner's turn, so the owner
// stops answering before the new one starts. The node applies them while it
// holds the token.

// Move is the console's drag and drop: the VIP (and its group) should live on
// node to. It sets Preferred = to and Persistence = PersistPreferred; the VIP
// moves when its current owner next holds the token (or at once, at any
// holder, if it has no live owner), and it stays there until to fails or the
// preference is removed (patent: "will be moved ... only if the preferred
// machine fails, or if the preference is removed by the user").
func (t Table) Move(vip netip.Addr, to Node) (Table, error) {
	if to == None || int(to) > t.nodes {
		return Table{}, fmt.Errorf("move %s to node %d: %w: the node map has nodes 1 to %d", vip, to, ErrUnknownNode, t.nodes)
	}
	return t.edit(vip, "move", func(r *Row) error {
		r.Preferred, r.Persistence = to, PersistPreferred
		return nil
	})
}

// Prefer makes the VIP's current host its preferred host (the console's
// right-click "set preference"): Preferred = Current, Persistence =
// PersistPreferred. It fails with ErrNoHost if the VIP has no host.
func (t Table) Prefer(vip netip.Addr) (Table, error) {
	return t.edit(vip, "prefer", func(r *Row) error {
		if r.Current == None {
			return fmt.Errorf("prefer %s: %w (closed or not yet placed): open it or use move to name a node", vip, ErrNoHost)
		}
		r.Preferred, r.Persistence = r.Current, PersistPreferred
		return nil
	})
}

// Unprefer removes the VIP's preference (the console's right-click "remove
// preference"): Preferred = None, Persistence = PersistNone. Load balancing
// may move it again.
func (t Table) Unprefer(vip netip.Addr) (Table, error) {
	return t.edit(vip, "unprefer", func(r *Row) error {
		r.Preferred, r.Persistence = None, PersistNone
		return nil
	})
}

// Stick makes the VIP sticky to its current host (persistence current): it
// leaves only if that host fails. Preferred is set to the current host
// (which may be None for a VIP not placed yet; it is set when it is placed).
func (t Table) Stick(vip netip.Addr) (Table, error) {
	return t.edit(vip, "stick", func(r *Row) error {
		r.Preferred, r.Persistence = r.Current, PersistCurrent
		return nil
	})
}

// Unstick sets persistence none, whatever it was; the preferred host is kept
// as a hint for placement only. Load balancing may move the VIP again.
func (t Table) Unstick(vip netip.Addr) (Table, error) {
	return t.edit(vip, "unstick", func(r *Row) error {
		r.Persistence = PersistNone
		return nil
	})
}

// Close closes the VIP (and its group): nobody answers it until Open. Its
// host is cleared at once; dropping a host never makes two nodes answer.
func (t Table) Close(vip netip.Addr) (Table, error) {
	return t.edit(vip, "close", func(r *Row) error {
		r.Closed, r.Current = true, None
		return nil
	})
}

// Open reopens a closed VIP (and its group). The next Step places it by the
// usual rules: its preferred host if live, else the node with fewest VIPs.
func (t Table) Open(vip netip.Addr) (Table, error) {
	return t.edit(vip, "open", func(r *Row) error {
		r.Closed = false
		return nil
	})
}

// edit applies f to every row of vip's unit in a copy of t.
func (t *Table) edit(vip netip.Addr, op string, f func(*Row) error) (Table, error) {
	i := t.Index(vip)
	if i < 0 {
		return Table{}, fmt.Errorf("%s %s: %w: list the table's VIPs with `ringway vip list`", op, vip, ErrUnknownVIP)
	}
	u := t.derive()
	var buf unitBuf
	for _, m := range u.members(i, &buf) {
		if err := f(&u.rows[m]); err != nil {
			return Table{}, err
		}
	}
	return u, nil
}
