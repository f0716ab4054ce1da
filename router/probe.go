package router

import (
	"errors"
	"time"
)

// ProbeResult is one receive worker's answer to Router.Probe: the patent's
// "dummy packets" application check, run by the worker itself.
type ProbeResult struct {
	// Worker names the worker: "ext0 queue 0" (a capture NIC's receive
	// queue) or "tun" (the reader of the OS's replies).
	Worker string
	// Answered is true when the worker ran the probe on its own goroutine
	// before the deadline.
	Answered bool
	// Busy is how long the worker had been inside one batch when the
	// deadline passed without an answer (0 when it was not inside one).
	Busy time.Duration
	// Failure says why the worker fails the check: no answer in time
	// (wedged inside a batch, or blocked in Read and not woken), or a
	// probe decided otherwise than it must be. "" when it passes: it
	// answered rightly, or it cannot be woken and was waiting for frames,
	// not inside a batch (see Probe).
	Failure string
}

// ErrNotRunning is returned by Probe when Run is not running: there are no
// workers to ask.
var ErrNotRunning = errors.New("router: not running")

// FilterChecker is an optional interface of a Filter: the verdict without
// its effects, for the synthetic probes (Router.Probe). Without it the
// filter is not probed (Pass would create flows and count drops for the
// probes).
type FilterChecker interface {
	// Check reports whether Pass(ip, in, out, now) would pass ip, without
	// creating or updating a flow and without counting. It runs through
	// the same parsing, anti-spoofing checks, flow lookup and rules as
	// Pass; the same rules as Pass apply (no keeping ip, no blocking, no
	// allocating).
	Check(ip []byte, in, out int, now int64) bool
}
