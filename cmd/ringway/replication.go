package main

import (
	"fmt"

	"github.com/ringway/ringway/mgmt"
)

// replicationLine renders state replication on one line of the status.
func replicationLine(r mgmt.ReplicationStatus) string {
	s := fmt.Sprintf("queued %d/%d, in flight %d, records sent %d, resends %d, replicas held %d, adopted %d, resync %s (%.1f s), bulk sent %d received %d",
		r.Queued, r.QueueMax, r.InFlight, r.Records, r.Resends, r.Replicas, r.Adoptions, r.Resync, r.ResyncTime, r.Bulk[0], r.Bulk[1])
	if p := mgmt.BucketQuantile(r.LagUs, 0.99); p > 0 {
		s += fmt.Sprintf(", lag p99 < %d µs", p)
	}
	if r.Overflow+r.Refused > 0 {
		s += fmt.Sprintf("; REFUSED: %d changes at the queue's cap, %d replicas at the store's cap", r.Overflow, r.Refused)
	}
	return s
}
