package monitor

import "sync/atomic"

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
