package rtsched

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// policyOf runs a shell under start and returns the scheduling policy
// field of its /proc/PID/stat (0 normal, 2 round-robin).
func policyOf(t *testing.T, start func(*exec.Cmd) error) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `cut -d' ' -f41 /proc/$$/stat`)
	var out strings.Builder
	cmd.Stdout = &out
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

// Set puts every thread under SCHED_RR (and back), and Start starts
// children under normal scheduling while a plain Start would hand them
// the process's real-time policy.
func TestSetAndStart(t *testing.T) {
	n, err := Set(7)
	if errors.Is(err, unix.EPERM) {
		t.Skip("no CAP_SYS_NICE here")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := Set(0); err != nil {
			t.Errorf("back to normal scheduling: %v", err)
		}
	})
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Fatalf("Set changed %d threads", n)
	}
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // ended meanwhile
		}
		if a.Policy != unix.SCHED_RR || a.Priority != 7 {
			t.Errorf("thread %d: policy %d priority %d, want SCHED_RR 7", tid, a.Policy, a.Priority)
		}
	}
	if got := policyOf(t, (*exec.Cmd).Start); got != "2" {
		t.Errorf("a child started plainly runs under policy %s; the test expects the inherited SCHED_RR (2)", got)
	}
	if got := policyOf(t, Start); got != "0" {
		t.Errorf("a child started with Start runs under policy %s, want SCHED_OTHER (0)", got)
	}
	if _, err := Set(100); err == nil {
		t.Error("Set(100) did not fail")
	}
}
