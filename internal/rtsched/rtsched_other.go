//go:build !linux

package rtsched

import (
	"errors"
	"os/exec"
)

// Set fails: real-time scheduling is set through Linux's sched_setattr.
func Set(prio int) (int, error) {
	if prio == 0 {
		return 0, nil
	}
	return 0, errors.New("rtsched: real-time scheduling needs Linux")
}

// Current reports normal scheduling.
func Current() (policy uint32, prio uint32, err error) { return 0, 0, nil }

// Realtime reports whether policy is SCHED_FIFO (1) or SCHED_RR (2).
func Realtime(policy uint32) bool { return policy == 1 || policy == 2 }

// Start is cmd.Start.
func Start(cmd *exec.Cmd) error { return cmd.Start() }
