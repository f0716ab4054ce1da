package vipstate

import (
	"net/netip"
	"slices"
)

// Reconfigure returns the table a configuration change (a reload, applied
// as one config epoch) leads to: desired's rows (its VIPs, subnets,
// preferences, persistence and groups), with t's run-time state carried
// over. from is the table the previous configuration built; it tells which
// policies the change touched.
//
// A unit (a group, or a VIP alone) keeps, from its first member (in VIP
// order) that t has, the current host and the closed flag: a VIP that
// stays is not moved by the change itself, a new one starts unplaced (the
// next Step places it). Its preference and persistence are t's when the
// change left the unit alone (same members, same policy in from and in
// desired), so an operator's move or a sticky VIP's new home survives a
// reload that did not mention them; otherwise they are desired's, and Step
// then moves the unit where the new policy says (a new preferred host
// takes it once). A VIP in t but not in desired is gone. The rotation and
// balancing counters are t's.
func (t Table) Reconfigure(from, desired Table) (Table, error) {
	rows := desired.Rows() // sorted by VIP, like every table
	byVIP := func(tb Table) map[netip.Addr]Row {
		m := make(map[netip.Addr]Row, len(tb.rows))
		for _, r := range tb.rows {
			m[r.VIP] = r
		}
		return m
	}
	now, before := byVIP(t), byVIP(from)
	fromUnits, desiredUnits := units(from), units(desired)
	done := make([]bool, len(rows))
	for i := range rows {
		if done[i] {
			continue
		}
		unit := []int{i}
		if g := rows[i].Group; g != 0 {
			unit = unit[:0]
			for j := i; j < len(rows); j++ {
				if rows[j].Group == g {
					unit = append(unit, j)
				}
			}
		}
		same := true // the change left this unit alone
		var src *Row // its first member that t has
		for _, j := range unit {
			done[j] = true
			r := rows[j]
			b, ok := before[r.VIP]
			if !ok || b.Preferred != r.Preferred || b.Persistence != r.Persistence || fromUnits[r.VIP] != desiredUnits[r.VIP] {
				same = false
			}
			if cur, ok := now[r.VIP]; ok && src == nil {
				src = &cur
			}
		}
		if src == nil {
			continue // new: unplaced, desired's policy
		}
		for _, j := range unit {
			r := &rows[j]
			r.Current, r.Closed = src.Current, src.Closed
			if same {
				r.Preferred, r.Persistence = src.Preferred, src.Persistence
			}
		}
	}
	u, err := New(desired.nodes, rows)
	if err != nil {
		return Table{}, err
	}
	u.rotation, u.balanceAt = t.rotation, t.balanceAt
	return u, nil
}

// units maps each VIP of tb to a key naming its unit's members (the VIPs
// of its group, or itself).
func units(tb Table) map[netip.Addr]string {
	groups := map[uint16][]netip.Addr{}
	for _, r := range tb.rows {
		if r.Group != 0 {
			groups[r.Group] = append(groups[r.Group], r.VIP)
		}
	}
	out := make(map[netip.Addr]string, len(tb.rows))
	for _, r := range tb.rows {
		members := []netip.Addr{r.VIP}
		if r.Group != 0 {
			members = groups[r.Group]
		}
		slices.SortFunc(members, netip.Addr.Compare)
		key := ""
		for _, m := range members {
			key += m.String() + ","
		}
		out[r.VIP] = key
	}
	return out
}
