package mgmt

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The management listener is reachable by whoever can reach the node's
// address; before a client has shown a token it is a stranger. A security
// review found that three idle keep-alive connections to /healthz filled a
// 3-slot server and kept the operator out for 30 s, and that wrong tokens
// were neither logged nor slowed. The defences, each bounded in memory:
//
//   - addrListener: at most Config.MaxConnsPerAddr connections per client
//     address; more are closed at accept, before they take one of the
//     server's MaxConns slots.
//   - guardConn + Server.connState: a connection that has not presented a
//     valid token is closed once idle for Config.UnauthIdle (2 s), not the
//     30 s an operator's keep-alive keeps.
//   - failures: wrong tokens are answered after a short delay, and an
//     address that keeps failing is locked out (429, token not even
//     checked, so guessing is limited to the refill rate); failures are
//     logged with a global rate limit that reports what it suppressed.

// addrKey is the address a client is counted under: its IPv4 address, or
// its IPv6 /64 (one host usually holds a whole /64).
func addrKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// addrListener caps the connections open at once per client address.
type addrListener struct {
	net.Listener
	max     int
	log     *slog.Logger
	mu      sync.Mutex
	open    map[netip.Addr]int
	refused atomic.Uint64
}

func newAddrListener(ln net.Listener, max int, log *slog.Logger) *addrListener {
	return &addrListener{Listener: ln, max: max, log: log, open: map[netip.Addr]int{}}
}

// Accept returns the next connection whose address is below its cap; it
// closes the others at once.
func (l *addrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k := addrKey(c.RemoteAddr())
		l.mu.Lock()
		full := l.open[k] >= l.max
		if !full {
			l.open[k]++
		}
		l.mu.Unlock()
		if full {
			if n := l.refused.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th ... refusal
				l.log.Warn("management connection refused: too many open from one address", "remote", c.RemoteAddr().String(), "max_per_addr", l.max, "refused_total", l.refused.Load())
			}
			c.Close()
			continue
		}
		return &guardConn{Conn: c, release: func() { l.release(k) }}, nil
	}
}

func (l *addrListener) release(k netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k]--; l.open[k] <= 0 {
		delete(l.open, k)
	}
}

// guardConn is one accepted connection: it gives its address's slot back
// once on Close, and remembers whether a request on it was authenticated.
type guardConn struct {
	net.Conn
	release func()
	once    sync.Once
	authed  atomic.Bool
	idle    atomic.Bool // new or idle between requests (http.ConnState)
	timer   *time.Timer // owned by Server.connState
}

func (c *guardConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

type connKey struct{}

// connFrom returns the guardConn a request arrived on, nil for requests
// that did not come through an addrListener (tests on httptest).
func connFrom(ctx context.Context) *guardConn {
	c, _ := ctx.Value(connKey{}).(*guardConn)
	return c
}

// failLimits shape the answer to wrong tokens from one address.
const (
	failBurst     = 5                      // wrong tokens an address may try before it is locked out
	failRefill    = 2 * time.Second        // one more try per this much time
	failDelay     = 200 * time.Millisecond // every wrong token is answered this late
	maxFailAddrs  = 4096                   // addresses tracked; beyond, they share one bucket
	failLogBurst  = 3                      // log lines about failures at once ...
	failLogRefill = 30 * time.Second       // ... then one per this much time
)

// failures tracks wrong tokens per address (a token bucket each) and rate
// limits the log lines about them.
type failures struct {
	now func() time.Time
	log *slog.Logger

	mu       sync.Mutex
	addrs    map[netip.Addr]*bucket
	overflow bucket // shared by addresses beyond maxFailAddrs
	logs     bucket
	total    uint64 // wrong tokens since start
	locked   uint64 // requests refused while locked out
	quiet    uint64 // failures not logged since the last line
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at one per every, up to burst, and takes one if it can.
func (b *bucket) take(now time.Time, burst float64, every time.Duration) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+float64(dt)/float64(every))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// avail is what b would hold now.
func (b *bucket) avail(now time.Time, burst float64, every time.Duration) float64 {
	if b.last.IsZero() {
		return burst
	}
	return min(burst, b.tokens+float64(now.Sub(b.last))/float64(every))
}

func newFailures(log *slog.Logger, now func() time.Time) *failures {
	return &failures{log: log, now: now, addrs: map[netip.Addr]*bucket{}}
}

// lockedOut reports whether addr has used up its wrong tokens; its
// requests are then refused without looking at the token.
func (f *failures) lockedOut(addr netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.addrs[addr]
	if b == nil && len(f.addrs) >= maxFailAddrs {
		b = &f.overflow
	}
	if b == nil {
		return false
	}
	if b.avail(f.now(), failBurst, failRefill) >= 1 {
		return false
	}
	f.locked++
	return true
}

// fail records a wrong token from addr and logs it unless too many lines
// were logged lately.
func (f *failures) fail(addr netip.Addr, remote, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.total++
	b := f.addrs[addr]
	if b == nil {
		if len(f.addrs) >= maxFailAddrs {
			f.gc(now)
		}
		if len(f.addrs) < maxFailAddrs {
			b = &bucket{}
			f.addrs[addr] = b
		} else {
			b = &f.overflow
		}
	}
	b.take(now, failBurst, failRefill)
	if !f.logs.take(now, failLogBurst, failLogRefill) {
		f.quiet++
		return
	}
	f.log.Warn("management authentication failed", "remote", remote, "why", why,
		"failures_total", f.total, "not_logged_since_last", f.quiet, "locked_out_total", f.locked)
	f.quiet = 0
}

// gc forgets addresses whose buckets are full again.
func (f *failures) gc(now time.Time) {
	for a, b := range f.addrs {
		if b.avail(now, failBurst, failRefill) >= failBurst {
			delete(f.addrs, a)
		}
	}
}

// counts returns the wrong tokens and locked-out requests since start.
func (f *failures) counts() (failed, locked uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, f.locked
}
