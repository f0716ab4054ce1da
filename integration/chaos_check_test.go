//go:build linux

package integration

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringway/ringway/lab/workload"
)

// The chaos suite's invariant, checked on the ARP claims captured on the
// client's and the server's NIC (workload.ARPObserver, which probes every
// VIP of its subnet every chaosProbe): time is cut into slots of chaosSlot;
// every slot that lies outside every fail-over window is checked against
// what the nemesis said the hosts should see then (an expectation).

// expectation is what a host on the client's side of the lab should see of
// the VIPs of its subnet.
type expectation int

const (
	// expectServe: every open VIP answered, by one MAC at a time: a slot
	// may hold one clean handover (A's claims, then only B's: a VIP moved
	// between two live members, e.g. back to its preferred node), but
	// not claims that interleave (A, B, A: two nodes answering at once).
	expectServe expectation = iota
	// expectSilent: no VIP answered (quorum majority, and the hosts' side
	// of a partition has no majority of the node map: it releases its VIPs).
	expectSilent
	// expectSome: every VIP answered, by one MAC or more. Quorum
	// availability with a node that can send but not hear: it is alone
	// and claims every VIP by design (the patent's alone mode), and its
	// gratuitous ARP reaches the hosts beside the ring's answers.
	expectSome
)

func (e expectation) String() string {
	return [...]string{"one answer per VIP", "no answer", "at least one answer per VIP"}[e]
}

// timeline is what the nemesis did: fail-over windows, in which the
// invariant is not checked, and phases, each with what the hosts should see
// from its start until the next one.
type timeline struct {
	mu      sync.Mutex
	windows [][2]time.Time
	phases  []phase // in time order
}

type phase struct {
	from   time.Time
	expect expectation
	what   string // the fault in force ("" between faults)
}

// window exempts [from, to) from the check.
func (tl *timeline) window(from, to time.Time) {
	if !to.After(from) {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.windows = append(tl.windows, [2]time.Time{from, to})
}

// phase says what the hosts should see from at on.
func (tl *timeline) phase(at time.Time, e expectation, what string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.phases = append(tl.phases, phase{at, e, what})
}

// at returns the phase in force over all of [from, to); ok is false when
// the slot straddles a change of phase.
func (tl *timeline) at(from, to time.Time) (phase, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var cur phase
	found := false
	for _, p := range tl.phases {
		if p.from.After(from) {
			if p.from.Before(to) {
				return phase{}, false
			}
			break
		}
		cur, found = p, true
	}
	return cur, found
}

// inWindow reports whether t lies in a fail-over window.
func (tl *timeline) inWindow(t time.Time) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, w := range tl.windows {
		if !t.Before(w[0]) && t.Before(w[1]) {
			return true
		}
	}
	return false
}

// fault returns the fault in force at t ("" between faults).
func (tl *timeline) fault(t time.Time) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	what := ""
	for _, p := range tl.phases {
		if p.from.After(t) {
			break
		}
		what = p.what
	}
	return what
}

// free returns the parts of [from, to) outside every fail-over window,
// cut where a phase begins, in time order.
func (tl *timeline) free(from, to time.Time) [][2]time.Time {
	tl.mu.Lock()
	ws := slices.Clone(tl.windows)
	var cuts []time.Time
	for _, p := range tl.phases {
		cuts = append(cuts, p.from)
	}
	tl.mu.Unlock()
	slices.SortFunc(ws, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var out [][2]time.Time
	add := func(a, b time.Time) {
		for _, c := range cuts {
			if c.After(a) && c.Before(b) {
				out = append(out, [2]time.Time{a, c})
				a = c
			}
		}
		if a.Before(b) {
			out = append(out, [2]time.Time{a, b})
		}
	}
	slices.SortFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
	at := from
	for _, w := range ws {
		if !w[1].After(at) {
			continue
		}
		if w[0].After(at) {
			add(at, minTime(w[0], to))
		}
		at = w[1]
		if !at.Before(to) {
			return out
		}
	}
	add(at, to)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// violation is one slot in which one VIP broke the invariant.
type violation struct {
	side  string // "client" or "server"
	from  time.Time
	vip   netip.Addr
	macs  []string // the answerers, by node name where known
	seq   string   // the claims in order, run-length ("n1×4 n3×2 n1×1")
	phase phase
}

func (v violation) String() string {
	what := v.phase.what
	if what == "" {
		what = "no fault"
	}
	return fmt.Sprintf("%s %s: %s answered by %d %v (claims %s), want %s (%s)",
		v.from.Format("15:04:05.000"), v.side, v.vip, len(v.macs), v.macs, v.seq, v.phase.expect, what)
}

// checkARP checks the claims seen on one side in [from, to) slot by slot:
// each stretch outside the fail-over windows (and within one phase) is cut
// into whole slots from its start. It returns how many slots it checked and
// the violations. names maps a MAC (net.HardwareAddr.String) to a node name
// for the report.
func checkARP(side string, events []workload.ARPEvent, vips []netip.Addr, tl *timeline, from, to time.Time, slot time.Duration, names map[string]string) (checked int, out []violation) {
	for _, iv := range tl.free(from, to) {
		for s := iv[0]; !s.Add(slot).After(iv[1]); s = s.Add(slot) {
			checked++
			out = append(out, checkSlot(side, events, vips, tl, s, s.Add(slot), names)...)
		}
	}
	return checked, out
}

func checkSlot(side string, events []workload.ARPEvent, vips []netip.Addr, tl *timeline, s, e time.Time, names map[string]string) (out []violation) {
	ph, ok := tl.at(s, e)
	if !ok {
		return nil // cannot happen: free cuts at every phase
	}
	for _, vip := range vips {
		got := workload.Answerers(events, vip, s, e)
		bad := false
		switch ph.expect {
		case expectServe:
			bad = len(got) == 0 || switches(events, vip, s, e) > 1
		case expectSilent:
			bad = len(got) != 0
		case expectSome:
			bad = len(got) == 0
		}
		if bad {
			out = append(out, violation{side: side, from: s, vip: vip, macs: macNames(got, names), seq: claimSeq(events, vip, s, e, names), phase: ph})
		}
	}
	return out
}

// switches counts how often the claimant of ip changes from one claim to
// the next in [from, to) (events are in arrival order).
func switches(events []workload.ARPEvent, ip netip.Addr, from, to time.Time) int {
	var last net.HardwareAddr
	n := 0
	for _, e := range events {
		if e.IP != ip || e.Time.Before(from) || !e.Time.Before(to) {
			continue
		}
		if last != nil && !slices.Equal(last, e.MAC) {
			n++
		}
		last = e.MAC
	}
	return n
}

// claimSeq writes the claims of ip in [from, to) run-length encoded.
func claimSeq(events []workload.ARPEvent, ip netip.Addr, from, to time.Time, names map[string]string) string {
	var parts []string
	var last net.HardwareAddr
	k := 0
	flush := func() {
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", macNames([]net.HardwareAddr{last}, names)[0], k))
		}
	}
	for _, e := range events {
		if e.IP != ip || e.Time.Before(from) || !e.Time.Before(to) {
			continue
		}
		if last != nil && !slices.Equal(last, e.MAC) {
			flush()
			k = 0
		}
		last = e.MAC
		k++
	}
	flush()
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func macNames(macs []net.HardwareAddr, names map[string]string) []string {
	var out []string
	for _, m := range macs {
		if n, ok := names[m.String()]; ok {
			out = append(out, n)
		} else {
			out = append(out, m.String())
		}
	}
	return out
}

// TestChaosChecker: the invariant checker catches two answerers, a VIP
// nobody answers and an answer where silence is due, and exempts fail-over
// windows. No root needed.
func TestChaosChecker(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	vip := netip.MustParseAddr("203.0.113.91")
	a, b := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	names := map[string]string{a.String(): "n1", b.String(): "n2"}
	const slot = 500 * time.Millisecond
	// answers: MAC per 100 ms tick, for 4 s; nil: no answer.
	claims := func(who func(k int) []net.HardwareAddr) []workload.ARPEvent {
		var ev []workload.ARPEvent
		for k := range 40 {
			for _, m := range who(k) {
				ev = append(ev, workload.ARPEvent{Time: t0.Add(time.Duration(k) * 100 * time.Millisecond), Op: workload.ARPReply, IP: vip, MAC: m})
			}
		}
		return ev
	}
	for _, tc := range []struct {
		name    string
		who     func(k int) []net.HardwareAddr
		setup   func(tl *timeline)
		wantBad []string // slot starts (ms after t0) that must be reported
	}{
		{"steady owner", func(int) []net.HardwareAddr { return []net.HardwareAddr{a} }, nil, nil},
		{"fail-over inside the window", func(k int) []net.HardwareAddr {
			switch {
			case k < 10:
				return []net.HardwareAddr{a}
			case k < 13:
				return []net.HardwareAddr{a, b}
			}
			return []net.HardwareAddr{b}
		}, func(tl *timeline) { tl.window(t0.Add(time.Second), t0.Add(2*time.Second)) }, nil},
		{"two answerers outside a window", func(k int) []net.HardwareAddr {
			if k >= 20 && k < 22 {
				return []net.HardwareAddr{a, b}
			}
			return []net.HardwareAddr{a}
		}, nil, []string{"2000"}},
		{"a clean handover", func(k int) []net.HardwareAddr {
			if k < 23 {
				return []net.HardwareAddr{a}
			}
			return []net.HardwareAddr{b}
		}, nil, nil},
		{"a stale claim after a handover", func(k int) []net.HardwareAddr {
			switch {
			case k < 23 || k == 24:
				return []net.HardwareAddr{a}
			}
			return []net.HardwareAddr{b}
		}, nil, []string{"2000"}},
		{"two answerers just after a window", func(k int) []net.HardwareAddr {
			if k == 12 {
				return []net.HardwareAddr{a, b}
			}
			return []net.HardwareAddr{a}
		}, func(tl *timeline) { tl.window(t0.Add(time.Second), t0.Add(1200*time.Millisecond)) }, []string{"1200"}},
		{"nobody answers", func(k int) []net.HardwareAddr {
			if k >= 5 && k < 15 {
				return nil
			}
			return []net.HardwareAddr{a}
		}, nil, []string{"500", "1000"}},
		{"an answer where silence is due", func(k int) []net.HardwareAddr {
			if k == 31 {
				return []net.HardwareAddr{b}
			}
			return nil
		}, func(tl *timeline) { tl.phase(t0, expectSilent, "partition") }, []string{"3000"}},
		{"two answerers allowed", func(k int) []net.HardwareAddr { return []net.HardwareAddr{a, b} },
			func(tl *timeline) { tl.phase(t0, expectSome, "one-way cut") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := &timeline{}
			tl.phase(t0.Add(-time.Second), expectServe, "")
			if tc.setup != nil {
				tc.setup(tl)
			}
			n, vs := checkARP("client", claims(tc.who), []netip.Addr{vip}, tl, t0, t0.Add(4*time.Second), slot, names)
			if n == 0 {
				t.Fatal("no slot checked")
			}
			var got []string
			for _, v := range vs {
				got = append(got, fmt.Sprint(v.from.Sub(t0).Milliseconds()))
			}
			if !slices.Equal(got, tc.wantBad) {
				t.Errorf("violations in slots %v, want %v:\n%s", got, tc.wantBad, strings.Join(violationLines(vs), "\n"))
			}
		})
	}
}

func violationLines(vs []violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

// TestMembershipLine: the suite finds membership changes in node logs.
func TestMembershipLine(t *testing.T) {
	line := `time=2026-12-05T05:23:45.587Z level=INFO msg=membership change=dropped cause="n3 dropped n4: hop \"x\" unacknowledged" members="[n1 n2 n3]" ring=fa77 learnt=true`
	m := membershipLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatal("no match")
	}
	if m[1] != "2026-12-05T05:23:45.587Z" || m[2] != "dropped" || m[3] != `n3 dropped n4: hop \"x\" unacknowledged` {
		t.Errorf("got %q", m[1:])
	}
}
