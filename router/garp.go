package router

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"
)

// garpConfig is the gratuitous ARP schedule.
type garpConfig struct {
	count    int           // announcements right after acquiring a VIP (the first at once)
	interval time.Duration // between those announcements
	refresh  time.Duration // then one announcement every refresh; 0 disables
	rate     float64       // announcements per second across all VIPs, sustained
	burst    int           // announcements that may go out at once
}

// garpSched decides when each owned VIP is announced. It is pure: time is
// an argument (a duration on the caller's monotonic clock). One announcement
// is the request and the reply form sent together.
type garpSched struct {
	cfg    garpConfig
	vips   map[netip.Addr]*garpVIP
	tokens float64
	last   time.Duration
	primed bool
}

type garpVIP struct {
	next time.Duration
	left int // announcements left in the initial schedule
}

func newGARPSched(cfg garpConfig) *garpSched {
	return &garpSched{cfg: cfg, vips: map[netip.Addr]*garpVIP{}, tokens: float64(cfg.burst)}
}

// acquire schedules the initial announcements of vip, the first one now.
func (g *garpSched) acquire(vip netip.Addr, now time.Duration) {
	g.vips[vip] = &garpVIP{next: now, left: g.cfg.count}
}

// setConfig switches to cfg (a reload): VIPs in their initial
// announcements have at most cfg.count of them still to come, the next at
// its old time;
// the token bucket keeps at most cfg.burst.
func (g *garpSched) setConfig(cfg garpConfig) {
	g.cfg = cfg
	for _, v := range g.vips {
		v.left = min(v.left, cfg.count)
	}
	g.tokens = min(g.tokens, float64(cfg.burst))
}

// release stops announcing vip.
func (g *garpSched) release(vip netip.Addr) { delete(g.vips, vip) }

// due returns the VIPs to announce now, oldest deadline first, as many as the
// rate limit allows; the rest stay due and go out on later calls.
func (g *garpSched) due(now time.Duration) []netip.Addr {
	if !g.primed {
		g.primed, g.last = true, now
	}
	if el := now - g.last; el > 0 {
		g.tokens = min(float64(g.cfg.burst), g.tokens+el.Seconds()*g.cfg.rate)
		g.last = now
	}
	type d struct {
		vip  netip.Addr
		next time.Duration
	}
	var ready []d
	for v, s := range g.vips {
		if s.next <= now {
			ready = append(ready, d{v, s.next})
		}
	}
	slices.SortFunc(ready, func(a, b d) int {
		if c := cmp.Compare(a.next, b.next); c != 0 {
			return c
		}
		return a.vip.Compare(b.vip)
	})
	n := min(len(ready), int(g.tokens))
	out := make([]netip.Addr, 0, n)
	for _, r := range ready[:n] {
		s := g.vips[r.vip]
		if s.left > 0 {
			s.left--
		}
		switch {
		case s.left > 0:
			s.next = now + g.cfg.interval
		case g.cfg.refresh > 0:
			s.next = now + g.cfg.refresh
		default:
			delete(g.vips, r.vip)
		}
		out = append(out, r.vip)
	}
	g.tokens -= float64(n)
	return out
}

// nextAt returns when due may next return a VIP, never before now: the
// earliest deadline of any VIP, or later when the rate limit holds it back,
// the moment the bucket holds a whole token again. ok is false when no VIP is
// scheduled (nothing is due until acquire).
func (g *garpSched) nextAt(now time.Duration) (at time.Duration, ok bool) {
	if len(g.vips) == 0 {
		return 0, false
	}
	at = time.Duration(math.MaxInt64)
	for _, s := range g.vips {
		at = min(at, s.next)
	}
	at = max(at, now)
	if g.primed && g.tokens < 1 {
		// due refills tokens + elapsed×rate from last. Rounded up to the
		// nanosecond; should float error leave the bucket a hair short
		// then, due sends nothing and the next nextAt is a nanosecond on.
		need := time.Duration(math.Ceil((1 - g.tokens) / g.cfg.rate * float64(time.Second)))
		at = max(at, g.last+need)
	}
	return at, true
}
