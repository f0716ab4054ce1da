package router

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	garpA = netip.MustParseAddr("203.0.113.91")
	garpB = netip.MustParseAddr("203.0.113.92")
	garpC = netip.MustParseAddr("203.0.113.93")
)

// clone copies g deeply, so a probe with due leaves g untouched.
func (g *garpSched) clone() *garpSched {
	c := *g
	c.vips = make(map[netip.Addr]*garpVIP, len(g.vips))
	for v, s := range g.vips {
		x := *s
		c.vips[v] = &x
	}
	return &c
}

func TestGARPNextAt(t *testing.T) {
	cfg := garpConfig{count: 3, interval: time.Second, refresh: 10 * time.Second, rate: 2, burst: 2}
	ms := time.Millisecond
	type want struct {
		At time.Duration
		OK bool
	}
	tests := []struct {
		name  string
		cfg   garpConfig
		setup func(g *garpSched) // acquires and due calls before nextAt
		now   time.Duration
		want  want
	}{
		{"nothing owned", cfg, func(g *garpSched) {}, 0, want{}},
		{"acquired, never run: due at once", cfg, func(g *garpSched) { g.acquire(garpA, 5*ms) }, 7 * ms, want{7 * ms, true}},
		{"acquired later than now", cfg, func(g *garpSched) { g.acquire(garpA, 9*ms) }, 7 * ms, want{9 * ms, true}},
		{"initial schedule: the next interval", cfg, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.due(0)
		}, 0, want{time.Second, true}},
		{"rate limit holds c back until a token accrues", cfg, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.acquire(garpB, 0)
			g.acquire(garpC, 0)
			g.due(0) // a and b; no token left
		}, 0, want{500 * ms, true}},
		{"token accrues after the earliest deadline", cfg, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.acquire(garpB, 0)
			g.due(0)
			g.acquire(garpC, 100*ms) // due at 100 ms, a token at 500 ms
		}, 50 * ms, want{500 * ms, true}},
		{"a whole token left: the deadline alone", cfg, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.due(0) // one token left
			g.acquire(garpB, 300*ms)
		}, 0, want{300 * ms, true}},
		{"schedule done, refresh off: nothing", garpConfig{count: 2, interval: time.Second, rate: 10, burst: 5}, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.due(0)
			g.due(time.Second)
		}, time.Second, want{}},
		{"released", cfg, func(g *garpSched) {
			g.acquire(garpA, 0)
			g.release(garpA)
		}, 0, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGARPSched(tt.cfg)
			tt.setup(g)
			at, ok := g.nextAt(tt.now)
			if diff := cmp.Diff(tt.want, want{at, ok}); diff != "" {
				t.Errorf("nextAt(%v) (-want +got):\n%s", tt.now, diff)
			}
		})
	}
}

// TestGARPNextAtMatchesTicker drives one schedule by its deadlines and a
// copy by a fine ticker. Every wakeup finds work and nothing was due a
// nanosecond before it. The announcements are the same in the same order;
// each is no later than the ticker's, and earlier only by the ticker's own
// lateness (which carries over: the next announcement is an interval after
// the last one sent, and tokens accrue from when they were spent).
func TestGARPNextAtMatchesTicker(t *testing.T) {
	for _, cfg := range []garpConfig{
		{count: 3, interval: time.Second, refresh: 10 * time.Second, rate: 2, burst: 2},
		{count: 3, interval: 100 * time.Millisecond, refresh: time.Second, rate: 500, burst: 1},
		{count: 2, interval: 300 * time.Millisecond, rate: 3.3, burst: 1},
		{count: 5, interval: 70 * time.Millisecond, refresh: 700 * time.Millisecond, rate: 7, burst: 3},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			type send struct {
				VIP netip.Addr
				At  time.Duration
			}
			const step = time.Millisecond
			end := 20 * time.Second
			acquire := func(g *garpSched) {
				for i, v := range []netip.Addr{garpA, garpB, garpC} {
					g.acquire(v, time.Duration(i)*13*time.Millisecond)
				}
			}
			g := newGARPSched(cfg)
			acquire(g)
			var got []send
			now := time.Duration(0)
			for {
				at, ok := g.nextAt(now)
				if !ok || at > end {
					break
				}
				if at > 0 {
					if early := g.clone().due(at - 1); len(early) != 0 {
						t.Fatalf("nextAt(%v) = %v, but %v were due at %v: late", now, at, early, at-1)
					}
				}
				now = at
				due := g.due(now)
				if len(due) == 0 {
					t.Fatalf("woke at %v for nothing", now)
				}
				for _, v := range due {
					got = append(got, send{v, now})
				}
			}
			ref := newGARPSched(cfg)
			acquire(ref)
			var want []send
			for now := time.Duration(0); len(want) < len(got) && now <= 2*end; now += step {
				for _, v := range ref.due(now) {
					want = append(want, send{v, now})
				}
			}
			if len(got) == 0 || len(want) < len(got) {
				t.Fatalf("%d announcements by deadline, %d by ticker", len(got), len(want))
			}
			const slack = time.Microsecond // float rounding of the token bucket
			var lag time.Duration
			for i := range got {
				lag = max(lag, want[i].At-got[i].At)
				if got[i].VIP != want[i].VIP || got[i].At > want[i].At+slack || want[i].At-got[i].At > 10*step {
					t.Fatalf("announcement %d: %v at %v by deadline, %v at %v by a %v ticker", i, got[i].VIP, got[i].At, want[i].VIP, want[i].At, step)
				}
			}
			t.Logf("%d announcements, the ticker up to %v later", len(got), lag)
		})
	}
}

func TestNeighNextAt(t *testing.T) {
	s := int64(time.Second)
	cfg := neighConfig{reachable: 10 * time.Second, probeWindow: 2 * time.Second, retry: time.Second, tries: 3, queueLen: 2}
	type want struct {
		At int64
		OK bool
	}
	tests := []struct {
		name  string
		setup func(nt *neighTable)
		now   int64
		want  want
	}{
		{"empty", func(nt *neighTable) {}, 0, want{}},
		{"pending: its retry", func(nt *neighTable) { nt.enqueue(serverIP, []byte("p"), 5*s) }, 5 * s, want{6 * s, true}},
		{"resolved: its expiry", func(nt *neighTable) { nt.learn(serverIP, otherMAC, learnCreate, 2*s) }, 3 * s, want{14 * s, true}},
		{"confirmed again: the later expiry", func(nt *neighTable) {
			nt.learn(serverIP, otherMAC, learnCreate, 2*s)
			nt.learn(serverIP, otherMAC, learnUpdate, 4*s)
		}, 4 * s, want{16 * s, true}},
		{"the earliest of both", func(nt *neighTable) {
			nt.learn(serverIP, otherMAC, learnCreate, 0)
			nt.enqueue(clientIP, []byte("p"), 11*s+s/2)
		}, 11*s + s/2, want{12 * s, true}},
		{"overdue: now", func(nt *neighTable) { nt.enqueue(serverIP, []byte("p"), 0) }, 3 * s, want{3 * s, true}},
		{"resolved after pending: no retry left", func(nt *neighTable) {
			nt.enqueue(serverIP, []byte("p"), 0)
			nt.learn(serverIP, otherMAC, learnUpdate, s/2)
		}, s / 2, want{12*s + s/2, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nt := newNeighTable(cfg)
			tt.setup(nt)
			at, ok := nt.nextAt(tt.now)
			if diff := cmp.Diff(tt.want, want{at, ok}); diff != "" {
				t.Errorf("nextAt(%v) (-want +got):\n%s", time.Duration(tt.now), diff)
			}
		})
	}
}

// TestNeighNextAtDrivesTick runs the cache by its deadlines alone: an
// unanswered host is retried and fails, an entry expires, each exactly when
// due and never a moment before.
func TestNeighNextAtDrivesTick(t *testing.T) {
	s := int64(time.Second)
	nt := newNeighTable(neighConfig{reachable: 10 * time.Second, probeWindow: 2 * time.Second, retry: time.Second, tries: 3, queueLen: 2})
	nt.learn(serverIP, otherMAC, learnCreate, 0)
	nt.enqueue(clientIP, []byte("c1"), s/2)
	type event struct {
		At       time.Duration
		Requests int
		Failed   int
		Entries  int
	}
	var got []event
	now := s / 2
	for range 10 {
		at, ok := nt.nextAt(now)
		if !ok {
			break
		}
		entries := nt.resolvedLen()
		if r, f := nt.tick(at - 1); len(r)+len(f) != 0 || nt.resolvedLen() != entries {
			t.Fatalf("work at %v, before nextAt said %v", time.Duration(at-1), time.Duration(at))
		}
		now = at
		r, f := nt.tick(now)
		got = append(got, event{time.Duration(now), len(r), len(f), nt.resolvedLen()})
	}
	want := []event{
		{1500 * time.Millisecond, 1, 0, 1},
		{2500 * time.Millisecond, 1, 0, 1},
		{3500 * time.Millisecond, 0, 1, 1},
		{12 * time.Second, 0, 0, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timer events (-want +got):\n%s", diff)
	}
}

// TestNeighWake checks the table wakes its timer for new work only.
func TestNeighWake(t *testing.T) {
	wake := make(chan struct{}, 1)
	nt := newNeighTable(neighConfig{reachable: 10 * time.Second, probeWindow: 2 * time.Second, retry: time.Second, tries: 3, queueLen: 2})
	nt.wake = wake
	woke := func() bool {
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"first packet for a host: a new resolution", func() { nt.enqueue(serverIP, []byte("p1"), 0) }, true},
		{"second packet: no new work", func() { nt.enqueue(serverIP, []byte("p2"), 1) }, false},
		{"answer: a new entry to expire", func() { nt.learn(serverIP, otherMAC, learnUpdate, 2) }, true},
		{"confirmation: only later work", func() { nt.learn(serverIP, otherMAC, learnUpdate, 3) }, false},
		{"changed MAC: a new entry", func() { nt.learn(serverIP, clientMAC, learnUpdate, 4) }, true},
		{"learnUpdate of an unknown host: nothing", func() { nt.learn(clientIP, clientMAC, learnUpdate, 5) }, false},
		{"learnCreate: a new entry", func() { nt.learn(clientIP, clientMAC, learnCreate, 6) }, true},
		{"tick: no new work", func() { nt.tick(7) }, false},
	}
	for _, st := range steps {
		st.do()
		if got := woke(); got != st.want {
			t.Errorf("%s: woke %v, want %v", st.name, got, st.want)
		}
	}
	// A full channel (a wakeup already pending) does not block the data path.
	wake <- struct{}{}
	nt.enqueue(vipExt, []byte("p"), 8)
}

func TestTimerSleep(t *testing.T) {
	s := int64(time.Second)
	tests := []struct {
		name    string
		now, at int64
		ok      bool
		limit   time.Duration
		want    time.Duration
	}{
		{"nothing scheduled: the limit", 5 * s, 0, false, time.Second, time.Second},
		{"due soon", 5 * s, 5*s + 20, true, time.Second, 20},
		{"due later than the limit", 5 * s, 9 * s, true, time.Second, time.Second},
		{"due now", 5 * s, 5 * s, true, time.Second, 0},
		{"overdue", 5 * s, 4 * s, true, time.Second, 0},
	}
	for _, tt := range tests {
		if got := timerSleep(tt.now, tt.at, tt.ok, tt.limit); got != tt.want {
			t.Errorf("%s: timerSleep = %v, want %v", tt.name, got, tt.want)
		}
	}
	type dl struct {
		At int64
		OK bool
	}
	for _, c := range []struct{ a, b, want dl }{
		{dl{}, dl{}, dl{}},
		{dl{3, true}, dl{}, dl{3, true}},
		{dl{}, dl{4, true}, dl{4, true}},
		{dl{3, true}, dl{2, true}, dl{2, true}},
	} {
		at, ok := earliest(c.a.At, c.a.OK, c.b.At, c.b.OK)
		if diff := cmp.Diff(c.want, dl{at, ok}); diff != "" {
			t.Errorf("earliest(%v, %v) (-want +got):\n%s", c.a, c.b, diff)
		}
	}
}
