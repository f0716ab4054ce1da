package node

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/ring/ringnet"
	"github.com/ringway/ringway/ringstate"
)

// The Prometheus metrics of a node, served at /metrics on the management
// listener (docs/operating.md lists them). They are read from the same
// snapshots as the status (ring.Status, ringnet.Stats, router.Stats) when a
// scrape comes, so nothing on the packet path counts twice.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("ringway_"+name, help, labels, nil)
}

var (
	mMode        = desc("ring_mode", "1 for this node's ring mode (starting, member, limbo, left, stopped).", "mode")
	mMembers     = desc("ring_members", "Members of the ring as this node last committed it.")
	mRotation    = desc("ring_rotation_seconds", "Last measured time between two visits of the token.")
	mNoQuorum    = desc("ring_no_quorum", "1 while the ring is below a majority in quorum mode majority (serving nothing).")
	mTokens      = desc("ring_tokens_accepted_total", "Tokens this node accepted.")
	mDropped     = desc("ring_members_dropped_total", "Members this node removed after a hop to them failed.")
	mJoined      = desc("ring_members_joined_total", "Nodes this node added to the ring.")
	mRegen       = desc("ring_token_regenerations_total", "Tokens this node regenerated after a 911.")
	mQueries     = desc("ring_911_sent_total", "911 queries this node sent (the token was missing).")
	mMerges      = desc("ring_merges_total", "Times this node's ring absorbed another ring.")
	mResends     = desc("ring_resends_total", "Ring frames sent again (hedges and resends).")
	mSendFail    = desc("ring_send_failures_total", "Ring messages that failed after every resend.")
	mDatagrams   = desc("ring_datagrams_total", "Authenticated ring datagrams.", "direction")
	mRingBytes   = desc("ring_bytes_total", "Ring datagram bytes on the wire (header, payload, tag).", "direction")
	mRingDrops   = desc("ring_datagrams_dropped_total", "Received ring datagrams dropped, by reason.", "reason")
	mHealthy     = desc("node_healthy", "1 while this node's monitors pass (always 1 when none runs).")
	mMembership  = desc("membership_changes_total", "Committed ring states whose member list differed from the previous one.")
	mRxFrames    = desc("router_rx_frames_total", "Frames the capture socket delivered.", "nic")
	mRxBytes     = desc("router_rx_bytes_total", "Bytes the capture socket delivered.", "nic")
	mTxFrames    = desc("router_tx_frames_total", "Frames sent.", "nic")
	mTxBytes     = desc("router_tx_bytes_total", "Bytes sent.", "nic")
	mSockDrops   = desc("router_socket_drops_total", "Frames the kernel dropped because the capture socket's buffer was full.", "nic")
	mForwarded   = desc("router_forwarded_packets_total", "Packets received on the NIC and routed onwards.", "nic")
	mFwdBytes    = desc("router_forwarded_bytes_total", "Bytes received on the NIC and routed onwards.", "nic")
	mLocal       = desc("router_local_packets_total", "Packets for owned VIPs given to the local OS (TUN).", "nic")
	mARPReq      = desc("router_arp_requests_total", "ARP requests for owned VIPs received.", "nic")
	mARPRep      = desc("router_arp_replies_total", "ARP replies for owned VIPs sent.", "nic")
	mGARPs       = desc("router_garps_total", "Gratuitous ARP announcements sent.", "nic")
	mRouterDrops = desc("router_drops_total", "Frames the router dropped, by reason.", "nic", "reason")
	mVIPOwned    = desc("vip_owned", "1 while this node answers the VIP.", "vip")
	mVIPPackets  = desc("vip_packets_total", "Packets delivered to the VIP or forwarded for hosts that use it as gateway, on this node.", "vip")
	mVIPBytes    = desc("vip_bytes_total", "Bytes delivered to the VIP or forwarded for hosts that use it as gateway, on this node.", "vip")
	mVIPGARPs    = desc("vip_garps_total", "Gratuitous ARP announcements of the VIP sent by this node.", "vip")
	mVIPARPRep   = desc("vip_arp_replies_total", "ARP replies for the VIP sent by this node.", "vip")
	mVIPConflict = desc("vip_arp_conflicts_total", "ARP packets from another host claiming the VIP while this node owned it.", "vip")
	mMTU         = desc("router_mtu_bytes", "The NIC's MTU as the router last read it.", "nic")
	mPending     = desc("router_arp_pending", "Next hops waiting for an ARP answer.", "nic")
	mFragmented  = desc("router_fragmented_packets_total", "Packets the router fragmented for a smaller next-hop MTU.", "nic")
	mFlows       = desc("filter_flows", "Flows in the stateful filter's table, by state.", "state")
	mFlowsMax    = desc("filter_flows_max", "The flow table's cap (filter.max_flows).")
	mNewFlows    = desc("filter_new_flows_total", "Flows the filter accepted and started tracking.")
	mFiltPassed  = desc("filter_passed_packets_total", "Packets the filter passed.")
	mFiltDrops   = desc("filter_drops_total", "Packets the filter dropped, by reason.", "reason")
	mFragTrack   = desc("filter_fragment_datagrams", "Fragmented datagrams in the filter's fragment tracker.")
	mTunPackets  = desc("tunnel_packets_total", "Data packets carried by the inter-node tunnel.", "direction")
	mTunBytes    = desc("tunnel_bytes_total", "Bytes of the packets carried by the inter-node tunnel.", "direction")
	mTunRedirect = desc("tunnel_redirects_total", "Packets this node's filter sent to another node (the flow's authoritative node or handler).")
	mTunMessages = desc("tunnel_messages_total", "Registers, hints and register acknowledgements.", "type", "direction")
	mTunDrops    = desc("tunnel_drops_total", "Tunnel datagrams refused or packets the tunnel could not carry, by reason.", "reason")
	mChangeCause = desc("membership_changes_by_cause_total", "Membership changes this node saw, by cause (formed, dropped, joined, merged, regenerated, left, stale, changed).", "cause")
	mVIPMoves    = desc("vip_moves_total", "VIP owner changes this node saw in committed states, by inferred reason (failover, operator, handover, preference, assign, balancing).", "reason")
	mVIPRate     = desc("vip_rate_bytes_per_second", "The VIP's traffic as its owner measured it, carried on the token.", "vip", "owner")
	mNodeLoad    = desc("node_load_bytes_per_second", "Sum of the rates of the VIPs a node owns, as carried on the token.", "node")
	mLinkRate    = desc("router_link_bytes_per_second", "This node's NIC traffic over the last second.", "nic", "direction")
	mAuthFail    = desc("mgmt_auth_failures_total", "Wrong tokens presented to the management API.")
	mAuthLocked  = desc("mgmt_auth_locked_out_total", "Management requests refused unchecked because their address sent too many wrong tokens.")
	mSwitch      = desc("switch_on", "1 while the cluster switch is on (balance: L.BAL, auto: AUTO), as this node last committed it.", "switch")
	mDeferred    = desc("filter_deferred_packets_total", "First packets of new flows held until their register was acknowledged, by outcome.", "outcome")
	mTunPeerPkts = desc("tunnel_peer_packets_total", "Data packets carried by the inter-node tunnel, by peer node.", "peer", "direction")
	mTunPeerByte = desc("tunnel_peer_bytes_total", "Bytes of the packets carried by the inter-node tunnel, by peer node.", "peer", "direction")
	mTunHints    = desc("tunnel_hints", "Hints (flow → handler) this node holds now.")
	mTunRegistry = desc("tunnel_registry_flows", "Flows whose handler this node knows as their authoritative node (its part of the flow directory).")
	mTunSentOn   = desc("tunnel_sent_on_total", "Packets received through the tunnel and sent on to their flow's handler.")
	mTunMSS      = desc("tunnel_mss_clamped_total", "TCP SYNs whose MSS was lowered to fit the tunnel.")
	mTunCoalesce = desc("tunnel_coalesced_segments_total", "TCP segments from the tunnel sent on as part of a GSO super-frame built by this node.")
	mTunSuper    = desc("tunnel_super_frames_total", "GSO super-frames this node built from TCP segments that came through the tunnel.")
	mTunFragNeed = desc("tunnel_frag_needed_total", "DF packets too large for the tunnel, answered with ICMP fragmentation needed.")
	mTunEpoch    = desc("tunnel_epoch_datagrams_total", "Tunnel datagrams from senders on another membership, by order.", "order")
	mTunStaleHnt = desc("tunnel_hints_refused_total", "Hints refused: from an older membership epoch, or naming a node not a member.")
)

// collector implements prometheus.Collector over a running node.
type collector struct{ n *Node }

// Describe describes nothing: the collector is "unchecked". Describing by
// collecting would read the ring and the router at registration, in New,
// before the ring driver runs (its Do would wait for Run).
func (c collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	mode := "stopped"
	rs, err := n.ring.Status(ctx)
	if err == nil {
		mode = rs.Mode.String()
	}
	for _, m := range []string{"starting", "member", "limbo", "left", "stopped"} {
		gauge(mMode, b2f(m == mode), m)
	}
	if st := n.state.Load(); st != nil {
		gauge(mMembers, float64(len(st.Members)))
		gauge(mNoQuorum, b2f(st.NoQuorum))
		sw := n.holder.Switches(st.Carriages)
		gauge(mSwitch, b2f(sw.Balance), "balance")
		gauge(mSwitch, b2f(sw.Auto), "auto")
	}
	gauge(mRotation, float64(rs.Rotation)*n.file.Ring.Tick.Seconds())
	n.failover.collect(ch)
	rc := rs.Counters
	count(mTokens, rc.TokensAccepted)
	count(mDropped, rc.Drops)
	count(mJoined, rc.Joins)
	count(mRegen, rc.Regenerations)
	count(mQueries, rc.Queries)
	count(mMerges, rc.Merges)
	count(mResends, rc.Resends)
	count(mSendFail, rc.SendFailures)
	count(mMembership, n.membershipChanges.Load())
	moves, causes := n.moveLog.counts()
	for r, v := range moves {
		count(mVIPMoves, v, r)
	}
	for c, v := range causes {
		count(mChangeCause, v, c)
	}
	if st := n.state.Load(); st != nil {
		if t, ok, _ := ringstateTable(st); ok {
			vips := n.vipRows(t)
			l := ringstate.Loads(st.Carriages)
			for i := range vips {
				vips[i].Rate = l[vips[i].VIP]
				gauge(mVIPRate, float64(vips[i].Rate), vips[i].VIP.String(), vips[i].Owner)
			}
			for _, ns := range n.nodeStates(st, vips) {
				gauge(mNodeLoad, float64(ns.Load), ns.ID)
			}
		}
	}
	if ll := n.linkLoad.Load(); ll != nil {
		for _, l := range *ll {
			gauge(mLinkRate, float64(l.Rx), l.Name, "rx")
			gauge(mLinkRate, float64(l.Tx), l.Name, "tx")
		}
	}
	if n.api != nil {
		f, l := n.api.AuthFailures()
		count(mAuthFail, f)
		count(mAuthLocked, l)
	}
	gauge(mHealthy, b2f(n.healthy()))

	ds := n.ring.Stats()
	count(mDatagrams, ds.RxDatagrams, "rx")
	count(mDatagrams, ds.TxDatagrams, "tx")
	count(mRingBytes, ds.RxBytes, "rx")
	count(mRingBytes, ds.TxBytes, "tx")
	for r := range ringnet.NumDropReasons {
		count(mRingDrops, ds.Drops[r], ringnet.DropReason(r).String())
	}

	rt := n.plane.Stats()
	for _, l := range rt.Links {
		count(mRxFrames, l.RxFrames, l.Name)
		count(mRxBytes, l.RxBytes, l.Name)
		count(mTxFrames, l.TxFrames, l.Name)
		count(mTxBytes, l.TxBytes, l.Name)
		count(mSockDrops, l.SocketDrops, l.Name)
		count(mForwarded, l.Forwarded, l.Name)
		count(mFwdBytes, l.ForwardedBytes, l.Name)
		count(mLocal, l.Local, l.Name)
		count(mARPReq, l.ARPRequests, l.Name)
		count(mARPRep, l.ARPReplies, l.Name)
		count(mGARPs, l.GARPs, l.Name)
		for r, v := range l.Drops {
			count(mRouterDrops, v, l.Name, r.String())
		}
		gauge(mMTU, float64(l.MTU), l.Name)
		gauge(mPending, float64(l.Pending), l.Name)
		count(mFragmented, l.Fragmented, l.Name)
	}
	for _, v := range rt.VIPs {
		vip := v.VIP.String()
		gauge(mVIPOwned, b2f(v.Owned), vip)
		count(mVIPPackets, v.Packets, vip)
		count(mVIPBytes, v.Bytes, vip)
		count(mVIPGARPs, v.GARPs, vip)
		count(mVIPARPRep, v.ARPReplies, vip)
		count(mVIPConflict, v.Conflicts, vip)
	}
	if n.filter != nil {
		fs := n.filter.Stats()
		for _, s := range forward.States() {
			gauge(mFlows, float64(fs.ByState[s]), s.String())
		}
		gauge(mFlowsMax, float64(fs.MaxFlows))
		count(mNewFlows, fs.NewFlows)
		count(mFiltPassed, fs.Passed)
		for _, r := range forward.Reasons() {
			count(mFiltDrops, fs.Drops[r], r.String())
		}
		gauge(mFragTrack, float64(fs.Fragments))
		n.collectReplication(ch, fs)
		if ts := n.tunnelStatus(fs); ts != nil {
			count(mTunPackets, ts.Sent, "sent")
			count(mTunPackets, ts.Received, "received")
			count(mTunBytes, ts.SentBytes, "sent")
			count(mTunBytes, ts.ReceivedBytes, "received")
			count(mTunRedirect, ts.Redirects)
			for _, m := range []struct {
				name string
				v    [2]uint64
			}{{"register", ts.Registers}, {"hint", ts.Hints}, {"ack", ts.Acks}} {
				count(mTunMessages, m.v[0], m.name, "sent")
				count(mTunMessages, m.v[1], m.name, "received")
			}
			for r, v := range ts.Drops {
				count(mTunDrops, v, r)
			}
			d := ts.Defer
			count(mDeferred, d.Deferred, "held")
			count(mDeferred, d.ReleasedAck, "released_ack")
			count(mDeferred, d.ReleasedTimeout, "released_timeout")
			count(mDeferred, d.Overflow, "overflow")
			for peer, v := range ts.Peers {
				count(mTunPeerPkts, v[0], peer, "sent")
				count(mTunPeerPkts, v[1], peer, "received")
			}
			for peer, v := range ts.PeerBytes {
				count(mTunPeerByte, v[0], peer, "sent")
				count(mTunPeerByte, v[1], peer, "received")
			}
			gauge(mTunHints, float64(ts.HintsHeld))
			gauge(mTunRegistry, float64(ts.Registry))
			count(mTunSentOn, ts.SentOn)
			count(mTunMSS, ts.MSSClamped)
			count(mTunCoalesce, ts.Coalesced)
			count(mTunSuper, ts.SuperFrames)
			count(mTunFragNeed, ts.FragNeeded)
			count(mTunEpoch, ts.EpochStale, "stale")
			count(mTunEpoch, ts.EpochFuture, "future")
			count(mTunStaleHnt, ts.HintsStale)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves the node's metrics and the Go runtime's and
// process's own (go_*, process_*).
func (n *Node) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{n}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{n}, ErrorHandling: promhttp.ContinueOnError})
}

// slogPrinter lets promhttp log through the node's logger.
type slogPrinter struct{ n *Node }

func (p slogPrinter) Println(v ...any) { p.n.log.Warn("metrics", "error", v) }
