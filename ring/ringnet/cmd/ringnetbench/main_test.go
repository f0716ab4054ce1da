package main

import (
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the command when the benchmark
// starts its child processes (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-ticker" || os.Args[1] == "-child") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs the benchmark briefly in-process, so that it keeps
// working as the core changes; the figures themselves come from make
// bench-ring.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ring of three on loopback")
	}
	for _, mode := range []string{"inproc", "proc"} {
		t.Run(mode, func(t *testing.T) { smoke(t, mode) })
	}
}

func smoke(t *testing.T, mode string) {
	rows, err := benchN(mode, 3, 2, 300*time.Millisecond, 0, -1, -1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Row{}
	for _, r := range rows {
		got[r.Metric] = r
	}
	for _, m := range []string{"crash_to_membership", "restart_to_rejoin", "cpu_per_node", "token_bytes_per_hop", "rotation", "formation", "baseline_ticker_cpu", "context_switches_per_hop"} {
		if _, ok := got[m]; !ok {
			t.Errorf("no %s row", m)
		}
	}
	if r := got["crash_to_membership"]; r.Samples+r.Fail != 2 || r.P50 <= 0 {
		t.Errorf("crash row %+v: want 2 trials with a positive p50", r)
	}
	if r := got["context_switches_per_hop"]; r.Value <= 0 {
		t.Errorf("context switches per hop %v: a hop must wake some thread", r.Value)
	}
	if r := got["token_bytes_per_hop"]; r.Value < 2*40 {
		t.Errorf("token bytes per hop %v: less than two datagram overheads", r.Value)
	}
}
