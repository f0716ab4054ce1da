package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/mgmt"
)

// State replication and fail-over (docs/forward.md "State replication
// and fail-over"): the filter replicates, the tunnel driver carries it;
// the node shows it (status, metrics) and raises the alarm when a bound
// is hit.

var (
	mReplLag      = desc("replication_lag_seconds", "Time from a flow state change being queued to its batch's ack (the replica is stored before the ack leaves).")
	mReplQueued   = desc("replication_queued_records", "Flow state changes waiting to be replicated.")
	mReplInFlight = desc("replication_in_flight_batches", "Replication batches sent and not yet acknowledged.")
	mReplRecords  = desc("replication_records_total", "Flow state records replicated (first sending).")
	mReplBatches  = desc("replication_batches_total", "Replication datagrams, by type and direction.", "type", "direction")
	mReplBytes    = desc("replication_bytes_total", "Replication datagrams' bytes on the wire (tunnel header and tag included), by direction.", "direction")
	mReplResends  = desc("replication_resends_total", "Replication batches sent again for want of an ack.")
	mReplRefused  = desc("replication_refused_total", "Replication refused at a bound: a change at the queue's cap (queue), a replica at the store's cap (replicas).", "bound")
	mReplReplicas = desc("replication_replicas", "Flows whose state this node holds for their handler.")
	mReplAdopted  = desc("replication_adoptions_total", "Flows this node took over from a handler that left the membership.")
	mReplResync   = desc("replication_resync_running", "1 while the walk after a directory change has not re-sent every flow handled here.")
)

// replicationStatus is the replication part of the tunnel status.
func (n *Node) replicationStatus(st forward.Stats) *mgmt.ReplicationStatus {
	r := st.Sym.Repl
	ss := n.tunnel.SyncStats()
	rs := &mgmt.ReplicationStatus{Queued: r.Queued, QueueMax: forward.DefaultSyncQueue, InFlight: r.InFlight,
		Records: r.Records, Resends: r.Resends, Collapsed: r.Collapsed, Overflow: r.Overflow, Dropped: r.Dropped,
		Malformed: r.Malformed, Bytes: ss.Bytes, Batches: ss.Batches, Replicas: r.Replicas, Refused: r.Refused,
		Adoptions: r.Adoptions, Resyncs: r.Resyncs, Resync: "done", ResyncTime: time.Duration(r.ResyncTook).Seconds(),
		Bulk: [2]uint64{r.BulkSent, r.BulkRcvd}, GivenBack: r.GivenBack}
	if r.Resyncing {
		rs.Resync = "running"
	}
	if r.Acked > 0 {
		rs.LagUs, rs.LagBoundsUs = r.Lag[:], forward.LagBoundsUs[:]
	}
	rs.Fill = n.fillStatus(r)
	return rs
}

// collectReplication adds replication's metrics.
func (n *Node) collectReplication(ch chan<- prometheus.Metric, st forward.Stats) {
	if n.tunnel == nil {
		return
	}
	r := st.Sym.Repl
	ss := n.tunnel.SyncStats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	// The lag histogram: bucket i's upper bound is forward.LagBoundsUs[i]
	// µs; the last is +Inf.
	buckets := map[float64]uint64{}
	var total, cum uint64
	for i, v := range r.Lag {
		total += v
		if i < len(forward.LagBoundsUs) {
			cum += v
			buckets[float64(forward.LagBoundsUs[i])/1e6] = cum
		}
	}
	ch <- prometheus.MustNewConstHistogram(mReplLag, total, float64(r.LagSumUs)/1e6, buckets)
	gauge(mReplQueued, float64(r.Queued))
	gauge(mReplInFlight, float64(r.InFlight))
	count(mReplRecords, r.Records)
	count(mReplBatches, ss.Batches[0], "batch", "sent")
	count(mReplBatches, ss.Batches[1], "batch", "received")
	count(mReplBatches, ss.Acks[0], "ack", "sent")
	count(mReplBatches, ss.Acks[1], "ack", "received")
	count(mReplBytes, ss.Bytes[0], "sent")
	count(mReplBytes, ss.Bytes[1], "received")
	count(mReplResends, r.Resends)
	count(mReplRefused, r.Overflow, "queue")
	count(mReplRefused, r.Refused, "replicas")
	gauge(mReplReplicas, float64(r.Replicas))
	count(mReplAdopted, r.Adoptions)
	gauge(mReplResync, b2f(r.Resyncing))
	n.collectFill(ch, r)
}

// replicationAlarm logs, at most once per call (the sweep's second), the
// replication bounds hit since the last call: state changes refused at
// the queue's cap or replicas refused at the store's cap mean a node's
// loss may break connections.
func (n *Node) replicationAlarm() {
	if n.tunnel == nil {
		return
	}
	r := n.filter.Stats().Sym.Repl
	if d := r.Overflow - n.replSeen[0]; d > 0 {
		n.log.Warn("replication queue full: flow state changes not replicated; a node's loss may break these flows",
			"refused", d, "queue_max", forward.DefaultSyncQueue, "total", r.Overflow)
	}
	if d := r.Refused - n.replSeen[1]; d > 0 {
		n.log.Warn("replica store full: flow states from other nodes not kept; their loss may break these flows",
			"refused", d, "replicas", r.Replicas, "total", r.Refused)
	}
	n.replSeen = [2]uint64{r.Overflow, r.Refused}
	n.fillAlarm(r)
}
