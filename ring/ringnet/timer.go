package ringnet

import (
	"context"
	"time"
)

// TimerKind selects how the driver wakes for the core's timers.
type TimerKind uint8

const (
	// TimerDefault is TimerOS where the system has one, else TimerGo.
	TimerDefault TimerKind = iota
	// TimerOS is a Linux timerfd that the runtime's network poller
	// watches. Arming it is one system call; nothing else wakes. A
	// time.Timer armed by a running goroutine makes the runtime wake an
	// idle thread to watch the timer heap (wakeNetPoller → wakep), and its
	// firing readies the waiting goroutine through one more handoff: at
	// one arm and one fire per token hop that was about a quarter of a
	// ring node's CPU (docs/ring.md, "CPU").
	TimerOS
	// TimerGo is a time.Timer. It follows a testing/synctest bubble's
	// virtual clock, which the timerfd cannot; TestConfig selects it.
	TimerGo
)

// wakeTimer wakes the Run goroutine after a delay set by whichever
// goroutine holds the core lock. It takes durations, not instants: the
// instants are on the driver's clock (Config.Now), which the system's
// timers do not know; a timer only measures how long to wait.
type wakeTimer interface {
	// set arms the timer to fire after d (at once if d ≤ 0), replacing
	// any earlier setting.
	set(d time.Duration)
	// wait blocks until the timer fires (true) or ctx ends (false; the
	// caller arranges for stop to be called when ctx ends).
	wait(ctx context.Context) bool
	// stop releases the timer and ends a wait; safe to call twice.
	stop()
}

// newWakeTimer returns the timer of kind k, falling back to TimerGo when
// the system's timer cannot be had.
func newWakeTimer(k TimerKind, first time.Duration) wakeTimer {
	if k != TimerGo {
		if t, err := newOSTimer(); err == nil {
			t.set(first)
			return t
		}
	}
	return &goTimer{t: time.NewTimer(first)}
}

type goTimer struct{ t *time.Timer }

func (g *goTimer) set(d time.Duration) { g.t.Reset(d) }
func (g *goTimer) stop()               { g.t.Stop() }
func (g *goTimer) wait(ctx context.Context) bool {
	select {
	case <-g.t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
