package ringnet_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringway/ringway/ring/ringnet"
)

// idleCore is a fakeCore that promises idle ticks and records when each
// Tick came (virtual time since the bubble started).
type idleCore struct {
	*fakeCore
	idle  int
	start time.Time
	at    []time.Duration
}

func (c *idleCore) IdleTicks() int { return c.idle }
func (c *idleCore) Tick() {
	c.fakeCore.Tick()
	c.at = append(c.at, time.Since(c.start))
}

var _ ringnet.Idler = (*idleCore)(nil)

func runOne(t *testing.T, core ringnet.Core, tick time.Duration) *ringnet.Driver {
	t.Helper()
	cfg := ringnet.TestConfig()
	cfg.Self, cfg.Nodes, cfg.Key, cfg.Logger, cfg.Tick = 1, addrs(1, 7000), key, quiet, tick
	cfg.Listen = newNet().Listen
	d, err := ringnet.New(cfg, core)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.Run(context.Background()); close(done) }()
	t.Cleanup(func() { d.Close(); <-done })
	return d
}

// TestIdleTicks: with a core that promises 9 idle ticks, the driver wakes
// every 10th tick and delivers them in a batch; an input in between first
// brings the core's clock up to the wall clock.
func TestIdleTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &idleCore{fakeCore: &fakeCore{}, idle: 9, start: time.Now()}
		d := runOne(t, c, 2*time.Millisecond)
		time.Sleep(33 * time.Millisecond)
		var ticksAtDo int
		d.Do(context.Background(), func(ringnet.Core) { ticksAtDo = c.ticks })
		if ticksAtDo != 16 {
			t.Errorf("ticks seen by Do at 33 ms = %d, want 16 (2, 4, ... 32 ms)", ticksAtDo)
		}
		time.Sleep(20 * time.Millisecond) // to 53 ms
		var at []time.Duration
		d.Do(context.Background(), func(ringnet.Core) { at = append(at, c.at...) })
		ms := time.Millisecond
		want := []time.Duration{
			20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, // ticks 2..20 ms, one wakeup
			33 * ms, 33 * ms, 33 * ms, 33 * ms, 33 * ms, 33 * ms, // 22..32 ms, brought up to date for Do
			52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, 52 * ms, // 34..52 ms
		}
		if diff := cmp.Diff(want, at); diff != "" {
			t.Errorf("tick delivery times (-want +got):\n%s", diff)
		}
	})
}

// TestTickStall: a core without Idler whose lock holder stalls gets one
// tick for the stall, not a burst (time.Ticker semantics).
func TestTickStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeCore{}
		d := runOne(t, c, 2*time.Millisecond)
		time.Sleep(time.Millisecond)
		d.Do(context.Background(), func(ringnet.Core) { time.Sleep(50 * time.Millisecond) }) // stall to 51 ms
		time.Sleep(50 * time.Millisecond)                                                    // to 101 ms
		var ticks int
		d.Do(context.Background(), func(ringnet.Core) { ticks = c.ticks })
		// One tick for the stall (due at 2 ms, delivered at 51), then 52, 54, ... 100.
		if ticks != 1+25 {
			t.Errorf("ticks after a 50 ms stall = %d, want 26", ticks)
		}
	})
}

// TestDriverNow: the core's clock is Config.Now, not the system clock. While
// Now stands still no tick is due, however often the timer fires; when it
// jumps 10 ms, the ticks due are delivered as after a stall (one tick that
// may act).
func TestDriverNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ahead atomic.Int64 // how far Config.Now is past the start
		start := time.Now()
		cfg := ringnet.TestConfig()
		cfg.Self, cfg.Nodes, cfg.Key, cfg.Logger = 1, addrs(1, 7000), key, quiet
		cfg.Listen = newNet().Listen
		cfg.Now = func() time.Time { return start.Add(time.Duration(ahead.Load())) }
		c := &fakeCore{}
		d, err := ringnet.New(cfg, c)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { d.Run(context.Background()); close(done) }()
		defer func() { d.Close(); <-done }()

		ticks := func() (n int) {
			d.Do(context.Background(), func(ringnet.Core) { n = c.ticks })
			return n
		}
		time.Sleep(100 * time.Millisecond) // virtual time
		if n := ticks(); n != 0 {
			t.Errorf("%d ticks while Config.Now stood still, want 0", n)
		}
		ahead.Store(int64(10 * time.Millisecond))
		time.Sleep(2 * time.Millisecond) // the timer fires within one tick
		if n := ticks(); n != 1 {
			t.Errorf("%d ticks after Config.Now moved 10 ms at once, want 1", n)
		}
	})
}
