package monitor

import (
	"sync"
	"sync/atomic"
)

// verdict is a monitor's healthy flag with a change signal, so the node
// hears of a change when it happens (and puts it on the token, through
// ring.Node.SetLocal) instead of polling every monitor.
type verdict struct {
	ok      atomic.Bool
	changed chan struct{} // capacity 1: a pending signal covers any number of changes
}

// init sets the first verdict, without a signal.
func (v *verdict) init(ok bool) {
	v.changed = make(chan struct{}, 1)
	v.ok.Store(ok)
}

// set records ok and signals Changed if it differs from before; it
// returns the previous value.
func (v *verdict) set(ok bool) (was bool) {
	was = v.ok.Swap(ok)
	if was != ok {
		select {
		case v.changed <- struct{}{}:
		default:
		}
	}
	return was
}

// outcome is the verdict of a monitor that runs a check (Command, Probe)
// with the reason its last run failed; they embed it for Healthy, Changed
// and Failure.
type outcome struct {
	healthy verdict
	mu      sync.Mutex
	failure string // why the last run failed, "" when it passed
}

// Healthy reports whether the last run passed. It never blocks.
func (o *outcome) Healthy() bool { return o.healthy.ok.Load() }

// Changed receives a value after Healthy's answer changes (one value may
// stand for several changes). It never closes.
func (o *outcome) Changed() <-chan struct{} { return o.healthy.changed }

// Failure says why the last run failed ("" when it passed).
func (o *outcome) Failure() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failure
}

// record stores a run's failure ("" = passed) and returns whether the
// monitor was healthy before.
func (o *outcome) record(failure string) (was bool) {
	o.mu.Lock()
	o.failure = failure
	o.mu.Unlock()
	return o.healthy.set(failure == "")
}
