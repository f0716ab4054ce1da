package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	p := &Ping{targets: []netip.Addr{a, b}, log: slog.New(slog.DiscardHandler)}
	p.healthy.init(true)
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
		was := p.Healthy()
		p.record(misses)
		if p.Healthy() != r.healthy {
			t.Errorf("round %d (answered %v): healthy %v, want %v; failing %v", i, r.answered, p.Healthy(), r.healthy, p.Failing())
		}
		// Changed signals exactly the rounds that flip the verdict.
		select {
		case <-p.Changed():
			if was == p.Healthy() {
				t.Errorf("round %d: Changed signalled, but healthy stayed %v", i, was)
			}
		default:
			if was != p.Healthy() {
				t.Errorf("round %d: healthy went %v → %v without a Changed signal", i, was, p.Healthy())
			}
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

// A real round trip on loopback (root: a raw socket; skipped otherwise):
// 127.0.0.1 answers, the monitor stays healthy and lists nothing failing.
func TestPingLoopback(t *testing.T) {
	p, err := NewPing([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, 20*time.Millisecond, 15*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("no raw ICMP socket here: %v", err)
	}
	answered := p.round(p.conn, 0x4242, 1, make([]byte, 1500))
	if !answered[netip.MustParseAddr("127.0.0.1")] {
		t.Errorf("127.0.0.1 did not answer one round: %v", answered)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.Healthy() || len(p.Failing()) != 0 {
		t.Errorf("after 150 ms of rounds on loopback: healthy %v, failing %v", p.Healthy(), p.Failing())
	}
}

// A check that leaves a child behind still passes when it exits 0, and the
// child does not outlive the check.
func TestCommandLeavesNothing(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := NewCommand("sleep 30 & echo $! > "+pidFile+"; exit 0", 5*time.Second, slog.New(slog.DiscardHandler))
	start := time.Now()
	if f := c.once(context.Background()); f != "" {
		t.Errorf("a check that exited 0: %q", f)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the check took %v: it waited for its child", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); err != nil {
			break // gone
		}
		if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(stat), ") Z ") {
			break // killed, not yet reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the check's child %d is still running", pid)
		}
	}
}

// A check that floods its output keeps at most MaxOutput bytes of it, and
// its failure still quotes the start.
func TestCommandOutputBounded(t *testing.T) {
	c := NewCommand("echo first; head -c 8000000 /dev/zero | tr '\\0' x; exit 2", 10*time.Second, slog.New(slog.DiscardHandler))
	var w boundedBuffer
	f := c.once(context.Background())
	if !strings.Contains(f, "exit status 2: first") || len(f) > 300 {
		t.Errorf("failure of a flooding check: %q... (%d bytes)", f[:min(len(f), 80)], len(f))
	}
	w.Write(make([]byte, 3*MaxOutput))
	w.Write([]byte("more"))
	if w.b.Len() != MaxOutput || w.dropped != 2*MaxOutput+4 {
		t.Errorf("bounded buffer holds %d, dropped %d", w.b.Len(), w.dropped)
	}
}

// RunAs: the check runs as the configured user (root only: switching users
// needs it).
func TestCommandRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a check as another user needs root")
	}
	// The ids come back in the failure message: exit 1 on purpose.
	c := NewCommand("echo ids $(id -u) $(id -g); exit 1", 5*time.Second, slog.New(slog.DiscardHandler))
	c.RunAs(65534, 65534, nil)
	if f := c.once(context.Background()); !strings.HasSuffix(f, "ids 65534 65534") {
		t.Errorf("the check as 65534: %q, want it to report uid and gid 65534", f)
	}
}

// A reload's new check: Run adopts it before its next check.
func TestCommandReconfigure(t *testing.T) {
	c := NewCommand("exit 0", 2*time.Second, slog.New(slog.DiscardHandler))
	c.Reconfigure("echo now failing; exit 4", 2*time.Second, false, 0, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); c.Healthy(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new check never ran")
		}
	}
	if f := c.Failure(); !strings.Contains(f, "exit status 4: now failing") {
		t.Errorf("failure %q, want the new check's", f)
	}
}

// A reload's new ping targets: kept targets keep their misses, dropped
// ones are forgotten; bad settings are refused.
func TestPingReconfigure(t *testing.T) {
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	p := &Ping{targets: []netip.Addr{a, b}, interval: time.Second, timeout: time.Second, log: slog.New(slog.DiscardHandler)}
	if err := p.Reconfigure(nil, time.Second, time.Second); err == nil {
		t.Error("no targets accepted")
	}
	if err := p.Reconfigure([]netip.Addr{netip.MustParseAddr("2001:db8::1")}, time.Second, time.Second); err == nil {
		t.Error("an IPv6 target accepted")
	}
	if p.adopt(map[netip.Addr]int{}) {
		t.Error("refused settings adopted")
	}
	if err := p.Reconfigure([]netip.Addr{b, c}, 2*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	misses := map[netip.Addr]int{a: 3, b: 1}
	if !p.adopt(misses) || !slices.Equal(p.targets, []netip.Addr{b, c}) || p.interval != 2*time.Second {
		t.Fatalf("after adopt: targets %v interval %v", p.targets, p.interval)
	}
	if _, ok := misses[a]; ok || misses[b] != 1 {
		t.Errorf("misses after adopt: %v", misses)
	}
}
