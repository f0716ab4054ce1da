package main

import (
	"fmt"

	"github.com/ringway/ringway/mgmt"
)

// replicationLine renders state replication on one line of the status.
func replicationLine(r mgmt.ReplicationStatus) string {
	s := fmt.Sprintf("queued %d/%d, in flight %d, records sent %d, resends %d, replicas held %d, adopted %d, resync %s (%.1f s), bulk sent %d received %d",
		r.Queued, r.QueueMax, r.InFlight, r.Records, r.Resends, r.Replicas, r.Adoptions, r.Resync, r.ResyncTime, r.Bulk[0], r.Bulk[1])
	if p := lagQuantile(r.LagUs, 0.99); p > 0 {
		s += fmt.Sprintf(", lag p99 < %d µs", p)
	}
	if r.Overflow+r.Refused > 0 {
		s += fmt.Sprintf("; REFUSED: %d changes at the queue's cap, %d replicas at the store's cap", r.Overflow, r.Refused)
	}
	return s
}

// lagQuantile returns the upper bound (µs) of the histogram bucket that
// holds the q-quantile; 0 when empty.
func lagQuantile(h []uint64, q float64) int {
	var n, sum uint64
	for _, v := range h {
		n += v
	}
	for i, v := range h {
		if sum += v; n > 0 && float64(sum) >= q*float64(n) {
			return 1 << i
		}
	}
	return 0
}
