package monitor

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint32
		want  bool
	}{
		{"up with carrier", unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING, true},
		{"up, no carrier (cable out, veth peer down)", unix.IFF_UP, false},
		{"administratively down", unix.IFF_LOWER_UP, false},
		{"nothing", 0, false},
	} {
		if got := LinkUp(tc.flags); got != tc.want {
			t.Errorf("%s: LinkUp(%#x) = %v, want %v", tc.name, tc.flags, got, tc.want)
		}
	}
}

// The ping monitor's verdict: PingMisses rounds in a row make a target
// failing, one answer clears it; the node is unhealthy only while every
// target fails.
func TestPingRecord(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	p := NewPing([]netip.Addr{a, b}, time.Second, time.Second, slog.New(slog.DiscardHandler))
	misses := map[netip.Addr]int{}
	rounds := []struct {
		answered []netip.Addr
		healthy  bool
	}{
		{[]netip.Addr{a, b}, true},
		{[]netip.Addr{a}, true}, // b missed once
		{[]netip.Addr{a}, true}, // b failing, a answers
		{nil, true},             // a missed once
		{nil, false},            // both failing
		{[]netip.Addr{b}, true}, // b answers again
		{[]netip.Addr{a, b}, true},
	}
	for i, r := range rounds {
		for _, x := range []netip.Addr{a, b} {
			if slices.Contains(r.answered, x) {
				misses[x] = 0
			} else {
				misses[x]++
			}
		}
		p.record(misses)
		if p.Healthy() != r.healthy {
			t.Errorf("round %d (answered %v): healthy %v, want %v; failing %v", i, r.answered, p.Healthy(), r.healthy, p.Failing())
		}
	}
}

func TestCommandOnce(t *testing.T) {
	c := NewCommand("exit 0", time.Second, slog.New(slog.DiscardHandler))
	if f := c.once(context.Background()); f != "" {
		t.Errorf("exit 0 failed: %q", f)
	}
	c = NewCommand("echo broken; exit 3", time.Second, slog.New(slog.DiscardHandler))
	f := c.once(context.Background())
	if !strings.Contains(f, "exit status 3") || !strings.Contains(f, "broken") {
		t.Errorf("exit 3: %q, want the status and the output", f)
	}
	c.record(f)
	if c.Healthy() || c.Failure() != f {
		t.Errorf("after a failed run: healthy %v, failure %q", c.Healthy(), c.Failure())
	}
	c.record("")
	if !c.Healthy() {
		t.Error("not healthy after a run that passed")
	}
	c = NewCommand("sleep 5", 50*time.Millisecond, slog.New(slog.DiscardHandler))
	if f := c.once(context.Background()); !strings.Contains(f, "no result within") {
		t.Errorf("a hung check: %q", f)
	}
}
