// Package rtsched puts the whole process under real-time scheduling
// (SCHED_RR), and starts child processes under normal scheduling.
//
// Why: on a busy host a node's threads wait behind every other runnable
// thread, and a hop acknowledgement that waits long enough is a false
// removal (docs/ring.md, "Real-time scheduling"). corosync runs its main
// loop with SCHED_RR for the same reason. Go cannot give one goroutine its
// own thread priority reliably (the runtime's processors are shared by
// all threads), so every thread of the process gets it; threads the
// runtime creates later inherit it from the thread that creates them.
package rtsched

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Set gives every thread of the process the policy SCHED_RR at prio
// (1-99), or SCHED_OTHER at nice 0 for prio 0, and returns how many
// threads it changed. Without CAP_SYS_NICE (or an RLIMIT_RTPRIO of at
// least prio) it fails with an error that wraps unix.EPERM, having
// changed nothing it could not change back.
func Set(prio int) (threads int, err error) {
	if prio < 0 || prio > 99 {
		return 0, fmt.Errorf("rtsched: priority %d, want 0 to 99", prio)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedOther}
	if prio > 0 {
		attr.Policy, attr.Priority = unix.SCHED_RR, uint32(prio)
	}
	done := map[int]bool{}
	// Threads created while the list is walked may come from a thread not
	// yet changed: walk again until a walk finds nothing new.
	for pass := 0; pass < 16; pass++ {
		tids, err := threadIDs()
		if err != nil {
			return threads, err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended meanwhile
				}
				if threads > 0 && prio > 0 {
					_, _ = Set(0)
				}
				return 0, fmt.Errorf("rtsched: thread %d: %w", tid, err)
			}
			done[tid] = true
			threads++
		}
		if fresh == 0 {
			return threads, nil
		}
	}
	return threads, nil
}

// threadIDs lists the process's threads.
func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("rtsched: %w", err)
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}

// Current returns the calling thread's policy and real-time priority.
func Current() (policy uint32, prio uint32, err error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, 0, err
	}
	return a.Policy, a.Priority, nil
}

// Realtime reports whether policy is a real-time one.
func Realtime(policy uint32) bool { return policy == unix.SCHED_RR || policy == unix.SCHED_FIFO }

// Start starts cmd under normal scheduling whatever the process runs
// under: a child inherits the policy of the thread that forks it, and an
// operator's check script must not run with real-time priority. It forks
// from a thread of its own that it first sets to SCHED_OTHER; that thread
// ends with the call (a goroutine that exits locked to its thread takes
// the thread with it).
func Start(cmd *exec.Cmd) error {
	if p, _, err := Current(); err != nil || !Realtime(p) {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedOther}, 0); err != nil {
			errc <- fmt.Errorf("rtsched: normal scheduling for %s: %w", cmd.Path, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// schedOther is SCHED_OTHER (SCHED_NORMAL), which x/sys/unix does not name.
const schedOther = 0
