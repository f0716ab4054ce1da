package router

import "time"

// timerSleep is how long the timer goroutine sleeps at now (ns on the
// router's clock) when its earliest work is due at at (ok false: none is
// scheduled): until then, but at most limit. Work already due sleeps 0.
func timerSleep(now, at int64, ok bool, limit time.Duration) time.Duration {
	if !ok {
		return limit
	}
	return max(0, min(time.Duration(at-now), limit))
}

// earliest combines two optional deadlines.
func earliest(a int64, aok bool, b int64, bok bool) (int64, bool) {
	switch {
	case !aok:
		return b, bok
	case !bok:
		return a, aok
	}
	return min(a, b), true
}
