package node

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringway/ringway/forward"
	"github.com/ringway/ringway/mgmt"
	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
	"github.com/ringway/ringway/vipstate"
)

// The fill (docs/forward.md "The fill"): a node that starts, or comes
// back to the ring, copies the state of the rows it will own before it
// owns any. The filter runs it (forward/fill.go); the ring holder writes
// this node's word on the token (ringstate carriage kind 7); every member
// builds its flow directory from the committed membership and that word,
// so all rank the unfilled members last alike.

var (
	mFillFilled   = desc("replication_fill_filled", "1 when the member's fill is done on the committed token (carriage kind 7), by node.", "node")
	mFillAuthRows = desc("replication_fill_auth_rows", "Rows of this node's flow directory each member is authoritative for (of 65,536), by node.", "node")
	mFillFilling  = desc("replication_fill_filling", "1 while this node's own fill runs.")
	mFillSeconds  = desc("replication_fill_last_seconds", "How long this node's last fill took.")
	mFillTimeouts = desc("replication_fill_timeouts_total", "Fills of this node that ended at the timeout with members yet to answer.")
)

// fillInputs returns st's members and those of them the committed token
// does not mark filled: what the flow directory is built from.
func fillInputs(st *ring.State) (ids, unfilled []uint16) {
	filled := ringstate.Filled(st.Carriages)
	for _, m := range st.Members {
		ids = append(ids, uint16(m))
		if !slices.Contains(filled, vipstate.Node(m)) {
			unfilled = append(unfilled, uint16(m))
		}
	}
	return ids, unfilled
}

// refillAfter is how long a node may be out of the ring (between rings:
// its committed state has no members) and still take its rows back
// without a new fill when it returns. Survivors of a member's loss pass
// through limbo for a moment while the ring re-forms; they missed
// nothing worth a fill, and filling again would move every row twice.
const refillAfter = 2 * time.Second

// applyFill follows a committed state's fill: it notes when this node
// left the ring (refillIfOut), and a change of the filled members alone
// rebuilds the directory (apply rebuilds it on a membership change).
func (n *Node) applyFill(st *ring.State, membersChanged bool) {
	if n.tunnel == nil {
		return
	}
	if !slices.Contains(st.Members, n.self) {
		n.outSince.CompareAndSwap(0, time.Now().UnixNano())
	} else {
		n.outSince.Store(0)
	}
	if _, un := fillInputs(st); !membersChanged && !slices.Equal(un, n.filter.Directory().Unfilled()) {
		n.setDirectory(st)
	}
}

// refillIfOut starts a new fill when this node has been out of the ring
// for longer than refillAfter at now (the sweep's second): it misses the
// changes made meanwhile, and other members strike it from the filled
// set while it is out, so it comes back unfilled and fills before it is
// authoritative again.
func (n *Node) refillIfOut(now time.Time) {
	if n.tunnel == nil {
		return
	}
	if t := n.outSince.Load(); t != 0 && now.Sub(time.Unix(0, t)) > refillAfter && !n.filter.Filling() {
		n.filter.StartFill()
		n.log.Info("out of the ring: this node fills its rows again before it is authoritative for any", "out_for", now.Sub(time.Unix(0, t)).Round(time.Millisecond))
	}
}

// noteAuth records, at now, the members that directory d makes
// authoritative for rows and the previous one did not (apply's
// goroutine; the status reads the map).
func (n *Node) noteAuth(d *forward.Directory, now time.Time) {
	next := map[uint16]time.Time{}
	var prev map[uint16]time.Time
	if p := n.authSince.Load(); p != nil {
		prev = *p
	}
	for _, m := range d.Members() {
		if d.AuthRows(m) == 0 {
			continue
		}
		if t, ok := prev[m]; ok {
			next[m] = t
		} else {
			next[m] = now
		}
	}
	n.authSince.Store(&next)
}

// fillAlarm logs the fills that ended since the last call (the sweep's
// second): at info when every member answered, as a warning when the
// timeout ended it.
func (n *Node) fillAlarm(r forward.ReplStats) {
	f := r.Fill
	if f.Fills == n.fillSeen {
		return
	}
	n.fillSeen = f.Fills
	took := time.Duration(f.Took).Round(time.Millisecond)
	if f.TimedOut {
		n.log.Warn("fill timed out: this node is authoritative for its rows without every member's copy; flows it lacks may stall until their handlers re-send them",
			"took", took, "timeouts", f.Timeouts)
		return
	}
	n.log.Info("fill done: this node may be authoritative for its rows", "took", took, "bulk_received", r.BulkRcvd)
}

// fillStatus is the fill part of the replication status.
func (n *Node) fillStatus(r forward.ReplStats) *mgmt.FillStatus {
	f := r.Fill
	wall := func(t int64) string {
		return time.Now().Add(time.Duration(t - n.routerNow())).UTC().Format(time.RFC3339Nano)
	}
	fs := &mgmt.FillStatus{State: "filled", Waiting: f.Waiting, Took: time.Duration(f.Took).Seconds(), TimedOut: f.TimedOut,
		Fills: f.Fills, Timeouts: f.Timeouts, Serving: f.Serving, Served: f.Served, Nodes: map[string]mgmt.FillNode{}}
	if f.Filling {
		fs.State = "filling"
	}
	if f.Started != 0 {
		fs.Started = wall(f.Started)
	}
	if f.Finished != 0 {
		fs.FilledAt = wall(f.Finished)
	}
	if st := n.state.Load(); st != nil {
		d := n.filter.Directory()
		_, un := fillInputs(st)
		var since map[uint16]time.Time
		if p := n.authSince.Load(); p != nil {
			since = *p
		}
		for _, m := range st.Members {
			fn := mgmt.FillNode{Filled: !slices.Contains(un, uint16(m)), AuthRows: d.AuthRows(uint16(m))}
			if t, ok := since[uint16(m)]; ok && fn.AuthRows > 0 {
				fn.AuthSince = t.UTC().Format(time.RFC3339Nano)
			}
			fs.Nodes[n.name(m)] = fn
		}
	}
	return fs
}

// collectFill adds the fill's metrics.
func (n *Node) collectFill(ch chan<- prometheus.Metric, r forward.ReplStats) {
	fs := n.fillStatus(r)
	for name, m := range fs.Nodes {
		ch <- prometheus.MustNewConstMetric(mFillFilled, prometheus.GaugeValue, b2f(m.Filled), name)
		ch <- prometheus.MustNewConstMetric(mFillAuthRows, prometheus.GaugeValue, float64(m.AuthRows), name)
	}
	ch <- prometheus.MustNewConstMetric(mFillFilling, prometheus.GaugeValue, b2f(r.Fill.Filling))
	ch <- prometheus.MustNewConstMetric(mFillSeconds, prometheus.GaugeValue, fs.Took)
	ch <- prometheus.MustNewConstMetric(mFillTimeouts, prometheus.CounterValue, float64(r.Fill.Timeouts))
}
