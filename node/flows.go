package node

import (
	"net/netip"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
)

var _ mgmt.FlowBackend = (*Node)(nil)

// Flows lists the stateful filter's flows for `ringway flows`
// (mgmt.FlowBackend): at most q.Limit, with q.Addr at either end.
func (n *Node) Flows(q mgmt.FlowQuery) (mgmt.Flows, error) {
	out := mgmt.Flows{Node: n.name(n.self), Enabled: n.filter != nil}
	if n.filter == nil {
		return out, nil
	}
	st := n.filter.Stats()
	out.Count, out.Max = st.Flows, st.MaxFlows
	fs := n.filter.FlowsWith(n.clock(), q.Limit+1, q.Addr)
	if q.Limit > 0 && len(fs) > q.Limit {
		fs, out.Truncated = fs[:q.Limit], true
	}
	for _, f := range fs {
		var handler, auth string
		if n.tunnel != nil {
			src, dst := f.Src, f.Dst
			if f.Proto == 1 { // ICMP echo: the identifier is both ports of the key
				src, dst = netip.AddrPortFrom(src.Addr(), f.ICMPEchoID), netip.AddrPortFrom(dst.Addr(), f.ICMPEchoID)
			}
			if a, _ := n.filter.Owners(forward.KeyOf(f.Proto, src, dst)); a != 0 {
				auth = n.name(ring.NodeID(a))
			}
			handler = out.Node
		}
		out.Flows = append(out.Flows, mgmt.Flow{
			Handler: handler, Authoritative: auth,
			Proto: protoName(f.Proto), Src: f.Src, Dst: f.Dst, ICMPID: f.ICMPEchoID,
			State: f.State.String(), Rule: f.Rule,
			AgeS: f.Age.Seconds(), IdleS: f.Idle.Seconds(), ExpiresS: f.Expires.Seconds(),
			PacketsOrig: f.PacketsOrig, PacketsReply: f.PacketsReply, BytesOrig: f.BytesOrig, BytesReply: f.BytesReply,
		})
	}
	return out, nil
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return "other"
}

// filterStatus is the filter's line in the status; nil when it is off.
func (n *Node) filterStatus() *mgmt.FilterStatus {
	if n.filter == nil {
		return nil
	}
	st := n.filter.Stats()
	fs := &mgmt.FilterStatus{Enabled: true, Flows: st.Flows, MaxFlows: st.MaxFlows, NewFlows: st.NewFlows, Drops: map[string]uint64{}}
	for _, r := range forward.Reasons() {
		if v := st.Drops[r]; v > 0 {
			fs.Drops[r.String()] = v
		}
	}
	fs.Tunnel = n.tunnelStatus(st)
	return fs
}
