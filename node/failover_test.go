package node

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// failoverFigures collects f and returns the histogram's count and sum
// and the unmeasured count.
func failoverFigures(t *testing.T, f *failoverTimer) (count uint64, sum float64, unmeasured float64) {
	t.Helper()
	ch := make(chan prometheus.Metric, 4)
	f.collect(ch)
	close(ch)
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Histogram != nil:
			count, sum = d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum()
		case d.Counter != nil:
			unmeasured = d.Counter.GetValue()
		}
	}
	return count, sum, unmeasured
}

// The three parts of a fail-over's timing meet in any order, and the
// figure is the first announcement's time minus the dropper's last ack.
func TestFailoverTimerOrders(t *testing.T) {
	base := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	vip := netip.MustParseAddr("203.0.113.10")
	lastAck := base.UnixMicro()
	garp := base.Add(87 * time.Millisecond)
	orders := map[string][]string{
		"drop, take-over, GARP": {"drop", "take", "garp"},
		"take-over, GARP, drop": {"take", "garp", "drop"},
		"take-over, drop, GARP": {"take", "drop", "garp"},
	}
	for name, steps := range orders {
		t.Run(name, func(t *testing.T) {
			f := &failoverTimer{now: func() time.Time { return base.Add(time.Second) }}
			for _, s := range steps {
				switch s {
				case "drop":
					f.dropped("n2", lastAck)
				case "take":
					f.tookOver(vip, "n2")
				case "garp":
					f.announced(vip, garp)
				}
			}
			// A later announcement (the schedule's second) changes nothing.
			f.announced(vip, garp.Add(time.Second))
			count, sum, un := failoverFigures(t, f)
			if count != 1 || un != 0 {
				t.Fatalf("count %d, unmeasured %v; want 1 and 0", count, un)
			}
			if got := time.Duration(sum * float64(time.Second)); got < 86*time.Millisecond || got > 88*time.Millisecond {
				t.Errorf("observed %v, want 87ms", got)
			}
		})
	}
}

// Without an ack time, with clocks that disagree, or when a part never
// comes, nothing is observed and the VIP is counted unmeasured; a VIP
// this node did not take over is never observed.
func TestFailoverTimerUnmeasured(t *testing.T) {
	base := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	now := base
	f := &failoverTimer{now: func() time.Time { return now }}
	a, b, c, d := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11"),
		netip.MustParseAddr("203.0.113.12"), netip.MustParseAddr("203.0.113.13")

	f.announced(d, base) // not taken over: ignored

	f.tookOver(a, "n2") // node 2's drop has no ack time
	f.dropped("n2", 0)
	f.announced(a, base)

	f.tookOver(b, "n3") // the announcement "before" the last ack: clocks disagree
	f.dropped("n3", base.Add(time.Second).UnixMicro())
	f.announced(b, base)

	f.dropped("n4", base.UnixMicro()) // an earlier life's drop of node 4...
	now = base.Add(10 * time.Second)
	f.tookOver(c, "n4") // ...does not time this take-over, whose drop never arrives
	f.announced(c, now)
	now = now.Add(failoverWait + time.Second)
	f.dropped("n5", base.UnixMicro()) // any later call expires c

	count, _, un := failoverFigures(t, f)
	if count != 0 || un != 3 {
		t.Errorf("count %d, unmeasured %v; want 0 and 3", count, un)
	}
	if len(f.waiting) != 0 {
		t.Errorf("%d VIPs still wait after they were measured or expired", len(f.waiting))
	}
}
