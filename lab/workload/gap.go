package workload

import "time"

// Gap is a stretch of time in which no reply arrived.
type Gap struct {
	From time.Time     // the last reply before the gap (or the stream's start)
	To   time.Time     // the first reply after it (or the stream's end)
	Len  time.Duration // To - From
}

// gapTracker follows reply arrival times; it is the pure part of the stream's
// measurement (DESIGN.md "How we measure": the longest gap between two
// consecutive replies).
type gapTracker struct {
	threshold time.Duration // gaps at least this long are listed
	maxList   int           // at most this many listed gaps are kept

	start, last  time.Time // stream start, last reply (zero: none yet)
	flowingSince time.Time // first reply after the last listed gap
	longest      Gap
	gaps         []Gap
	dropped      int // listed gaps not kept (beyond maxList)
}

func newGapTracker(start time.Time, threshold time.Duration) *gapTracker {
	return &gapTracker{threshold: threshold, maxList: 1000, start: start}
}

// observe records a reply at t. Arrival times come in order from one socket;
// an earlier t (clock step) counts as a zero gap.
func (g *gapTracker) observe(t time.Time) {
	from := g.last
	if from.IsZero() {
		from = g.start
	}
	g.add(from, t)
	if g.last.IsZero() || t.Sub(from) >= g.threshold {
		g.flowingSince = t
	}
	if t.After(g.last) {
		g.last = t
	}
}

func (g *gapTracker) add(from, to time.Time) {
	d := to.Sub(from)
	if d < 0 {
		d = 0
	}
	gap := Gap{From: from, To: to, Len: d}
	if d > g.longest.Len || g.longest.From.IsZero() {
		g.longest = gap
	}
	if d >= g.threshold {
		if len(g.gaps) < g.maxList {
			g.gaps = append(g.gaps, gap)
		} else {
			g.dropped++
		}
	}
}

// finish returns the longest gap and the listed gaps of a stream that ended
// at end, counting the silence after the last reply (an outage that never
// recovered is as long as the stream let it be).
func (g *gapTracker) finish(end time.Time) (Gap, []Gap) {
	c := *g
	c.gaps = append([]Gap(nil), g.gaps...)
	from := c.last
	if from.IsZero() {
		from = c.start
	}
	if end.After(from) {
		c.add(from, end)
	}
	return c.longest, c.gaps
}
