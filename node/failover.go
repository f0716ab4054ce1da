package node

import (
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Detection to gratuitous ARP: how long a fail-over takes, from the last
// sign of life of the node that died to the moment its VIPs' new owner
// announced them. Three parts meet here, in any order:
//
//   - the drop's cause (ring.Cause.LastAck): the dropper's wall clock when
//     the last ack from the dropped node arrived; it rides the token, so
//     every member learns it (ring events, membershipEvent);
//   - the committed state that gave this node a VIP of the dropped node
//     (apply, from the moves it infers anyway, before the router is told);
//   - the router's first announcement of that VIP (router.Config.OnGARP).
//
// The state and the events reach the node on different channels, so each
// part waits for the others, briefly (failoverWait). The figure spans two
// nodes' clocks when the dropper is not the new owner: it is as good as
// their clocks agree (NTP on a LAN: well under a millisecond; the lab's
// namespaces share one clock). A figure below zero or above
// failoverWait says the clocks disagree; it is counted, not observed.

// failoverWait is how long a part waits for the others.
const failoverWait = 30 * time.Second

// failoverPair is how far apart this node may learn a drop and take a VIP
// over for the two to belong together: both come with the same token, so
// an older drop of the same node is an earlier life's.
const failoverPair = 2 * time.Second

var mFailoverUnmeasured = desc("failover_unmeasured_total",
	"Taken-over VIPs whose detection-to-GARP time could not be measured: no ack time on the drop's cause, or the clocks disagree (a time below zero or above 30 s).")

// failoverTimer pairs drops, take-overs and announcements. The zero
// value is ready.
type failoverTimer struct {
	mu         sync.Mutex
	drops      map[string]failoverDrop       // the latest drop of each node, by name
	waiting    map[netip.Addr]failoverWaiter // VIPs taken over, not yet measured
	hist       prometheus.Histogram          // observed seconds (init)
	unmeasured uint64                        // see mFailoverUnmeasured
	now        func() time.Time              // time.Now; tests replace it
}

type failoverDrop struct {
	lastAck int64     // Unix µs, the dropper's clock; 0 unknown
	seen    time.Time // when this node learnt the drop
}

type failoverWaiter struct {
	from  string    // the dropped node the VIP was taken from
	since time.Time // when this node took it over
	garp  time.Time // its first announcement since; zero until then
}

// init readies the zero value. f.mu is held.
func (f *failoverTimer) init() {
	if f.drops == nil {
		f.drops = map[string]failoverDrop{}
		f.waiting = map[netip.Addr]failoverWaiter{}
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.hist == nil {
		f.hist = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ringway", // as desc's metrics
			Name:      "failover_detect_to_garp_seconds",
			Help:      "Time from the last ack of a dropped node (the dropper's clock) to this node's first gratuitous ARP for a VIP it took over from it.",
			Buckets:   []float64{.01, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2, 5},
		})
	}
}

// dropped records that node was dropped, its last ack at lastAck (Unix µs
// on the dropper's clock, 0 unknown), and measures the VIPs taken from it
// that were already announced.
func (f *failoverTimer) dropped(node string, lastAck int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.drops[node] = failoverDrop{lastAck: lastAck, seen: f.now()}
	for vip, w := range f.waiting {
		if w.from == node && !w.garp.IsZero() && f.paired(w) {
			f.measure(vip, w)
		}
	}
	f.expire()
}

// tookOver records that this node now owns vip, which the dropped node
// from owned. Call it before the router learns the new ownership, so
// that the first announcement cannot come first.
func (f *failoverTimer) tookOver(vip netip.Addr, from string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.waiting[vip] = failoverWaiter{from: from, since: f.now()}
	f.expire()
}

// announced is the router's OnGARP: the first announcement of a VIP taken
// over completes its measurement when the drop is known.
func (f *failoverTimer) announced(vip netip.Addr, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	w, ok := f.waiting[vip]
	if !ok || !w.garp.IsZero() {
		return
	}
	w.garp = at
	f.waiting[vip] = w
	if f.paired(w) {
		f.measure(vip, w)
	}
}

// paired reports whether the drop of w.from this node knows belongs to
// w's take-over. f.mu is held.
func (f *failoverTimer) paired(w failoverWaiter) bool {
	d, ok := f.drops[w.from]
	return ok && d.seen.Sub(w.since).Abs() <= failoverPair
}

// measure observes w (drop known, announcement made) and forgets it.
// f.mu is held.
func (f *failoverTimer) measure(vip netip.Addr, w failoverWaiter) {
	delete(f.waiting, vip)
	d := f.drops[w.from]
	if d.lastAck == 0 {
		f.unmeasured++
		return
	}
	took := w.garp.Sub(time.UnixMicro(d.lastAck))
	if took < 0 || took > failoverWait {
		f.unmeasured++
		return
	}
	f.hist.Observe(took.Seconds())
}

// expire forgets parts older than failoverWait. f.mu is held.
func (f *failoverTimer) expire() {
	cut := f.now().Add(-failoverWait)
	for vip, w := range f.waiting {
		if w.since.Before(cut) {
			delete(f.waiting, vip)
			f.unmeasured++
		}
	}
	for node, d := range f.drops {
		if d.seen.Before(cut) {
			delete(f.drops, node)
		}
	}
}

// collect adds the histogram and the unmeasured count.
func (f *failoverTimer) collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.hist.Collect(ch)
	ch <- prometheus.MustNewConstMetric(mFailoverUnmeasured, prometheus.CounterValue, float64(f.unmeasured))
}
