package vipstate

import (
	"fmt"
	"net/netip"
	"slices"
)

// Node is a gateway node: its 1-based position in the config's node map
// (docs/internals.md "Node identity"). The zero value, None, means "no node":
// an unowned VIP, or no preference.
type Node uint16

// None is the zero Node: nobody.
const None Node = 0

// MaxNodes is the largest node map a table accepts. Node numbers above it are
// rejected by New and UnmarshalBinary.
const MaxNodes = 1024

// MaxRows is the largest number of VIPs a table holds. UnmarshalBinary rejects
// a larger count before allocating anything.
const MaxRows = 1 << 16

// Persistence is the patent's Persistence Flag (Table 1): how a VIP is tied to
// a host. The numeric values are the patent's.
type Persistence uint8

const (
	// PersistNone (patent flag 0): not sticky; load balancing may move the VIP.
	// A Preferred host may still be recorded (patent Table 1, first row); it
	// is only a hint used when the VIP has to be placed anyway (fail-over,
	// start-up, open) and never moves the VIP by itself.
	PersistNone Persistence = 0
	// PersistCurrent (patent flag 1): sticky to its current host. Load
	// balancing never moves it. If the host fails it moves to a live node and
	// becomes sticky there; it stays when the old host recovers. Preferred is
	// set to Current whenever the VIP is placed or stuck (as in Table 1,
	// second row), so the row names the host it is sticky to.
	PersistCurrent Persistence = 1
	// PersistPreferred (patent flag 3): lives on its Preferred host whenever
	// that host is live; fails over when it dies; returns when it recovers.
	// Load balancing never moves it.
	PersistPreferred Persistence = 3
)

// String returns the config spelling: none, current or preferred.
func (p Persistence) String() string {
	switch p {
	case PersistNone:
		return "none"
	case PersistCurrent:
		return "current"
	case PersistPreferred:
		return "preferred"
	}
	return fmt.Sprintf("Persistence(%d)", uint8(p))
}

// ParsePersistence parses the config spelling (none, current, preferred).
func ParsePersistence(s string) (Persistence, error) {
	switch s {
	case "none":
		return PersistNone, nil
	case "current":
		return PersistCurrent, nil
	case "preferred":
		return PersistPreferred, nil
	}
	return 0, fmt.Errorf("persistence %q is not known; write none, current or preferred", s)
}

// MarshalText implements encoding.TextMarshaler (the config spelling).
func (p Persistence) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts none, current or preferred.
func (p *Persistence) UnmarshalText(b []byte) error {
	v, err := ParsePersistence(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Persistence) valid() bool {
	return p == PersistNone || p == PersistCurrent || p == PersistPreferred
}

// Row is one VIP of the table (patent Table 1, plus subnet, group and closed).
type Row struct {
	VIP         netip.Addr  // IPv4 virtual address
	Subnet      uint8       // index of the VIP's subnet in the config
	Current     Node        // the node answering for the VIP; None when closed or unplaced
	Preferred   Node        // the preferred host; None for no preference
	Persistence Persistence // see PersistNone, PersistCurrent, PersistPreferred
	Group       uint16      // VIPs sharing a non-zero group move as one; 0 = no group
	Closed      bool        // answered by nobody until opened
}

// Table is the cluster's VIP table: one Row per VIP, sorted by VIP. It rides
// on the token (MarshalBinary) and only the token holder changes it (Step and
// the admin methods), so changes never conflict.
//
// A Table is a value: Step and the admin methods return a new Table and never
// change the receiver, so an old table stays valid (the ring keeps the last
// one it sent). The zero Table is empty and valid.
type Table struct {
	nodes int   // size of the node map; every Node in rows is ≤ nodes
	rows  []Row // sorted by VIP, never mutated once the Table is built
	// The group index: head[g] is the first row (lowest VIP) of group g and
	// next[i] the row after row i in its group, wrapping around to the head;
	// nil without groups. Group membership never changes after New, so the
	// index is shared by every table derived from the first. Two slices
	// rather than a map: decoding a 4096-VIP table on every hop then costs
	// three allocations instead of thousands.
	head []int32
	next []int32

	// rotation counts token rotations: Step adds one whenever the holder is
	// the first live member in ring order. Balancing cooldowns are measured
	// against it.
	rotation uint64
	// balanceAt is the first rotation at which load balancing may move
	// something again (the hysteresis that keeps VIPs from flapping).
	balanceAt uint64
}

// New builds a table for a node map of nodes nodes from rows in any order.
// It checks that every VIP is an IPv4 address and unique, that nodes are
// within the node map, that persistence values are the patent's, that closed
// VIPs have no current host, and that each group is a set of VIPs on
// different subnets sharing one policy (current host, preference,
// persistence, closed).
func New(nodes int, rows []Row) (Table, error) {
	if nodes < 0 || nodes > MaxNodes {
		return Table{}, fmt.Errorf("vipstate: %d nodes: the node map must have 0 to %d nodes", nodes, MaxNodes)
	}
	if len(rows) > MaxRows {
		return Table{}, fmt.Errorf("vipstate: %d VIPs: at most %d are supported", len(rows), MaxRows)
	}
	t := Table{nodes: nodes, rows: slices.Clone(rows)}
	slices.SortFunc(t.rows, func(a, b Row) int { return a.VIP.Compare(b.VIP) })
	if err := t.init(); err != nil {
		return Table{}, err
	}
	return t, nil
}

// init validates t.rows (already sorted) and builds the group index.
func (t *Table) init() error {
	t.head, t.next = nil, nil
	var maxGroup uint16
	for i, r := range t.rows {
		if err := t.checkRow(r); err != nil {
			return err
		}
		if i > 0 && t.rows[i-1].VIP == r.VIP {
			return fmt.Errorf("vipstate: VIP %s appears twice: list each VIP once", r.VIP)
		}
		maxGroup = max(maxGroup, r.Group)
	}
	if maxGroup == 0 {
		return nil
	}
	t.head = make([]int32, int(maxGroup)+1)
	t.next = make([]int32, len(t.rows))
	for g := range t.head {
		t.head[g] = -1
	}
	// Push rows to the front of their group's list from the last to the
	// first, so each list is in VIP order; then close each list into a ring.
	for i := len(t.rows) - 1; i >= 0; i-- {
		g := t.rows[i].Group
		t.next[i] = -1
		if g != 0 {
			t.next[i] = t.head[g]
			t.head[g] = int32(i)
		}
	}
	for i, r := range t.rows {
		if r.Group == 0 {
			continue
		}
		if t.next[i] == -1 {
			t.next[i] = t.head[r.Group]
		}
		h := int(t.head[r.Group])
		if h == i {
			continue
		}
		if err := sameGroupPolicy(t.rows[h], r); err != nil {
			return err
		}
		for j := h; j != i; j = int(t.next[j]) {
			if t.rows[j].Subnet == r.Subnet {
				return fmt.Errorf("vipstate: group %d: %s and %s are both on subnet %d: a group holds at most one VIP per subnet",
					r.Group, t.rows[j].VIP, r.VIP, r.Subnet)
			}
		}
	}
	return nil
}

func (t *Table) checkRow(r Row) error {
	if !r.VIP.Is4() {
		return fmt.Errorf("vipstate: VIP %v: only IPv4 VIPs are supported", r.VIP)
	}
	if r.VIP.IsUnspecified() {
		return fmt.Errorf("vipstate: VIP %s: the unspecified address cannot be a VIP", r.VIP)
	}
	if int(r.Current) > t.nodes {
		return fmt.Errorf("vipstate: VIP %s: current host %d is not in the node map of %d nodes", r.VIP, r.Current, t.nodes)
	}
	if int(r.Preferred) > t.nodes {
		return fmt.Errorf("vipstate: VIP %s: preferred host %d is not in the node map of %d nodes", r.VIP, r.Preferred, t.nodes)
	}
	if !r.Persistence.valid() {
		return fmt.Errorf("vipstate: VIP %s: persistence %d: use 0 (none), 1 (current) or 3 (preferred)", r.VIP, r.Persistence)
	}
	if r.Persistence == PersistPreferred && r.Preferred == None {
		return fmt.Errorf("vipstate: VIP %s: persistence preferred needs a preferred host", r.VIP)
	}
	if r.Closed && r.Current != None {
		return fmt.Errorf("vipstate: VIP %s is closed but has current host %d: a closed VIP has no host", r.VIP, r.Current)
	}
	return nil
}

func sameGroupPolicy(a, b Row) error {
	switch {
	case a.Current != b.Current:
		return fmt.Errorf("vipstate: group %d: %s is on node %d but %s is on node %d: a group moves as one",
			a.Group, a.VIP, a.Current, b.VIP, b.Current)
	case a.Preferred != b.Preferred:
		return fmt.Errorf("vipstate: group %d: %s prefers node %d but %s prefers node %d: give every member of a group the same preference",
			a.Group, a.VIP, a.Preferred, b.VIP, b.Preferred)
	case a.Persistence != b.Persistence:
		return fmt.Errorf("vipstate: group %d: %s has persistence %s but %s has %s: give every member of a group the same persistence",
			a.Group, a.VIP, a.Persistence, b.VIP, b.Persistence)
	case a.Closed != b.Closed:
		return fmt.Errorf("vipstate: group %d: %s and %s differ in closed: open or close a group as a whole",
			a.Group, a.VIP, b.VIP)
	}
	return nil
}

// Nodes returns the size of the node map the table was built for.
func (t Table) Nodes() int { return t.nodes }

// Len returns the number of VIPs.
func (t Table) Len() int { return len(t.rows) }

// Rotation returns the number of token rotations Step has counted.
func (t Table) Rotation() uint64 { return t.rotation }

// Rows returns a copy of the rows, sorted by VIP.
func (t Table) Rows() []Row { return slices.Clone(t.rows) }

// Row returns the i-th row in VIP order; it panics if i is out of range.
func (t Table) Row(i int) Row { return t.rows[i] }

// Index returns the position of vip in VIP order, or -1 if the table does not
// hold it. It is a binary search: O(log n), no allocation.
func (t Table) Index(vip netip.Addr) int {
	i, ok := slices.BinarySearchFunc(t.rows, vip, func(r Row, v netip.Addr) int { return r.VIP.Compare(v) })
	if !ok {
		return -1
	}
	return i
}

// Lookup returns the row of vip and whether the table holds it.
func (t Table) Lookup(vip netip.Addr) (Row, bool) {
	i := t.Index(vip)
	if i < 0 {
		return Row{}, false
	}
	return t.rows[i], true
}

// Owner returns the node answering for vip: None if the VIP is closed,
// unplaced or not in the table.
func (t Table) Owner(vip netip.Addr) Node {
	r, _ := t.Lookup(vip)
	return r.Current
}

// OwnedBy returns the VIPs node n answers for, in VIP order.
func (t Table) OwnedBy(n Node) []netip.Addr {
	return t.AppendOwnedBy(nil, n)
}

// AppendOwnedBy appends the VIPs node n answers for, in VIP order, to dst.
func (t Table) AppendOwnedBy(dst []netip.Addr, n Node) []netip.Addr {
	if n == None {
		return dst
	}
	for _, r := range t.rows {
		if r.Current == n {
			dst = append(dst, r.VIP)
		}
	}
	return dst
}

// unitBuf holds the row indexes of one unit; groups of up to 8 VIPs (8
// subnets) need no allocation.
type unitBuf [8]int32

// members returns the row indexes, in VIP order, of the unit (the group, or
// the lone VIP) that row i belongs to, using buf for storage.
func (t *Table) members(i int, buf *unitBuf) []int32 {
	g := t.rows[i].Group
	if g == 0 {
		buf[0] = int32(i)
		return buf[:1]
	}
	m := buf[:0]
	h := t.head[g]
	for j := h; ; {
		m = append(m, j)
		if j = t.next[j]; j == h {
			return m
		}
	}
}

// firstOfUnit reports whether row i is the first row of its unit, so a unit
// is handled once.
func (t *Table) firstOfUnit(i int) bool {
	g := t.rows[i].Group
	return g == 0 || t.head[g] == int32(i)
}

// derive returns a copy of t whose rows can be changed.
func (t *Table) derive() Table {
	u := *t
	u.rows = slices.Clone(t.rows)
	return u
}
