package node

import (
	"context"
	"slices"
	"time"

	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// Status reports this node's view of the cluster (mgmt.Backend). The ring's
// own status is read on the ring's goroutine; the VIP table comes from the
// last committed state, which every member shares.
func (n *Node) Status() mgmt.Status {
	s := mgmt.Status{
		Cluster: n.file.Cluster.Name,
		Node:    n.name(n.self),
		Version: n.cfg.Version,
		UptimeS: time.Since(n.started).Seconds(),
		Nodes:   slices.Clone(*n.names.Load()),
	}
	if m := n.mons.Load(); m != nil {
		if m.nic != nil {
			s.LinksDown = m.nic.Down()
		}
		if m.ping != nil {
			s.PingFailing = m.ping.Failing()
		}
		if m.app != nil {
			s.AppFailure = m.app.Failure()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.Mode = "stopped"
	rs, err := n.ring.Status(ctx)
	if err == nil {
		s.Mode = rs.Mode.String()
		s.RingID, s.Seq, s.Holding = rs.RingID, rs.Seq, rs.Holding
		// ring.State.Holder is always this node (the one that committed
		// the state); the ring's status knows where the token went.
		s.Holder = n.name(rs.Holder)
		s.Rotation = float64(rs.Rotation) * float64(n.file.Ring.Tick) / float64(time.Millisecond)
	}
	if st := n.state.Load(); st != nil {
		s.Members = n.nameList(st.Members)
		s.Alone, s.NoQuorum = st.Alone, st.NoQuorum
		for _, c := range ringstate.Closed(st.Carriages) {
			s.Closed = append(s.Closed, n.name(ring.NodeID(c)))
		}
		for _, u := range ringstate.Unhealthy(st.Carriages) {
			s.Unhealthy = append(s.Unhealthy, n.name(ring.NodeID(u)))
		}
		if t, ok, _ := ringstateTable(st); ok {
			s.VIPs = n.vipRows(t)
			l := ringstate.Loads(st.Carriages)
			for i := range s.VIPs {
				s.VIPs[i].Rate = l[s.VIPs[i].VIP]
			}
		}
	}
	s.NodeStates = n.nodeStates(n.state.Load(), s.VIPs)
	if ll := n.linkLoad.Load(); ll != nil {
		s.Links = *ll
	}
	s.Moves = n.moveLog.list()
	s.Ops = n.ops.list()
	// The cluster's switches as committed (carriage kind 6); before the
	// first state, the defaults of this node's config.
	var cs []ring.Carriage
	if st := n.state.Load(); st != nil {
		cs = st.Carriages
	}
	sw := n.holder.Switches(cs)
	s.Balancing, s.Auto = sw.Balance, sw.Auto
	s.Counters = n.counters(rs)
	s.Filter = n.filterStatus()
	s.Events = n.membershipEvents()
	s.Config = n.configStatus()
	return s
}

func (n *Node) vipRows(t vipstate.Table) []mgmt.VIP {
	out := make([]mgmt.VIP, 0, t.Len())
	groups := n.run.Load().groups
	for i := range t.Len() {
		r := t.Row(i)
		v := mgmt.VIP{
			VIP:         r.VIP,
			Owner:       n.name(ring.NodeID(r.Current)),
			Preferred:   n.name(ring.NodeID(r.Preferred)),
			Persistence: r.Persistence.String(),
			Group:       groups[r.Group],
			Closed:      r.Closed,
		}
		if int(r.Subnet) < len(n.file.Subnets) {
			v.Subnet = n.file.Subnets[r.Subnet].Name
		}
		out = append(out, v)
	}
	return out
}

// counters flattens the parts' counters for operators.
func (n *Node) counters(rs ring.Status) map[string]uint64 {
	c := map[string]uint64{}
	ds := n.ring.Stats()
	c["ring_rx_datagrams"] = ds.RxDatagrams
	c["ring_tx_datagrams"] = ds.TxDatagrams
	c["ring_rx_dropped"] = ds.Dropped()
	rt := n.plane.Stats()
	for _, l := range rt.Links {
		c["router_"+l.Name+"_forwarded"] = l.Forwarded
		c["router_"+l.Name+"_arp_replies"] = l.ARPReplies
		c["router_"+l.Name+"_garps"] = l.GARPs
		var drops uint64
		for _, d := range l.Drops {
			drops += d
		}
		c["router_"+l.Name+"_drops"] = drops
	}
	return c
}
