package router

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRunTimerIsKicked runs the timer goroutine on a fake clock (synctest)
// with a safety-net Tick of an hour, so only deadlines and kicks wake it: an
// unresolved next hop created by the data path is retried and fails on the
// ARP schedule, and a VIP acquired by SetOwned is announced at once and on
// the GARP schedule.
func TestRunTimerIsKicked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := testRouter(t)
		r.cfg.Tick = time.Hour
		r.log = slog.New(slog.DiscardHandler)
		r.garp = newGARPSched(r.cfg.garpConfig())
		r.wireTimer()
		r.SetOwned(nil) // testRouter's VIPs; acquired again below
		wsh, tsh := newShard(2), newShard(2)
		w := r.newWorker(0, nil, wsh)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.runTimer(ctx, tsh); close(done) }()
		synctest.Wait() // the first pass; nothing due

		type counts struct {
			Resolves   uint64 // ARP requests on int0 (worker and timer)
			Unresolved uint64 // queued frames dropped by the timer
			GARPs      uint64 // on ext0
		}
		read := func() counts {
			return counts{wsh.links[1].arpResolves.load() + tsh.links[1].arpResolves.load(),
				tsh.links[1].drops[DropNeighUnresolved].load(), tsh.links[0].garps.load()}
		}
		// wait advances the fake clock by d and lets the timer run.
		wait := func(d time.Duration) { time.Sleep(d); synctest.Wait() }

		hop := netip.MustParseAddr("198.51.100.77") // on int0, never answers
		frame := ipFrame(extMAC, clientMAC, clientIP, hop, 64, protoUDP, make([]byte, 18))
		buf := make([]byte, vnetHdrLen+len(frame))
		copy(buf[vnetHdrLen:], frame)
		w.send(1, hop, buf, r.now(), true)
		synctest.Wait()
		retry := r.cfg.NeighRetry
		var got []counts
		got = append(got, read())
		wait(retry - 1)
		got = append(got, read())
		for range 3 {
			wait(retry)
			got = append(got, read())
		}
		r.SetOwned([]netip.Addr{vipExt})
		synctest.Wait()
		got = append(got, read())
		wait(r.cfg.GARPInterval)
		got = append(got, read())
		wait(r.cfg.GARPInterval)
		got = append(got, read())
		wait(r.cfg.GARPRefresh)
		got = append(got, read())
		want := []counts{
			{1, 0, 0}, // the worker's request
			{1, 0, 0}, // not a moment early
			{2, 0, 0}, // retried
			{3, 0, 0},
			{3, 1, 0}, // third try unanswered: the queued frame is dropped
			{3, 1, 1}, // acquired: announced at once
			{3, 1, 2},
			{3, 1, 3},
			{3, 1, 4}, // refresh
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("timer work by fake time (-want +got):\n%s", diff)
		}
		cancel()
		<-done
	})
}
