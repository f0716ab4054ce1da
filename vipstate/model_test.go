package vipstate

import (
	"errors"
	"math/big"
	"net/netip"
	"slices"
)

// model is the slow, obviously right version of the table that the property
// tests hold the real one to. It shares nothing with the implementation but
// the exported types: no bitsets, no group index, no copy-on-write; every
// question is answered by scanning everything again.
type model struct {
	nodes     int
	rows      []Row // sorted by VIP
	rotation  uint64
	balanceAt uint64
}

func newModel(nodes int, rows []Row) model {
	m := model{nodes: nodes, rows: slices.Clone(rows)}
	slices.SortFunc(m.rows, func(a, b Row) int { return a.VIP.Compare(b.VIP) })
	return m
}

func (m model) clone() model {
	m.rows = slices.Clone(m.rows)
	return m
}

// unit returns the indexes of the rows that move with row i.
func (m model) unit(i int) []int {
	if m.rows[i].Group == 0 {
		return []int{i}
	}
	var u []int
	for j, r := range m.rows {
		if r.Group == m.rows[i].Group {
			u = append(u, j)
		}
	}
	return u
}

// firstOfUnit: row i is the lowest row of its unit.
func (m model) firstOfUnit(i int) bool { return m.unit(i)[0] == i }

// liveList is in.Live without invalid or repeated entries, in ring order.
func (m model) liveList(in Input) []Node {
	var l []Node
	for _, n := range in.Live {
		if n >= 1 && int(n) <= m.nodes && !slices.Contains(l, n) {
			l = append(l, n)
		}
	}
	return l
}

func (m model) countVIPs(n Node) int {
	c := 0
	for _, r := range m.rows {
		if r.Current == n {
			c++
		}
	}
	return c
}

func (m *model) moveUnit(i int, to Node, why Reason, moves *[]Move) {
	for _, j := range m.unit(i) {
		r := &m.rows[j]
		*moves = append(*moves, Move{VIP: r.VIP, From: r.Current, To: to, Reason: why})
		r.Current = to
		if r.Persistence == PersistCurrent && to != None {
			r.Preferred = to
		}
	}
}

func (m model) step(in Input) (model, []Move) {
	m = m.clone()
	live := m.liveList(in)
	isLive := func(n Node) bool { return slices.Contains(live, n) }
	// Closed live nodes receive nothing, unless every live node is closed.
	allClosed := len(live) > 0
	for _, n := range live {
		if !slices.Contains(in.Closed, n) {
			allClosed = false
		}
	}
	eligible := func(n Node) bool { return isLive(n) && (allClosed || !slices.Contains(in.Closed, n)) }
	// A closed Self hands everything over at its turn.
	handover := isLive(in.Self) && !eligible(in.Self)
	needsHost := func(r Row) bool { return !r.Closed && (!isLive(r.Current) || handover && r.Current == in.Self) }
	if len(live) > 0 && live[0] == in.Self {
		m.rotation++
	}
	var moves []Move

	// Fail-over and assignment.
	for i := range m.rows {
		r := m.rows[i]
		if !needsHost(r) || !m.firstOfUnit(i) {
			continue
		}
		if len(live) == 0 {
			if r.Current != None {
				m.moveUnit(i, None, ReasonFailover, &moves)
			}
			continue
		}
		to := r.Preferred
		if !eligible(to) {
			to = None
			for _, n := range live {
				if eligible(n) && (to == None || m.countVIPs(n) < m.countVIPs(to)) {
					to = n
				}
			}
		}
		why := ReasonFailover
		if r.Current == None {
			why = ReasonAssign
		} else if isLive(r.Current) {
			why = ReasonHandover
		}
		m.moveUnit(i, to, why, &moves)
	}

	// Preference return, by the owner only.
	if isLive(in.Self) {
		for i := range m.rows {
			r := m.rows[i]
			if r.Current == in.Self && r.Persistence == PersistPreferred && r.Preferred != in.Self &&
				eligible(r.Preferred) && m.firstOfUnit(i) {
				m.moveUnit(i, r.Preferred, ReasonPreference, &moves)
			}
		}
	}

	// Balancing.
	cfg := in.Balance
	if len(moves) > 0 || !cfg.Enabled || !isLive(in.Self) || len(live) < 2 || in.VIPLoad == nil || m.rotation < m.balanceAt {
		return m, moves
	}
	load := func(n Node) uint64 {
		var l uint64
		for _, r := range m.rows {
			if r.Current == n {
				l += in.VIPLoad[r.VIP]
			}
		}
		return l
	}
	var total uint64
	for _, n := range live {
		total += load(n)
	}
	if total <= cfg.MinRate {
		return m, moves
	}
	for _, n := range live {
		if load(n) > load(in.Self) {
			return m, moves
		}
	}
	to := None
	for _, n := range live {
		if n != in.Self && eligible(n) && (to == None || load(n) < load(to)) {
			to = n
		}
	}
	if to == None {
		return m, moves
	}
	gap := load(in.Self) - load(to)
	lhs := new(big.Int).Mul(new(big.Int).SetUint64(gap), big.NewInt(int64(100*len(live))))
	rhs := new(big.Int).Mul(new(big.Int).SetUint64(uint64(cfg.Threshold)), new(big.Int).SetUint64(total))
	if lhs.Cmp(rhs) <= 0 {
		return m, moves
	}
	best, bestLoad := -1, uint64(0)
	for i, r := range m.rows {
		if r.Current != in.Self || r.Persistence != PersistNone || !m.firstOfUnit(i) {
			continue
		}
		var l uint64
		for _, j := range m.unit(i) {
			l += in.VIPLoad[m.rows[j].VIP]
		}
		if l > 0 && 2*l <= gap && l > bestLoad {
			best, bestLoad = i, l
		}
	}
	if best >= 0 {
		m.moveUnit(best, to, ReasonBalance, &moves)
		cd := uint64(cfg.Cooldown)
		if cd == 0 {
			cd = 1
		}
		m.balanceAt = m.rotation + cd
	}
	return m, moves
}

// admin applies an operator action to the model.
func (m model) admin(op string, vip netip.Addr, to Node) (model, error) {
	if op == "move" && (to == None || int(to) > m.nodes) {
		return m, ErrUnknownNode
	}
	i := slices.IndexFunc(m.rows, func(r Row) bool { return r.VIP == vip })
	if i < 0 {
		return m, ErrUnknownVIP
	}
	if op == "prefer" && m.rows[i].Current == None {
		return m, ErrNoHost
	}
	m = m.clone()
	for _, j := range m.unit(i) {
		r := &m.rows[j]
		switch op {
		case "move":
			r.Preferred, r.Persistence = to, PersistPreferred
		case "prefer":
			r.Preferred, r.Persistence = r.Current, PersistPreferred
		case "unprefer":
			r.Preferred, r.Persistence = None, PersistNone
		case "stick":
			r.Preferred, r.Persistence = r.Current, PersistCurrent
		case "unstick":
			r.Persistence = PersistNone
		case "close":
			r.Closed, r.Current = true, None
		case "open":
			r.Closed = false
		default:
			return m, errors.New("model: unknown op " + op)
		}
	}
	return m, nil
}

// tableAdmin applies the same action to the real table.
func tableAdmin(t Table, op string, vip netip.Addr, to Node) (Table, error) {
	switch op {
	case "move":
		return t.Move(vip, to)
	case "prefer":
		return t.Prefer(vip)
	case "unprefer":
		return t.Unprefer(vip)
	case "stick":
		return t.Stick(vip)
	case "unstick":
		return t.Unstick(vip)
	case "close":
		return t.Close(vip)
	case "open":
		return t.Open(vip)
	}
	return t, errors.New("unknown op " + op)
}
