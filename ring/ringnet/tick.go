package ringnet

import "time"

// maxIdle bounds how long the driver sleeps on an Idler's word, in ticks,
// so that a core's wrong answer costs at most this much lateness.
const maxIdle = 500

// tickClock decides when the core's Ticks happen. Ticks are due on a grid
// of period tick from the start, on the driver's clock (Config.Now): now
// is read for every decision, and the timer is only told how long to wait. Each wakeup delivers, in order, every due
// tick the core promised idle (Idler) and at most one tick that may act;
// further due ticks are dropped, as time.Ticker drops ticks for a slow
// reader: after a stall (GC, a descheduled VM) the core's timers stretch
// rather than fire in a burst before the datagrams queued meanwhile
// (typically the very acks they wait for) are read.
type tickClock struct {
	tick  time.Duration
	now   func() time.Time // Config.Now
	next  time.Time        // when the next undelivered tick is due
	idle  int              // ticks from next on that the core promised idle
	core  Core
	idler Idler  // nil: tick every period
	lag   Lagger // nil: the core is not told of stalls
	timer wakeTimer
	// armedAt is when the timer is set to fire, while armed: arm leaves a
	// timer that is already right alone (a Reset to an earlier time wakes
	// the runtime's poller).
	armedAt time.Time
	armed   bool
}

func newTickClock(tick time.Duration, now func() time.Time, core Core, kind TimerKind) *tickClock {
	c := &tickClock{tick: tick, now: now, next: now().Add(tick), core: core}
	c.idler, _ = core.(Idler)
	c.lag, _ = core.(Lagger)
	c.timer = newWakeTimer(kind, tick)
	c.armed, c.armedAt = true, c.next
	c.ask()
	c.arm()
	return c
}

// ask refreshes the idle promise; call it after anything that may have
// changed the core (a Step, a Do, an acting tick).
func (c *tickClock) ask() {
	c.idle = 0
	if c.idler != nil {
		c.idle = min(max(c.idler.IdleTicks(), 0), maxIdle)
	}
}

// arm sets the timer for the next tick that may act.
func (c *tickClock) arm() {
	c.ask()
	at := c.next.Add(time.Duration(c.idle) * c.tick)
	if c.armed && at.Equal(c.armedAt) {
		return
	}
	c.armed, c.armedAt = true, at
	c.timer.set(at.Sub(c.now()))
}

// fired records that the timer has fired (its value was received).
func (c *tickClock) fired() { c.armed = false }

// advance delivers the ticks due now and calls flush after a tick that may
// act. It reports whether flush did (the core left).
func (c *tickClock) advance(flush func() bool) bool {
	now := c.now()
	acted := false
	for !now.Before(c.next) {
		if c.idle > 0 {
			c.idle--
			c.core.Tick()
			c.next = c.next.Add(c.tick)
			continue
		}
		if acted {
			// Late by more than one acting tick: drop the rest.
			skip := now.Sub(c.next)/c.tick + 1
			c.next = c.next.Add(skip * c.tick)
			break
		}
		acted = true
		if late := now.Sub(c.next) / c.tick; late > 0 && c.lag != nil {
			c.lag.Lag(int(min(late, 1<<20)))
		}
		c.core.Tick()
		c.next = c.next.Add(c.tick)
		if flush() {
			return true
		}
		c.ask()
	}
	return false
}
