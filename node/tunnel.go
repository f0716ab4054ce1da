package node

import (
	"net/netip"
	"time"

	"github.com/ringway/ringway/config"
	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/forward/tunnelnet"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
)

// Symmetric routing (docs/forward.md): with the filter on and more than
// one node in the node map, the filter redirects packets of flows other
// nodes handle through the tunnel (tunnelnet), and the flow directory is
// rebuilt from every committed membership.

// symmetricOn reports whether this node routes symmetrically.
func symmetricOn(f *config.Config) bool { return f.FilterEnabled() && len(f.Nodes) > 1 }

// newTunnel builds the tunnel driver: sockets on this node's primary
// addresses at forward.port, peers from the node map. The boot id is the
// start time: it grows from one boot to the next, as the tunnel's replay
// protection wants (a peer refuses an older boot).
func (n *Node) newTunnel(f *config.Config, key []byte) (*tunnelnet.Driver, error) {
	addrs := ringAddrs(f, uint16(f.Forward.Port))
	peers := map[uint16][]netip.AddrPort{}
	for i, as := range addrs {
		peers[uint16(i+1)] = as
	}
	return tunnelnet.New(tunnelnet.Config{
		Self: uint16(n.self), Key: key, Boot: uint64(time.Now().UnixNano()),
		Local: addrs[n.self-1], Peers: peers, Core: n.filter,
		Now:         func() int64 { return n.routerNow() },
		ReadsSocket: true, // the router's tunnel worker reads it (router/tunnel_linux.go)
		Logger:      n.log.With("part", "tunnel"),
	})
}

// setDirectory installs the flow directory of committed state st's
// members, the unfilled ones ranked last (fill.go), and its membership
// epoch (apply calls it on every membership change and every change of
// the filled members, off the packet path: the build takes a few ms at
// most, docs/forward.md).
func (n *Node) setDirectory(st *ring.State) {
	if n.tunnel == nil {
		return
	}
	ids, unfilled := fillInputs(st)
	d := forward.NewFillingDirectory(n.dirKey, ids, unfilled)
	n.filter.SetMembership(d, forward.MembershipEpoch(st.Seq, ids))
	n.noteAuth(d, time.Now())
	n.filter.Resync(n.routerNow()) // the new owners of the rows learn the flows handled here (replicate.go)
}

// tunnelStatus is the tunnel section of the status; nil without it.
func (n *Node) tunnelStatus(st forward.Stats) *mgmt.TunnelStatus {
	if n.tunnel == nil {
		return nil
	}
	ds := n.tunnel.Stats()
	rs := n.plane.Stats().Tunnel
	ts := &mgmt.TunnelStatus{Redirects: st.Sym.Redirects, Sent: ds.Sent, SentBytes: ds.SentBytes,
		Received: ds.Received, ReceivedBytes: ds.RcvdBytes, Forwarded: rs.Forwarded, SentOn: rs.Redirected,
		Registers: ds.Registers, Hints: ds.Hints, Registry: st.Sym.Registry, HintsHeld: st.Sym.Hints,
		Drops: map[string]uint64{}, Peers: map[string][2]uint64{}, Acks: ds.Acks,
		Epoch: st.Sym.Epoch, EpochStale: ds.EpochStale, EpochFuture: ds.EpochFuture, HintsStale: st.Sym.HintsStale,
		PeerBytes: map[string][2]uint64{}, MSSClamped: rs.MSSClamped, FragNeeded: rs.FragNeeded,
		Coalesced: rs.Coalesced, SuperFrames: rs.SuperFrames,
		Replication: n.replicationStatus(st)}
	d := st.Sym.Defer
	ts.Defer = mgmt.DeferStatus{Deferred: d.Deferred, ReleasedAck: d.ReleasedAck, ReleasedTimeout: d.ReleasedTimeout,
		Overflow: d.Overflow + rs.HoldRefused, Held: rs.HeldNow}
	if d.ReleasedAck > 0 {
		ts.Defer.AckLatencyUs = d.AckLatency[:]
	}
	for _, r := range forward.TunnelDrops() {
		if v := ds.Tunnel.Drops[r]; v > 0 {
			ts.Drops[r.String()] = v
		}
	}
	if ds.SendErrors > 0 {
		ts.Drops["send_error"] = ds.SendErrors
	}
	if ds.QueueFull > 0 {
		ts.Drops["queue_full"] = ds.QueueFull
	}
	for id, p := range ds.PerPeer {
		ts.Peers[n.name(ring.NodeID(id))] = [2]uint64{p.Sent, p.Received}
		ts.PeerBytes[n.name(ring.NodeID(id))] = [2]uint64{p.SentBytes, p.RcvdBytes}
	}
	return ts
}
