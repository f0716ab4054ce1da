package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ringway/ringway/mgmt"
)

// replicationLine renders state replication on one line of the status.
func replicationLine(r mgmt.ReplicationStatus) string {
	s := fmt.Sprintf("queued %d/%d, in flight %d, records sent %d, resends %d, replicas held %d, adopted %d, resync %s (%.1f s), bulk sent %d received %d",
		r.Queued, r.QueueMax, r.InFlight, r.Records, r.Resends, r.Replicas, r.Adoptions, r.Resync, r.ResyncTime, r.Bulk[0], r.Bulk[1])
	if p, over := r.LagQuantile(0.99); over {
		s += fmt.Sprintf(", lag p99 ≥ %d µs", p)
	} else if p > 0 {
		s += fmt.Sprintf(", lag p99 < %d µs", p)
	}
	if r.Overflow+r.Refused > 0 {
		s += fmt.Sprintf("; REFUSED: %d changes at the queue's cap, %d replicas at the store's cap", r.Overflow, r.Refused)
	}
	return s
}

// fillLine is the fill: this node's, then every member's as the
// committed token says, with the rows each is authoritative for.
func fillLine(f mgmt.FillStatus) string {
	s := f.State
	switch {
	case f.State == "filling":
		s += fmt.Sprintf(" (waiting for %d members since %s)", f.Waiting, f.Started)
	case f.Fills > 0:
		s += fmt.Sprintf(" at %s in %.3f s", f.FilledAt, f.Took)
		if f.TimedOut {
			s += " (TIMED OUT)"
		}
	}
	if f.Timeouts > 0 {
		s += fmt.Sprintf(", %d timeouts", f.Timeouts)
	}
	if f.Serving > 0 {
		s += fmt.Sprintf(", copying to %d", f.Serving)
	}
	names := make([]string, 0, len(f.Nodes))
	for name := range f.Nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	var ns []string
	for _, name := range names {
		m := f.Nodes[name]
		st := "filled"
		if !m.Filled {
			st = "FILLING"
		}
		ns = append(ns, fmt.Sprintf("%s %s %d rows", name, st, m.AuthRows))
	}
	if len(ns) > 0 {
		s += "; " + strings.Join(ns, ", ")
	}
	return s
}
